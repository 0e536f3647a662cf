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
  /**
   * A logger for a job that runs beside the current steps (the build's installer environment beside the
   * golden image): its lines carry `[label]`, its steps open no Actions group (groups cannot overlap) and
   * beat on their own, and it draws no progress line (two jobs would fight over one terminal line).
   */
  beside(label: string): Logger;
}

const inActions = () => process.env.GITHUB_ACTIONS === 'true';

/** Off a terminal (CI, a pipe, a log file) a silent step looks hung: say it still runs this often. */
export const HEARTBEAT_MS = 30_000;

export function formatElapsed(ms: number): string {
  const s = Math.round(ms / 1000);
  return s < 60 ? `${s}s` : `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
}

export function createLogger(opts: { quiet?: boolean; stream?: NodeJS.WriteStream | NodeJS.WritableStream & { isTTY?: boolean }; heartbeatMs?: number } = {}): Logger {
  const out = opts.stream ?? process.stderr;
  const tty = Boolean(out.isTTY) && !inActions();
  const heartbeatMs = opts.heartbeatMs ?? HEARTBEAT_MS;
  // Only the innermost running step beats: a nested step's parent is running by definition.
  const running: string[] = [];
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
      const token = `${name}\0${started}\0${running.length}`;
      running.push(token);
      const beat =
        !tty && !opts.quiet
          ? setInterval(() => {
              if (running.at(-1) === token) out.write(`    ${name}: still running, ${formatElapsed(Date.now() - started)}\n`);
            }, heartbeatMs)
          : undefined;
      beat?.unref();
      try {
        return await fn();
      } finally {
        clearInterval(beat);
        running.splice(running.lastIndexOf(token), 1);
        clearLine();
        if (inActions()) actions.endGroup();
        if (!opts.quiet) out.write(`    ${name}: ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
      }
    },
    beside(label) {
      return besideLogger(this, label, { quiet: !!opts.quiet || tty, heartbeatMs });
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

// quiet here means: no heartbeat (a terminal, or --quiet); headings and lines still go through the parent.
function besideLogger(parent: Logger, label: string, o: { quiet: boolean; heartbeatMs: number }): Logger {
  const tag = `[${label}]`;
  const self: Logger = {
    info: (m) => parent.info(`${tag} ${m}`),
    warn: (m) => parent.warn(`${tag} ${m}`),
    async step(name, fn) {
      const started = Date.now();
      parent.info(`==> ${tag} ${name}`);
      const beat = o.quiet ? undefined : setInterval(() => parent.info(`    ${tag} ${name}: still running, ${formatElapsed(Date.now() - started)}`), o.heartbeatMs);
      beat?.unref();
      try {
        return await fn();
      } finally {
        clearInterval(beat);
        parent.info(`    ${tag} ${name}: ${((Date.now() - started) / 1000).toFixed(1)} s`);
      }
    },
    progress: () => {},
    beside: (l) => besideLogger(parent, `${label}: ${l}`, o),
  };
  return self;
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
    beside(label) {
      const parent = this;
      return {
        info: (m) => parent.info(`[${label}] ${m}`),
        warn: (m) => parent.warn(`[${label}] ${m}`),
        step: (name, fn) => parent.step(`[${label}] ${name}`, fn),
        progress: () => {},
        beside: (l) => parent.beside(`${label}: ${l}`),
      };
    },
  };
}
