/**
 * portacluster CLI. Exit codes: 0 ok, 1 failure, 2 usage or invalid spec.
 * Each command lives in build/cli/commands/<name>.ts and exports `command: Command`.
 */
import { CommandError, HostToolError, SpecError, StageError, UsageError } from '../lib/errors.ts';
import type { Command } from './command.ts';

const COMMANDS: Record<string, () => Promise<{ command: Command }>> = {
  build: () => import('./commands/build.ts'),
  validate: () => import('./commands/validate.ts'),
  verify: () => import('./commands/verify.ts'),
  reimage: () => import('./commands/switch.ts').then((m) => ({ command: m.reimage })),
  rescue: () => import('./commands/switch.ts').then((m) => ({ command: m.rescue })),
  diskless: () => import('./commands/switch.ts').then((m) => ({ command: m.diskless })),
  normal: () => import('./commands/switch.ts').then((m) => ({ command: m.normal })),
  watch: () => import('./commands/watch.ts'),
  status: () => import('./commands/status.ts'),
  deploy: () => import('./commands/deploy.ts'),
  serve: () => import('./commands/serve.ts'),
  node0: () => import('./commands/node0.ts'),
};

function usage(): string {
  return [
    'usage: portacluster <command> [options]',
    '',
    '  build     [--config F] [--out DIR] [--cache DIR] [--force] [--json]   build dist/ from the spec',
    '  validate  [--config F] [--json]                                       check a spec, print every problem',
    '  verify    DIR [--json]                                                re-check a built tree against SHA256SUMS',
    '  reimage | rescue | diskless | normal  <node…|--all> [--root DIR | --ssh HOST] [--reboot]',
    '  watch     [--root DIR] [--state F] [--listen ADDR] [--access-log F] [--until-done] [--json]',
    '  status    [--root DIR] [--state F] [--json]',
    '  deploy    <node0:/srv/public | DIR> [--from dist] [--dry-run] [--activate [--run-dir DIR]] [--json]',
    '  serve     [--root DIR] [--state F] [--run-dir DIR] [--log-dir DIR] [--interface IF] [--json]   run dnsmasq, nginx and the watcher',
    '  node0     install [--root DIR] [--mode dedicated|shared] [--dest DIR] [--dry-run] | uninstall [--dest DIR]   systemd units on node0',
    '',
    'The spec defaults to ./portacluster.config.ts (or .json).',
  ].join('\n');
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '-h' || name === '--help' || name === 'help') {
    process.stdout.write(usage() + '\n');
    return name ? 0 : 2;
  }
  const load = COMMANDS[name];
  if (!load) {
    process.stderr.write(`portacluster: unknown command "${name}"\n\n${usage()}\n`);
    return 2;
  }
  try {
    const { command } = await load();
    return await command(rest);
  } catch (e) {
    const code = reportError(e);
    // A script that asked for --json reads stdout: it gets a document on failure too.
    if (rest.includes('--json')) process.stdout.write(JSON.stringify(errorDocument(e, code), null, 2) + '\n');
    return code;
  }
}

function errorDocument(e: unknown, exitCode: number): Record<string, unknown> {
  const kind = e instanceof Error ? e.constructor.name : 'Error';
  const message = e instanceof Error ? e.message : String(e);
  return { ok: false, exitCode, error: { kind, message, ...(e instanceof SpecError ? { issues: e.issues } : {}) } };
}

export function reportError(e: unknown): number {
  if (e instanceof UsageError || e instanceof SpecError) {
    process.stderr.write(`portacluster: ${e.message}\n`);
    return 2;
  }
  if (e instanceof CommandError || e instanceof StageError || e instanceof HostToolError) {
    process.stderr.write(`portacluster: ${e.message}\n`);
    return 1;
  }
  process.stderr.write(`portacluster: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  return 1;
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].replace(/^.*\/build\//, '/build/'))) {
  process.exitCode = await main(process.argv.slice(2));
}
