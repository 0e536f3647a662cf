/** deploy DEST: publish dist/ to node0:/srv/public (or a local dir) as a new release, atomically. */
import { UsageError } from '../../lib/errors.ts';
import { deploy } from '../../lifecycle/deploy.ts';
import { emit, parseFlags, type Command } from '../command.ts';
import { DEFAULT_RUN_DIR } from './serve.ts';

export const command: Command = async (argv) => {
  const { values, positionals } = parseFlags(
    argv,
    {
      from: { type: 'string', default: 'dist' },
      'dry-run': { type: 'boolean' },
      keep: { type: 'string', default: '3' },
      'ssh-config': { type: 'string' },
      activate: { type: 'boolean', description: "check the new release's configs with the real tools before the switch, reload node0's services after it; switch back on failure" },
      'run-dir': { type: 'string', default: DEFAULT_RUN_DIR, description: "serve's --run-dir on the destination, where --activate finds a running serve" },
      json: { type: 'boolean' },
    },
    true,
  );
  if (positionals.length !== 1) throw new UsageError('usage: portacluster deploy <node0:/srv/public | DIR> [--from dist] [--dry-run] [--keep N] [--activate [--run-dir DIR]] [--json]');
  const keep = Number(values.keep);
  const r = await deploy({
    from: values.from!,
    dest: positionals[0]!,
    dryRun: !!values['dry-run'],
    keep,
    activate: !!values.activate,
    runDir: values['run-dir']!,
    ...(values['ssh-config'] ? { sshConfig: values['ssh-config'] } : {}),
    log: (l) => process.stderr.write(l + '\n'),
  });
  const where = (r.host ? r.host + ':' : '') + r.dest;
  const text = r.dryRun
    ? [...r.changes, `dry run: ${r.changes.length} change${r.changes.length === 1 ? '' : 's'} to ${where} (nothing written; node links excluded)`].join('\n')
    : [
        ...(r.migrated ? [`${where} was a plain directory: it is now ${r.migrated}, and ${r.dest} a symlink`] : []),
        `published ${r.release} at ${where} in ${r.seconds.toFixed(1)} s; ${r.checked} files verified by sha256sum -c on the destination`,
        `kept ${r.keptLinks.length} node link${r.keptLinks.length === 1 ? '' : 's'} from the live tree${r.lateLinks.length ? `, re-applied ${r.lateLinks.length} switched during the deploy` : ''}`,
        ...(r.pruned.length ? [`pruned ${r.pruned.join(', ')}`] : []),
        ...(r.activation ? [`activate: etc/ ${r.activation.etc}; ${r.activation.message}`] : []),
      ].join('\n');
  emit(!!values.json, r, text);
  return 0;
};
