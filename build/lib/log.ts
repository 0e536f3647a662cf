/**
 * Progress and log output. On a terminal long steps draw a live progress line; under GitHub Actions each
 * stage is an Actions log group; with --json nothing but the final JSON goes to stdout, so logs go to stderr.
 */
import * as actions from '@actions/core';

export interface Logger {
  info(message: string): void;
  warn(message: string): void;
  /** Runs fn inside a named step: an Actions group in CI, a heading with its duration elsewhere. */
  step<T>(name: string, fn: () => Promise<T>): Promise<T>;
  /** Reports progress of a long step; total may be unknown. */
  progress(label: string, done: number, total?: number): void;
}

const inActions = () => process.env.GITHUB_ACTIONS === 'true';

export function createLogger(opts: { quiet?: boolean; stream?: NodeJS.WriteStream } = {}): Logger {
  const out = opts.stream ?? process.stderr;
  const tty = Boolean(out.isTTY) && !inActions();
  let lastDraw = 0;
  const clearLine = () => {
    if (tty) out.write('\r\x1b[K');
  };
  return {
    info(message) {
      if (opts.quiet) return;
      clearLine();
      out.write(message + '\n');
    },
    warn(message) {
      clearLine();
      if (inActions()) actions.warning(message);
      else out.write(`warning: ${message}\n`);
    },
    async step(name, fn) {
      const started = Date.now();
      if (inActions()) actions.startGroup(name);
      else if (!opts.quiet) out.write(`==> ${name}\n`);
      try {
        return await fn();
      } finally {
        clearLine();
        if (inActions()) actions.endGroup();
        if (!opts.quiet) out.write(`    ${name}: ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
      }
    },
    progress(label, done, total) {
      if (!tty || opts.quiet) return;
      const now = Date.now();
      if (now - lastDraw < 100 && (total === undefined || done < total)) return;
      lastDraw = now;
      const mb = (n: number) => (n / 1048576).toFixed(1);
      const pct = total ? ` ${((100 * done) / total).toFixed(0)}%` : '';
      out.write(`\r\x1b[K    ${label}: ${mb(done)}${total ? ' / ' + mb(total) : ''} MiB${pct}`);
    },
  };
}

/** A logger that records everything, for tests. */
export function memoryLogger(): Logger & { lines: string[] } {
  const lines: string[] = [];
  return {
    lines,
    info: (m) => void lines.push(m),
    warn: (m) => void lines.push(`warning: ${m}`),
    async step(name, fn) {
      lines.push(`==> ${name}`);
      return fn();
    },
    progress: () => {},
  };
}
