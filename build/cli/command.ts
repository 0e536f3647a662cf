import { parseArgs, type ParseArgsConfig } from 'node:util';
import { UsageError } from '../lib/errors.ts';

/** A CLI command: takes the arguments after its name, returns the exit code. */
export type Command = (argv: string[]) => Promise<number>;

/** node:util parseArgs with our error type, so a bad flag exits 2 with a readable message. */
export function parseFlags<T extends NonNullable<ParseArgsConfig['options']>>(argv: string[], options: T, allowPositionals = false) {
  try {
    return parseArgs({ args: argv, options, allowPositionals, strict: true });
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}

/** Prints a result: JSON on stdout with --json, else the human text. */
export function emit(json: boolean, value: unknown, text: string): void {
  process.stdout.write(json ? JSON.stringify(value, null, 2) + '\n' : text.endsWith('\n') || !text ? text : text + '\n');
}
