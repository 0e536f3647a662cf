/** Typed errors shared by every stage; the CLI maps them to exit codes. */

/** Bad input from the user (spec, arguments): exit code 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}

/** One problem in the spec, located by a JSON-ish path such as `nodes[3].mac`. */
export interface SpecIssue {
  path: string;
  message: string;
  hint?: string;
}

export class SpecError extends Error {
  override name = 'SpecError';
  constructor(
    readonly issues: SpecIssue[],
    readonly source: string,
  ) {
    super(`${source}: ${issues.length} problem${issues.length === 1 ? '' : 's'} in the spec\n` + formatIssues(issues));
  }
}

export function formatIssues(issues: SpecIssue[]): string {
  return issues
    .map((i) => `  ${i.path}: ${i.message}` + (i.hint ? `\n    hint: ${i.hint}` : ''))
    .join('\n');
}

/** A required host tool is missing: names the tool, the stage and the packages that provide it. */
export class HostToolError extends Error {
  override name = 'HostToolError';
}

/** An external command failed: carries the copy-pasteable command line, exit code and stderr tail. */
export class CommandError extends Error {
  override name = 'CommandError';
  constructor(
    readonly command: string,
    readonly exitCode: number | null,
    readonly stderrTail: string,
    readonly signal: string | null = null,
  ) {
    const how = signal ? `was killed by ${signal}` : exitCode === 127 ? 'exited with code 127 (command not found)' : `exited with code ${exitCode}`;
    super(`command failed: ${command}\n  ${how}` + (stderrTail ? `\n  stderr (last lines):\n${indent(stderrTail, '    ')}` : ''));
  }
}

/** A stage failed for a reason that is not a command (checksum mismatch, bad layout…). */
export class StageError extends Error {
  override name = 'StageError';
  constructor(
    readonly stage: string,
    message: string,
  ) {
    super(`${stage}: ${message}`);
  }
}

/**
 * The one error for "this plan cannot be rendered": a renderer was handed something the plan should have
 * ruled out (a profile with no boot entry, an environment that cannot boot it, a missing artifact). The
 * spec's rules refuse these first, so a user sees one only through a caller that skipped them; it is a
 * StageError of the render stage, so the CLI reports it as a failed build with no stack trace.
 */
export class PlanError extends StageError {
  override name = 'PlanError';
  constructor(message: string) {
    super('render', message);
  }
}

/**
 * A value that would break out of the file or command line it is written into: a newline in a config line,
 * a quote in a kernel argument, a leading "-" where a tool reads options. The spec's schema refuses such
 * values first; this is the renderer's own refusal, so an unvalidated caller cannot slip one through.
 */
export class RenderError extends PlanError {
  override name = 'RenderError';
  constructor(
    readonly target: string,
    readonly what: string,
    readonly value: string,
    reason: string,
  ) {
    super(`${target}: ${what} ${reason} (got ${JSON.stringify(value.length > 60 ? value.slice(0, 57) + '…' : value)})`);
  }
}

/** A path built from a spec value that would land outside the directory it belongs in. */
export class PathEscapeError extends StageError {
  override name = 'PathEscapeError';
}

export function indent(text: string, prefix: string): string {
  return text
    .split('\n')
    .map((l) => prefix + l)
    .join('\n');
}

export function tail(text: string, lines = 15): string {
  const all = text.replace(/\s+$/, '').split('\n');
  return all.slice(-lines).join('\n');
}

/**
 * A power call failed: the message names the node, the driver and its BMC/PDU, in the tool's own words —
 * never a secret. A StageError of the "power" stage, so the CLI reports it with exit 1 and no stack trace.
 */
export class PowerError extends StageError {
  override name = 'PowerError';
  constructor(message: string) {
    super('power', message);
  }
}
