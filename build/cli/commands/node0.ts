/**
 * node0 install | uninstall: portacluster's services as systemd units on the admin node (the watcher
 * sandboxed under its own user, dnsmasq and nginx on the tree's configs). Run on node0, as root.
 * Exit: 0 ok, 1 when a check or systemctl fails (nothing half-written), 2 on bad usage.
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { UsageError } from '../../lib/errors.ts';
import { node0Install, node0Uninstall } from '../../lifecycle/node0.ts';
import { emit, parseFlags, type Command } from '../command.ts';

const USAGE = 'usage: portacluster node0 install [--root /srv/public] [--mode dedicated|shared] [--dest /] [--dry-run] [--json]\n       portacluster node0 uninstall [--dest /] [--dry-run] [--json]';

/** One option table per subcommand, each option described (folded into per-command --help at merge). */
const INSTALL = {
  root: { type: 'string', default: '/srv/public', description: 'the served tree on node0; its etc/ holds the configs the services run' },
  mode: { type: 'string', default: 'dedicated', description: "dedicated: nginx is portacluster's own unit; shared: a server block in the distro nginx's conf.d" },
  dest: { type: 'string', default: '/', description: 'install under this root prefix instead of / (images, tests)' },
  'dry-run': { type: 'boolean', description: 'check everything and say what would be written; write nothing' },
  json: { type: 'boolean', description: 'print the result as JSON' },
} as const;
const UNINSTALL = {
  dest: INSTALL.dest,
  'dry-run': { type: 'boolean', description: 'say what would be removed; remove nothing' },
  json: INSTALL.json,
} as const;

/** The node running us and the bin/portacluster.js beside this checkout: what the watcher unit runs. */
function selfPaths(): { node: string; bin: string } {
  const bin = resolve(import.meta.dirname, '../../../bin/portacluster.js');
  if (!existsSync(bin)) throw new UsageError(`cannot find portacluster's bin at ${bin}`);
  return { node: process.execPath, bin };
}

export const command: Command = async (argv) => {
  const [sub, ...rest] = argv;
  if (sub === 'install') {
    const v = parseFlags(rest, INSTALL).values;
    if (v.mode !== 'dedicated' && v.mode !== 'shared') throw new UsageError(`--mode is dedicated or shared (got ${JSON.stringify(v.mode)})`);
    const r = await node0Install({ root: v.root, mode: v.mode, dest: v.dest, dryRun: !!v['dry-run'], ...selfPaths(), log: (l) => process.stderr.write(l + '\n') });
    emit(!!v.json, r, [...(r.dryRun ? r.written.map((f) => `would write ${f}`) : []), `node0 (${r.mode}): ${r.services}`].join('\n'));
    return 0;
  }
  if (sub === 'uninstall') {
    const v = parseFlags(rest, UNINSTALL).values;
    const r = await node0Uninstall({ dest: v.dest, dryRun: !!v['dry-run'] });
    const kept = r.kept.map((f) => `left ${join(r.dest, f)}: it changed since node0 install wrote it`);
    emit(!!v.json, r, [...kept, `node0 (${r.mode}): ${r.services}; removed ${r.written.length - r.kept.length} files`].join('\n'));
    return 0;
  }
  throw new UsageError(sub ? `node0: unknown subcommand "${sub}"\n${USAGE}` : USAGE);
};
