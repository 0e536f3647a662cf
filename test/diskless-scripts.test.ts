/**
 * The diskless autorun's root handling, run for real as root: a small squashfs (with a static busybox as
 * its init) served by a local HTTP server that drops the first download, fetched with resume, verified,
 * loop-mounted under an overlay; a corrupted copy is refused with a `failed` report and nothing mounted.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFile, mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { disklessVars, renderAutorun, type ImageRef } from '../build/render/autorun.ts';
import { readScriptSources } from '../build/render/scripts.ts';
import { run } from '../build/lib/run.ts';
import { loadSpec } from '../build/spec/load.ts';
import { planCluster, type Plan } from '../build/plan/plan.ts';
import { flakyServer, type FlakyEvent } from './e2e/harness/flaky-server.ts';
import { workspace } from './helpers/workspace.ts';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

async function labPlan(): Promise<Plan> {
  const raw = (await loadSpec('test/e2e/fixtures/lab.config.ts')).spec;
  return planCluster(raw);
}

/** bash with the diskless prologue + libraries and `main`; reports recorded instead of sent. */
async function runDiskless(plan: Plan, root: ImageRef, main: string, env: Record<string, string>) {
  const src = await readScriptSources('diskless');
  const script = renderAutorun({ title: 'test', specHash: plan.specHash, vars: disklessVars(plan, root), libraries: src.libraries, main: { name: 'test', text: main } });
  return new Promise<{ code: number | null; out: string }>((resolve) => {
    const p = spawn('bash', ['-c', script], { env: { PATH: process.env.PATH!, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr.on('data', (d: Buffer) => (out += d.toString()));
    p.on('close', (code) => resolve({ code, out }));
  });
}

const stubs = (calls: string) => `
report() { echo "REPORT $1" >> ${calls}; }
report_post() { echo "POST \${1%%&*}" >> ${calls}; }
`;

/** A small root: busybox as /sbin/init and test, an os-release, 1 MiB of incompressible bulk. */
async function squashfs(dir: string): Promise<ImageRef & { path: string }> {
  const src = join(dir, 'src');
  for (const d of ['bin', 'sbin', 'etc']) await mkdir(join(src, d), { recursive: true });
  await copyFile('/bin/busybox', join(src, 'bin/busybox'));
  await symlink('busybox', join(src, 'bin/test'));
  await symlink('../bin/busybox', join(src, 'sbin/init'));
  await writeFile(join(src, 'etc/os-release'), 'ID=golden\n');
  await writeFile(join(src, 'bulk'), Buffer.from(Array.from({ length: 1 << 20 }, (_, i) => createHash('md5').update(String(i)).digest()[0]!)));
  await mkdir(join(dir, 'srv/images'), { recursive: true });
  const path = join(dir, 'srv/images/root.sfs');
  await run(['mksquashfs', src, path, '-comp', 'zstd', '-no-progress', '-quiet', '-all-root']);
  const bytes = await readFile(path);
  return { path, fileName: 'root.sfs', sha256: createHash('sha256').update(bytes).digest('hex'), size: bytes.length };
}

async function serve(root: string, drops: number) {
  const events: FlakyEvent[] = [];
  const server = flakyServer({ root, drops, dropAt: 0.4, onEvent: (e) => events.push(e) });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  cleanups.push(() => new Promise((r) => server.close(() => r())));
  return { base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, events };
}

async function mountsUnder(dir: string): Promise<string[]> {
  const r = await run(['findmnt', '--list', '--noheadings', '--output', 'TARGET'], { nothrow: true });
  return r.stdout.split('\n').filter((t) => t.startsWith(dir));
}

async function tmp(): Promise<string> {
  const ws = await workspace('pc-diskless-');
  cleanups.push(async () => {
    // Never leave a mount behind, whatever the test did.
    for (const m of (await mountsUnder(ws.dir)).reverse()) await run(['umount', '--lazy', m], { nothrow: true });
    await ws.cleanup();
  });
  return ws.dir;
}

const asRoot = process.getuid?.() === 0;

describe.runIf(asRoot)('diskless root: download, verify, mount (as root, real squashfs and overlay)', () => {
  it('fetches with resume after a drop, verifies, mounts squashfs + overlay, and asks /init to switch', async () => {
    const dir = await tmp();
    const sfs = await squashfs(dir);
    const { base, events } = await serve(join(dir, 'srv'), 1);
    const plan = { ...(await labPlan()), admin: { ...(await labPlan()).admin, httpBase: base } };
    const env = { PC_TARGET: join(dir, 'newroot'), PC_DISKLESS_DIR: join(dir, 'run/diskless'), PC_SWITCH_ROOT_FILE: join(dir, 'run/switch-root'), PC_LOG: join(dir, 'log') };
    const r = await runDiskless(plan, sfs, `${stubs(join(dir, 'calls'))}NODE_NAME=labdiskless; trap_errors; fetch_root; load_root_modules; mount_root; configure_diskless_fstab; request_switch_root; echo OK`, env);
    expect(r.out).toContain('OK\n');
    expect(r.code).toBe(0);
    // Dropped once, then resumed from where it broke.
    expect(events.map((e) => [e.range !== null, e.dropped])).toEqual([[false, true], [true, false]]);
    expect((await run(['findmnt', '-no', 'FSTYPE', env.PC_TARGET])).stdout.trim()).toBe('overlay');
    expect((await run(['findmnt', '-no', 'FSTYPE', join(env.PC_DISKLESS_DIR, 'lower')])).stdout.trim()).toBe('squashfs');
    expect(await readFile(join(env.PC_TARGET, 'etc/os-release'), 'utf8')).toBe('ID=golden\n');
    // Writes land in the tmpfs upper layer; the squashfs stays as it was.
    expect(await readFile(join(env.PC_TARGET, 'etc/fstab'), 'utf8')).toMatch(/^# \/etc\/fstab: labdiskless runs diskless .*no disk is mounted\.\n$/);
    expect(await readFile(join(env.PC_DISKLESS_DIR, 'rw/upper/etc/fstab'), 'utf8')).toContain('labdiskless');
    expect(await readFile(env.PC_SWITCH_ROOT_FILE, 'utf8')).toBe(`${env.PC_TARGET}\n`);

    const down = await runDiskless(plan, sfs, 'run_cleanups', env);
    expect(down.code, down.out).toBe(0);
    expect(await mountsUnder(dir)).toEqual([]);
  });

  it('a corrupted root is refused: `failed` in phase download, nothing mounted (the tmpfs that held the bytes is gone)', async () => {
    const dir = await tmp();
    const sfs = await squashfs(dir);
    const bytes = await readFile(sfs.path);
    bytes.fill(0x5a, 4096, 8192);
    await writeFile(join(dir, 'srv/images/corrupt.sfs'), bytes);
    const { base } = await serve(join(dir, 'srv'), 0);
    const plan = { ...(await labPlan()), admin: { ...(await labPlan()).admin, httpBase: base } };
    const calls = join(dir, 'calls');
    const env = { PC_TARGET: join(dir, 'newroot'), PC_DISKLESS_DIR: join(dir, 'run/diskless'), PC_SWITCH_ROOT_FILE: join(dir, 'run/switch-root'), PC_LOG: join(dir, 'log') };
    const r = await runDiskless(plan, { ...sfs, fileName: 'corrupt.sfs' }, `${stubs(calls)}log_open; trap_errors; trap run_cleanups EXIT; PC_PHASE=download; fetch_root; mount_root; echo SHOULD-NOT-RUN`, env);
    expect(r.code).toBe(1);
    expect(r.out).not.toContain('SHOULD-NOT-RUN');
    expect(r.out).toContain('the diskless root does not match its sha256');
    expect(await readFile(calls, 'utf8')).toContain('POST failed?host=\n');
    expect(await readFile(join(dir, 'log'), 'utf8')).toContain('FAILED in phase download');
    expect(await mountsUnder(dir)).toEqual([]);
    expect(await readFile(env.PC_SWITCH_ROOT_FILE, 'utf8').catch(() => null)).toBeNull();
  });
});
