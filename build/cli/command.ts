/**
 * A command is one declared table of options plus a run function. The same table feeds node:util
 * parseArgs, the `--help` text and the synopsis the README repeats (test/cli-help.test.ts compares them),
 * so an option cannot exist without being documented.
 */
import { parseArgs } from 'node:util';
import { UsageError } from '../lib/errors.ts';

export interface OptionSpec {
  type: 'string' | 'boolean';
  short?: string;
  /** Placeholder for the value in help and synopsis (string options), e.g. DIR. */
  arg?: string;
  description: string;
  default?: string;
}

export type OptionTable = Record<string, OptionSpec>;

export interface CommandSpec<O extends OptionTable = OptionTable> {
  /** As typed, e.g. `build`, or `reimage | rescue | diskless | normal` for commands sharing one table. */
  name: string;
  /** Positional arguments in the synopsis, e.g. `<node…|--all>`; absent: none accepted. */
  positionals?: string;
  summary: string;
  options: O;
  examples: string[];
}

export type Values<O extends OptionTable> = { [K in keyof O]?: O[K]['type'] extends 'boolean' ? boolean : string };

/** A CLI command: takes the arguments after its name, returns the exit code; carries its table. */
export interface Command {
  (argv: string[]): Promise<number>;
  spec: CommandSpec;
}

const HELP: OptionSpec = { type: 'boolean', short: 'h', description: 'show this help and exit' };

function flag(name: string, o: OptionSpec): string {
  return `--${name}${o.type === 'string' ? ` ${o.arg ?? 'VALUE'}` : ''}`;
}

/** One line: `portacluster build [--config FILE] [--out DIR] …`; the README's Commands section repeats it. */
export function synopsis(spec: CommandSpec): string {
  const opts = Object.entries(spec.options).map(([n, o]) => `[${flag(n, o)}]`);
  return ['portacluster', spec.name, ...(spec.positionals ? [spec.positionals] : []), ...opts].join(' ');
}

export function helpText(spec: CommandSpec): string {
  const rows = Object.entries({ ...spec.options, help: HELP }).map(([n, o]) => {
    const left = `${o.short ? `-${o.short}, ` : '    '}${flag(n, o)}`;
    return [left, o.description + (o.default !== undefined ? ` (default: ${o.default})` : '')] as const;
  });
  const width = Math.max(...rows.map(([l]) => l.length));
  return [
    `usage: ${synopsis(spec)}`,
    '',
    spec.summary,
    '',
    'options:',
    ...rows.map(([l, r]) => `  ${l.padEnd(width)}  ${r}`),
    '',
    spec.examples.length > 1 ? 'examples:' : 'example:',
    ...spec.examples.map((e) => `  ${e}`),
  ].join('\n');
}

function distance(a: string, b: string): number {
  const d = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = d[0]!;
    d[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = d[j]!;
      d[j] = Math.min(d[j]! + 1, d[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return d[b.length]!;
}

/** The known option closest to a mistyped one, if it is close enough to be what was meant. */
export function closest(typed: string, known: readonly string[]): string | undefined {
  const t = typed.replace(/^-+/, '').replace(/=.*$/, '');
  let best: { name: string; d: number } | undefined;
  for (const k of known) {
    const d = k.startsWith(t) && t.length >= 2 ? 0 : distance(t, k);
    if (!best || d < best.d) best = { name: k, d };
  }
  return best && best.d <= Math.max(2, Math.floor(best.name.length / 3)) ? best.name : undefined;
}

function usageError(spec: CommandSpec, message: string): UsageError {
  const cmd = spec.name.split(' ')[0];
  return new UsageError(`${message}\n  see: portacluster ${cmd} --help`);
}

/** Parses argv against the table; `help` is true when -h/--help was given (the caller prints helpText). */
export function parseCommand<O extends OptionTable>(spec: CommandSpec<O>, argv: string[]): { help: boolean; values: Values<O>; positionals: string[] } {
  const options = Object.fromEntries(
    Object.entries({ ...spec.options, help: HELP }).map(([n, o]) => [n, { type: o.type, ...(o.short ? { short: o.short } : {}), ...(o.default !== undefined && o.type === 'string' ? { default: o.default } : {}) }]),
  );
  try {
    const r = parseArgs({ args: argv, options, allowPositionals: true, strict: true });
    const values = r.values as Values<O> & { help?: boolean };
    if (!values.help && r.positionals.length && !spec.positionals) throw usageError(spec, `${spec.name.split(' ')[0]} takes no arguments (got ${r.positionals.map((p) => JSON.stringify(p)).join(' ')})`);
    return { help: !!values.help, values, positionals: r.positionals };
  } catch (e) {
    if (e instanceof UsageError) throw e;
    const err = e as Error & { code?: string };
    const unknown = /Unknown option '([^']+)'/.exec(err.message)?.[1];
    if (err.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' && unknown) {
      const names = Object.keys(spec.options);
      const guess = unknown.startsWith('--') ? closest(unknown, [...names, 'help']) : undefined;
      throw usageError(spec, `unknown option ${unknown} for ${spec.name.split(' ')[0]}${guess ? `: did you mean --${guess}?` : ''}`);
    }
    throw usageError(spec, err.message.split('. To specify a positional')[0]!);
  }
}

/** Wraps a run function with the table: --help prints help and exits 0, anything else runs. */
export function defineCommand<O extends OptionTable>(spec: CommandSpec<O>, run: (values: Values<O>, positionals: string[]) => Promise<number>): Command {
  const command = async (argv: string[]) => {
    const { help, values, positionals } = parseCommand(spec, argv);
    if (help) {
      process.stdout.write(helpText(spec) + '\n');
      return 0;
    }
    return run(values, positionals);
  };
  return Object.assign(command, { spec: spec as unknown as CommandSpec });
}

/** Prints a result: JSON on stdout with --json, else the human text. */
export function emit(json: boolean, value: unknown, text: string): void {
  process.stdout.write(json ? JSON.stringify(value, null, 2) + '\n' : text.endsWith('\n') || !text ? text : text + '\n');
}
