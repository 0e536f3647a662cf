/** deploy DEST: publish dist/ to node0:/srv/public (or a local dir) as a new release, atomically. */
import { UsageError } from '../../lib/errors.ts';
import { deploy } from '../../lifecycle/deploy.ts';
import { defineCommand, emit } from '../command.ts';
import { JSON_OUT, SSH_CONFIG } from '../options.ts';
import { DEFAULT_RUN_DIR } from '../../lifecycle/serve.ts';

export const command = defineCommand(
  {
    name: 'deploy',
    positionals: '<node0:/srv/public | DIR>',
    summary: [
      'Publish a built tree as a new release beside the live one and switch the served symlink to it;',
      "the nodes' current links and the live release's images are carried over. With boot servers in the tree's spec, each",
      "server's copy goes to it too: staged and verified everywhere before node0, then the servers, are switched.",
    ].join('\n'),
    options: {
      from: { type: 'string', arg: 'DIR', default: 'dist', description: 'the built tree to publish' },
      'dry-run': { type: 'boolean', description: 'list what would change on the destination; write nothing' },
      keep: { type: 'string', arg: 'N', default: '3', description: 'releases to keep, the live one included' },
      'ssh-config': { ...SSH_CONFIG, description: 'ssh config file for a node0:/path destination (ssh -F)' },
      activate: { type: 'boolean', description: "check the new release's configs with the real tools before the switch, reload node0's services after it; switch back on failure" },
      'run-dir': { type: 'string', arg: 'DIR', default: DEFAULT_RUN_DIR, description: "serve's --run-dir on the destination, where --activate finds a running serve" },
      parallel: { type: 'string', arg: 'N', default: '4', description: "with boot servers in the tree's spec: destinations staged at once" },
      json: JSON_OUT,
    },
    examples: ['portacluster deploy node0:/srv/public --activate', 'portacluster deploy /srv/public --from dist --dry-run'],
  },
  async (values, positionals) => {
    if (positionals.length !== 1) throw new UsageError('deploy takes one destination: node0:/srv/public or a local DIR\n  see: portacluster deploy --help');
    const keep = Number(values.keep);
    const parallel = Number(values.parallel);
    if (!Number.isInteger(parallel) || parallel < 1) throw new UsageError(`--parallel must be a whole number of at least 1 (got ${JSON.stringify(values.parallel)})`);
    const r = await deploy({
      from: values.from!,
      dest: positionals[0]!,
      dryRun: !!values['dry-run'],
      keep,
      activate: !!values.activate,
      runDir: values['run-dir']!,
      parallel,
      ...(values['ssh-config'] ? { sshConfig: values['ssh-config'] } : {}),
      log: (l) => process.stderr.write(l + '\n'),
    });
    const where = (r.host ? r.host + ':' : '') + r.dest;
    const text = r.dryRun
      ? [...r.changes, `dry run: ${r.changes.length} change${r.changes.length === 1 ? '' : 's'} to ${where} (nothing written; node links excluded)`, ...r.servers.map((b) => `would also deploy boot server ${b.name}'s copy to ${b.dest}`)].join('\n')
      : [
          ...(r.migrated ? [`${where} was a plain directory: it is now ${r.migrated}, and ${r.dest} a symlink`] : []),
          `published ${r.release} at ${where} in ${r.seconds.toFixed(1)} s; ${r.checked} files verified by sha256sum -c on the destination`,
          `kept ${r.keptLinks.length} node link${r.keptLinks.length === 1 ? '' : 's'} from the live tree${r.lateLinks.length ? `, re-applied ${r.lateLinks.length} switched during the deploy` : ''}`,
          ...(r.pruned.length ? [`pruned ${r.pruned.join(', ')}`] : []),
          ...(r.activation ? [`activate: etc/ ${r.activation.etc}; ${r.activation.message}`] : []),
          ...r.servers.map((b) => (b.error ? `boot server ${b.name} (${b.dest}): NOT switched, still serves its previous release: ${b.error}` : `boot server ${b.name}: published ${b.release} at ${b.dest}; ${b.checked} files verified`)),
        ].join('\n');
    emit(!!values.json, r, text);
    // A server left on its previous release still works (node0 carries the previous images), but is behind.
    return r.servers.some((b) => b.error) ? 1 : 0;
  },
);
