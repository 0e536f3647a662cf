/**
 * Per-step timestamps: common/lib/10-report.sh `step`/`step_as` run for real in bash (a fake /proc/uptime
 * where the exact line matters, the real one where time must pass), and build/lifecycle/steps.ts reading
 * the lines back out of an install log as node0 stores it.
 */
import { spawn } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { breakdown, formatBreakdown, parseSteps } from '../build/lifecycle/steps.ts';
import { workspace } from './helpers/workspace.ts';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

async function bash(main: string, env: Record<string, string> = {}) {
  const lib = await readFile('common/lib/10-report.sh', 'utf8');
  return new Promise<{ code: number | null; stdout: string }>((resolve) => {
    const p = spawn('bash', ['-c', `set -euo pipefail\n${lib}\n${main}`], { env: { PATH: process.env.PATH!, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    p.stderr.on('data', (d: Buffer) => (stdout += d.toString()));
    p.on('close', (code) => resolve({ code, stdout }));
  });
}

async function fakeProc(uptime: string): Promise<string> {
  const ws = await workspace();
  cleanups.push(ws.cleanup);
  await writeFile(join(ws.dir, 'uptime'), `${uptime} 1.00\n`);
  return ws.dir;
}

describe('step: the line the installer logs', () => {
  it('centiseconds since boot, from /proc/uptime, leading zeros read as decimal', async () => {
    const r = await bash('step_as early true; step_boot', { PC_PROCFS: await fakeProc('0.09') });
    expect(r.code, r.stdout).toBe(0);
    expect(r.stdout).toMatch(/^\d\d:\d\d:\d\d portacluster: step early 9 9 \(0\.00 s\)$/m);
    expect(r.stdout).toMatch(/portacluster: step boot 0 9 \(0\.09 s\)$/m);
    const late = await bash('step_boot', { PC_PROCFS: await fakeProc('123456.78') });
    expect(late.stdout).toMatch(/portacluster: step boot 0 12345678 \(123456\.78 s\)$/m);
  });

  it('times real work, nests, keeps the variables a step sets, and passes a failure to the ERR trap', async () => {
    const r = await bash(`
inner() { sleep 0.3; PICKED=disk0; }
outer() { step inner; sleep 0.1; }
trap 'echo "ERR at \${BASH_COMMAND}"; exit 7' ERR
set -E
step outer
echo "picked=\${PICKED}"
if step false; then echo "if-step: passed"; else echo "if-step: failed $?"; fi
broken() { false; echo unreachable; }
step broken
echo after`);
    expect(r.code).toBe(7);
    expect(r.stdout).toContain('picked=disk0\n');
    // In a condition (where set -e does not stop at the failure) the step returns its function's status.
    expect(r.stdout).toContain('if-step: failed 1\n');
    expect(r.stdout).not.toContain('unreachable');
    expect(r.stdout).not.toContain('after');
    expect(r.stdout).not.toContain('step broken');
    const steps = parseSteps(r.stdout);
    expect(steps.map((s) => [s.name, s.depth])).toEqual([['outer', 0], ['inner', 1], ['false', 0]]);
    const [outer, inner] = steps as [(typeof steps)[0], (typeof steps)[0]];
    expect(inner.seconds).toBeGreaterThanOrEqual(0.28);
    expect(outer.seconds).toBeGreaterThanOrEqual(inner.seconds + 0.08);
    expect(outer.start).toBeLessThanOrEqual(inner.start);
  });
});

describe('parseSteps and breakdown', () => {
  const LOG = [
    '10:00:00 portacluster: step boot 0 1520 (15.20 s)',
    '10:00:00 portacluster: this is labbios (52:54:00:12:34:56), bios in the plan, booted bios',
    '10:00:00 portacluster: step identify_node 1520 1530 (0.10 s)',
    '10:00:01 portacluster: step report:start 1530 1560 (0.30 s)',
    '10:00:20 portacluster: step e2fsck 3500 3700 (2.00 s)',
    '10:00:20 portacluster: step tune2fs 3700 3710 (0.10 s)',
    '10:00:21 portacluster: step finish_fs_image 3500 3800 (3.00 s)',
    '10:00:21 portacluster: step install_fs_image 1600 3800 (22.00 s)',
    'portacluster: step configure_ssh 3800 3810 (0.10 s)',
    'step forged 1 2 (0.01 s) — not a log line',
    '10:00:22 portacluster: step bad name 1 2 (0.01 s)',
  ].join('\n');

  it('reads every step line, nested by time, and nothing else', () => {
    const steps = parseSteps(LOG);
    expect(steps.map((s) => `${'-'.repeat(s.depth)}${s.name}`)).toEqual([
      'boot', 'identify_node', 'report:start', 'install_fs_image', '-finish_fs_image', '--e2fsck', '--tune2fs', 'configure_ssh',
    ]);
    expect(steps.find((s) => s.name === 'e2fsck')!.seconds).toBe(2);
  });

  it('the breakdown: the script from the end of boot, and the time in no step', () => {
    const b = breakdown(parseSteps(LOG));
    expect(b.bootSeconds).toBe(15.2);
    expect(b.scriptSeconds).toBeCloseTo(22.9, 5);
    // 0.1 + 0.3 + 22 + 0.1 in top-level steps.
    expect(b.untimedSeconds).toBeCloseTo(0.4, 5);
    const text = formatBreakdown(b).join('\n');
    expect(text).toMatch(/^ {4}e2fsck +2\.00 s +8\.7%$/m);
    expect(text).toMatch(/^script total +22\.90 s$/m);
  });

  it('refuses a step that ends before it starts', () => {
    expect(() => parseSteps('portacluster: step x 20 10 (0.00 s)')).toThrow(/ends before it starts/);
  });
});
