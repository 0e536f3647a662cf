/**
 * node0 install | uninstall: portacluster's services as systemd units on the admin node (the watcher
 * sandboxed under its own user, dnsmasq and nginx on the tree's configs). Run on node0, as root.
 * Exit: 0 ok, 1 when a check or systemctl fails (nothing half-written), 2 on bad usage.
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { UsageError } from '../../lib/errors.ts';
import { node0Install, node0Uninstall } from '../../lifecycle/node0.ts';
import { defineCommand, emit } from '../command.ts';
import { JSON_OUT } from '../options.ts';

/** The node running us and the bin/portacluster.js beside this checkout: what the watcher unit runs. */
function selfPaths(): { node: string; bin: string } {
  const bin = resolve(import.meta.dirname, '../../../bin/portacluster.js');
  if (!existsSync(bin)) throw new UsageError(`cannot find portacluster's bin at ${bin}`);
  return { node: process.execPath, bin };
}

export const command = defineCommand(
  {
    name: 'node0',
    positionals: 'install|uninstall',
    summary: [
      "Install (or remove) node0's services as systemd units: the watcher sandboxed under its own user, dnsmasq",
      "and nginx on the served tree's configs (dedicated), or a server block in the distribution's nginx (shared).",
      'Checks every config with the real tools first; run on node0, as root. uninstall reverses exactly what',
      'install wrote.',
    ].join('\n'),
    options: {
      root: { type: 'string', arg: 'DIR', default: '/srv/public', description: 'install: the served tree on node0; its etc/ holds the configs the services run' },
      mode: { type: 'string', arg: 'MODE', default: 'dedicated', description: "install: dedicated (nginx is portacluster's own unit) or shared (a server block in the distro nginx's conf.d)" },
      dest: { type: 'string', arg: 'DIR', default: '/', description: 'install under this root prefix instead of / (images, tests)' },
      'dry-run': { type: 'boolean', description: 'check everything and say what would be written or removed; change nothing' },
      json: JSON_OUT,
    },
    examples: ['portacluster node0 install --root /srv/public', 'portacluster node0 install --mode shared --dry-run', 'portacluster node0 uninstall'],
  },
  async (v, positionals) => {
    const [sub] = positionals;
    if (sub === 'install') {
      if (v.mode !== 'dedicated' && v.mode !== 'shared') throw new UsageError(`--mode is dedicated or shared (got ${JSON.stringify(v.mode)})`);
      const r = await node0Install({ root: v.root!, mode: v.mode, dest: v.dest!, dryRun: !!v['dry-run'], ...selfPaths(), log: (l) => process.stderr.write(l + '\n') });
      emit(!!v.json, r, [...(r.dryRun ? r.written.map((f) => `would write ${f}`) : []), `node0 (${r.mode}): ${r.services}`].join('\n'));
      return 0;
    }
    if (sub === 'uninstall') {
      const r = await node0Uninstall({ dest: v.dest!, dryRun: !!v['dry-run'] });
      const kept = r.kept.map((f) => `left ${join(r.dest, f)}: it changed since node0 install wrote it`);
      emit(!!v.json, r, [...kept, `node0 (${r.mode}): ${r.services}; removed ${r.written.length - r.kept.length} files`].join('\n'));
      return 0;
    }
    throw new UsageError(`node0 wants install or uninstall (got ${JSON.stringify(sub ?? '')})\n  see: portacluster node0 --help`);
  },
);
