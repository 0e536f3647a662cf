/**
 * The one escaping helper for generated bash. Every value that comes from the spec reaches a script
 * through shq(): single-quoted, with embedded single quotes closed, escaped and reopened. Inside single
 * quotes bash expands nothing ($, `, \, newlines stay literal), so any value comes out inert.
 */
import { PlanError } from '../lib/errors.ts';

export function shq(value: string | number | boolean): string {
  const s = String(value);
  if (s.includes('\0')) throw new PlanError(`bash: a NUL byte cannot be passed to bash (in ${JSON.stringify(s.length > 60 ? s.slice(0, 57) + '…' : s)})`);
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

const NAME = /^[A-Z_][A-Z0-9_]*$/;

export function assign(name: string, value: string | number | boolean): string {
  if (!NAME.test(name)) throw new PlanError(`bash: not a shell variable name: ${name}`);
  return `${name}=${shq(value)}`;
}

export function assignArray(name: string, values: readonly (string | number | boolean)[]): string {
  if (!NAME.test(name)) throw new PlanError(`bash: not a shell variable name: ${name}`);
  return `${name}=(${values.map(shq).join(' ')})`;
}

export type ShellValue = string | number | boolean | readonly (string | number | boolean)[];

/** A data prologue: one assignment per line, all in one block so one shellcheck directive covers it. */
export function dataPrologue(title: string, vars: Record<string, ShellValue>): string {
  const lines = Object.entries(vars).map(([k, v]) => (Array.isArray(v) ? assignArray(k, v) : assign(k, v as string | number | boolean)));
  return [`# ${title} (generated from the spec; every value quoted by shq())`, '# shellcheck disable=SC2034,SC2016 # read by the libraries below; $ and ` in single quotes stay literal on purpose', '{', ...lines.map((l) => `  ${l}`), '}'].join('\n');
}
