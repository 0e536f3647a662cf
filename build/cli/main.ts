/**
 * portacluster CLI. Exit codes: 0 ok, 1 failure, 2 usage or invalid spec.
 * Each command lives in build/cli/commands/<name>.ts and exports `command: Command`.
 */
import { CommandError, HostToolError, SpecError, StageError, UsageError } from '../lib/errors.ts';
import { closest, type Command } from './command.ts';
import { describeErrno } from './errno.ts';

export const COMMANDS: Record<string, () => Promise<{ command: Command }>> = {
  build: () => import('./commands/build.ts'),
  validate: () => import('./commands/validate.ts'),
  verify: () => import('./commands/verify.ts'),
  reimage: () => import('./commands/switch.ts').then((m) => ({ command: m.reimage })),
  rescue: () => import('./commands/switch.ts').then((m) => ({ command: m.rescue })),
  diskless: () => import('./commands/switch.ts').then((m) => ({ command: m.diskless })),
  normal: () => import('./commands/switch.ts').then((m) => ({ command: m.normal })),
  watch: () => import('./commands/watch.ts'),
  status: () => import('./commands/status.ts'),
  why: () => import('./commands/why.ts'),
  discovered: () => import('./commands/discovered.ts'),
  enroll: () => import('./commands/enroll.ts'),
  deploy: () => import('./commands/deploy.ts'),
  serve: () => import('./commands/serve.ts'),
  power: () => import('./commands/power.ts'),
  lab: () => import('./commands/lab.ts'),
  node0: () => import('./commands/node0.ts'),
};

function usage(): string {
  return [
    'usage: portacluster <command> [options]',
    '',
    '  build                                  build dist/ from the spec',
    '  validate                               check a spec, print every problem',
    '  verify DIR                             re-check a built tree against SHA256SUMS',
    '  reimage | rescue | diskless | normal   switch nodes to a profile (<node…|--all>)',
    '  watch                                  receive the installers\' reports, switch finished nodes to their OS',
    '  status                                 each node, its profile and its last state',
    '  why <node>                             a node\'s boot chain, link by link, and where it breaks',
    '  discovered                             machines outside the spec that reported an inventory (boot.discover)',
    '  enroll <mac> --name NODE               add a discovered machine to the spec as a node',
    '  deploy <node0:/srv/public | DIR>       publish dist/ as a new release, atomically',
    '  serve                                  run node0\'s dnsmasq, nginx and the watcher from a built tree',
    '  power on|off|cycle|status <node…|--all>  power nodes through their BMC, PDU or command; read their state',
    '  lab up|down|status                     a virtual cluster: node0 and a QEMU VM per node, in a network namespace',
    '  node0 install|uninstall                systemd units that run node0\'s services from the served tree',
    '',
    'Every command lists its options with `portacluster <command> --help`.',
    'The spec defaults to ./portacluster.config.ts (or .js, .json).',
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
    const guess = closest(name, Object.keys(COMMANDS));
    process.stderr.write(`portacluster: unknown command "${name}"${guess ? `: did you mean ${guess}?` : ''}\n\n${usage()}\n`);
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
  // A stack trace is for whoever debugs portacluster, not for its users: only on request.
  const debug = process.env.PORTACLUSTER_DEBUG === '1';
  const stack = debug && e instanceof Error && e.stack ? `\n${e.stack}` : '';
  if (e instanceof UsageError || e instanceof SpecError) {
    process.stderr.write(`portacluster: ${e.message}${stack}\n`);
    return 2;
  }
  if (e instanceof CommandError || e instanceof StageError || e instanceof HostToolError) {
    process.stderr.write(`portacluster: ${e.message}${stack}\n`);
    return 1;
  }
  const known = describeErrno(e);
  if (known) {
    process.stderr.write(`portacluster: ${known}${stack}\n`);
    return 1;
  }
  const message = e instanceof Error ? e.message : String(e);
  process.stderr.write(`portacluster: ${message}${stack || '\n  (an unexpected error: PORTACLUSTER_DEBUG=1 shows where it came from)'}\n`);
  return 1;
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].replace(/^.*\/build\//, '/build/'))) {
  process.exitCode = await main(process.argv.slice(2));
}
