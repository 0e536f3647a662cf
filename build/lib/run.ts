/**
 * The one way portacluster runs an external command. Arguments are passed as an array (never a shell
 * string), undefined is refused, and a failure throws CommandError with the command line as you would
 * paste it into a shell, the exit code and the tail of stderr.
 */
import { $, quote } from 'zx';
import { CommandError, tail } from './errors.ts';

export interface RunOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** Written to the command's stdin. */
  input?: string | Buffer;
  /** Kill the command after this many milliseconds. */
  timeoutMs?: number;
  /** Stream the command's output to our stderr as it runs (long steps on a terminal). */
  echo?: boolean;
  /** Return the result instead of throwing when the exit code is not 0. */
  nothrow?: boolean;
}

export interface RunResult {
  stdout: string;
  stderr: string;
  exitCode: number | null;
  signal: NodeJS.Signals | null;
}

export function commandLine(argv: readonly string[]): string {
  return argv.map((a) => quote(a)).join(' ');
}

function checkArgv(argv: readonly unknown[]): asserts argv is string[] {
  argv.forEach((a, i) => {
    if (typeof a !== 'string') throw new TypeError(`run(): argument ${i} of ${String(argv[0])} is ${a === undefined ? 'undefined' : typeof a}`);
  });
  if (argv.length === 0) throw new TypeError('run(): empty command');
}

export async function run(argv: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  checkArgv(argv);
  const shell = $({
    cwd: opts.cwd,
    env: opts.env ?? process.env,
    input: opts.input,
    timeout: opts.timeoutMs,
    nothrow: true,
    quiet: !opts.echo,
    verbose: false,
  });
  // zx quotes each array element as one word: no value ever reaches the shell unquoted.
  const out = await shell`${argv}`;
  const result: RunResult = { stdout: out.stdout, stderr: out.stderr, exitCode: out.exitCode, signal: out.signal };
  if ((out.exitCode === 0 && !out.signal) || opts.nothrow) return result;
  throw new CommandError(commandLine(argv), out.exitCode, tail(out.stderr || out.stdout), out.signal);
}

/** Runs a command and returns its trimmed stdout. */
export async function capture(argv: readonly string[], opts: RunOptions = {}): Promise<string> {
  return (await run(argv, opts)).stdout.trim();
}
