/**
 * Output modes of the logger: a live progress line on a terminal, Actions log groups in CI, plain
 * headings with durations otherwise.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../build/lib/log.ts';

/** A writable that records what is written and says it is (or is not) a terminal. */
function sink(isTTY: boolean): NodeJS.WriteStream & { text: () => string } {
  const chunks: string[] = [];
  return { isTTY, write: (c: string) => (chunks.push(c), true), text: () => chunks.join('') } as unknown as NodeJS.WriteStream & { text: () => string };
}

const saved = process.env.GITHUB_ACTIONS;
afterEach(() => {
  if (saved === undefined) delete process.env.GITHUB_ACTIONS;
  else process.env.GITHUB_ACTIONS = saved;
});

describe('logger', () => {
  it('draws progress in place on a terminal and clears it before the next line', async () => {
    delete process.env.GITHUB_ACTIONS;
    const out = sink(true);
    const log = createLogger({ stream: out });
    await log.step('download ISO', async () => {
      log.progress('systemrescue.iso', 1 << 20, 2 << 20);
      log.progress('systemrescue.iso', 2 << 20, 2 << 20);
    });
    const text = out.text();
    expect(text).toMatch(/^==> download ISO\n/);
    expect(text).toContain('\r\x1b[K    systemrescue.iso: 1.0 / 2.0 MiB 50%');
    expect(text).toContain('\r\x1b[K    systemrescue.iso: 2.0 / 2.0 MiB 100%');
    expect(text).toMatch(/\r\x1b\[K {4}download ISO: \d+\.\d s\n$/);
  });

  it('a job beside the steps: its lines and steps are tagged, it beats on its own in a pipe, and opens no Actions group', async () => {
    process.env.GITHUB_ACTIONS = 'true';
    const out = sink(false);
    const writes: string[] = [];
    const real = process.stdout.write.bind(process.stdout);
    // @actions/core writes its group markers to stdout.
    process.stdout.write = ((c: string) => (writes.push(String(c)), true)) as typeof process.stdout.write;
    try {
      const log = createLogger({ stream: out, heartbeatMs: 20 });
      const env = log.beside('installer environment');
      await Promise.all([
        log.step('pack image', () => new Promise((r) => setTimeout(r, 30))),
        env.step('bootstrap', async () => {
          env.info('mmdebstrap says hi');
          await new Promise((r) => setTimeout(r, 70));
        }),
      ]);
    } finally {
      process.stdout.write = real;
    }
    const text = out.text();
    expect(text).toContain('==> [installer environment] bootstrap\n');
    expect(text).toContain('[installer environment] mmdebstrap says hi\n');
    expect(text).toMatch(/ {4}\[installer environment\] bootstrap: still running, 0s\n/);
    expect(text).toMatch(/ {4}\[installer environment\] bootstrap: \d+\.\d s\n/);
    const groups = writes.filter((w) => w.includes('::group::'));
    expect(groups.map((g) => g.trim())).toEqual(['::group::pack image']);
  });

  it('draws no progress when the output is not a terminal (CI logs, pipes)', async () => {
    delete process.env.GITHUB_ACTIONS;
    const out = sink(false);
    const log = createLogger({ stream: out });
    log.progress('systemrescue.iso', 1 << 20, 2 << 20);
    log.info('fetched');
    expect(out.text()).toBe('fetched\n');
  });

  it('makes each step an Actions log group under GitHub Actions', async () => {
    process.env.GITHUB_ACTIONS = 'true';
    const out = sink(true);
    const written: string[] = [];
    const write = process.stdout.write.bind(process.stdout);
    process.stdout.write = ((c: string) => (written.push(String(c)), true)) as typeof process.stdout.write;
    try {
      const log = createLogger({ stream: out });
      await log.step('pack image', async () => log.progress('tarball', 1, 2));
    } finally {
      process.stdout.write = write;
    }
    expect(written.join('')).toMatch(/^::group::pack image\n::endgroup::\n$/);
    // Inside Actions the stream is a log file: no terminal escapes.
    expect(out.text()).toMatch(/^ {4}pack image: \d+\.\d s\n$/);
  });
});

describe('heartbeat off a terminal', () => {
  it('says a long step is still running, only for the innermost step, and stops when it ends', async () => {
    delete process.env.GITHUB_ACTIONS;
    const out = sink(false);
    const log = createLogger({ stream: out, heartbeatMs: 40 });
    await log.step('bootstrap image', async () => {
      await new Promise((r) => setTimeout(r, 100));
      await log.step('zstd -19', () => new Promise((r) => setTimeout(r, 100)));
    });
    const after = out.text();
    await new Promise((r) => setTimeout(r, 120));
    const lines = after.split('\n');
    const beats = lines.filter((l) => l.includes('still running'));
    expect(beats.filter((l) => /^ {4}bootstrap image: still running, 0s$/.test(l)).length).toBeGreaterThanOrEqual(1);
    expect(beats.filter((l) => /^ {4}zstd -19: still running, 0s$/.test(l)).length).toBeGreaterThanOrEqual(1);
    // While zstd runs, only zstd beats: between its heading and its duration line no parent beat appears.
    const inner = lines.slice(lines.indexOf('==> zstd -19'), lines.findIndex((l) => /zstd -19: \d+\.\d s$/.test(l)));
    expect(inner.some((l) => l.startsWith('    bootstrap image: still running'))).toBe(false);
    expect(out.text()).toBe(after);
  });

  it('stays silent on a terminal (the progress line shows life) and with --quiet', async () => {
    delete process.env.GITHUB_ACTIONS;
    for (const [tty, quiet] of [[true, false], [false, true]] as const) {
      const out = sink(tty);
      const log = createLogger({ stream: out, heartbeatMs: 20, quiet });
      await log.step('pack image', () => new Promise((r) => setTimeout(r, 90)));
      expect(out.text()).not.toContain('still running');
    }
  });

  it('formats minutes the way people read them', async () => {
    const { formatElapsed } = await import('../build/lib/log.ts');
    expect(formatElapsed(90_000)).toBe('1m30s');
    expect(formatElapsed(5_000)).toBe('5s');
    expect(formatElapsed(600_000)).toBe('10m00s');
  });
});
