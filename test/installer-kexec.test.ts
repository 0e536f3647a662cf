/**
 * phoneHome.afterInstall 'kexec': installer/lib/90-finish.sh run for real in bash against a target tree and
 * a local HTTP server standing in for node0's watcher. kexec, reboot, poweroff and systemctl are lab
 * stand-ins on PATH that record their arguments (the real ones would restart this machine).
 */
import { spawn } from 'node:child_process';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { installerVars, renderAutorun, type FsImageRef, type ImageRef } from '../build/render/autorun.ts';
import { readScriptSources } from '../build/render/scripts.ts';
import { planCluster, type Plan } from '../build/plan/plan.ts';
import { loadSpec } from '../build/spec/load.ts';
import { validateSpec } from '../build/spec/validate.ts';
import { baseSpec } from './fixtures/specs.ts';
import { workspace } from './helpers/workspace.ts';

const IMAGE: ImageRef = { fileName: 'debian-0123456789abcdef.tar.zst', sha256: 'ab'.repeat(32), size: 1 };
const FSIMAGE: FsImageRef = { fileName: 'debian-fedcba9876543210.ext4.zst', sha256: 'cd'.repeat(32), size: 1, imageBytes: 4096 };
const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

async function labPlan(after: 'kexec' | 'reboot'): Promise<Plan> {
  const p = planCluster((await loadSpec('test/e2e/fixtures/lab.config.ts')).spec);
  return { ...p, phoneHome: { ...p.phoneHome, afterInstall: after } };
}

/** A watcher stand-in: answers `done` with `doneAnswer`, everything else with ok; records the paths. */
async function watcher(doneAnswer: string) {
  const paths: string[] = [];
  const server = createServer((req, res) => {
    paths.push((req.url ?? '').split('?')[0]!);
    req.resume();
    req.on('end', () => res.end(`${req.url?.includes('/done?') ? doneAnswer : 'ok'}\n`));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  cleanups.push(() => new Promise((r) => server.close(() => r())));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/portacluster/report`, paths };
}

async function finish(plan: Plan, doneAnswer: string, withKernel = true) {
  const ws = await workspace();
  cleanups.push(ws.cleanup);
  const dir = ws.dir;
  const bin = join(dir, 'bin');
  await mkdir(bin);
  for (const tool of ['kexec', 'reboot', 'poweroff', 'systemctl']) {
    await writeFile(join(bin, tool), `#!/bin/sh\necho "${tool} $*" >> ${dir}/calls\n`);
    await chmod(join(bin, tool), 0o755);
  }
  await mkdir(join(dir, 't/boot'), { recursive: true });
  if (withKernel) {
    for (const f of ['vmlinuz-6.1.0-9-amd64', 'vmlinuz-6.1.0-28-amd64', 'initrd.img-6.1.0-9-amd64', 'initrd.img-6.1.0-28-amd64']) await writeFile(join(dir, 't/boot', f), '');
  }
  // The root filesystem finish_install labels complete (its last write): a real, small ext4 in a file.
  await writeFile(join(dir, 'root.img'), Buffer.alloc(8 << 20));
  const mk = spawn('mkfs.ext4', ['-q', '-F', '-L', 'pc-installing', join(dir, 'root.img')], { stdio: 'ignore' });
  expect(await new Promise((r) => mk.on('close', r))).toBe(0);
  const w = await watcher(doneAnswer);
  const src = await readScriptSources('installer');
  const main = `systemd_is_pid1() { return 1; }
PC_PHONE_HOME_URL=${w.url}; PC_TARGET=${dir}/t; NODE_NAME=labbios; NODE_MAC=52:54:00:00:00:01
for i in "\${!PC_PART_MOUNTS[@]}"; do PART_DEVS[i]=${dir}/root.img; done
trap_errors
finish_install`;
  const script = renderAutorun({ title: 'test', specHash: plan.specHash, vars: installerVars(plan, IMAGE, FSIMAGE), libraries: src.libraries, main: { name: 'test', text: main } });
  const r = await new Promise<{ code: number | null; out: string }>((resolve) => {
    const p = spawn('bash', ['-c', script], { env: { PATH: `${bin}:${process.env.PATH!}`, PC_LOG: join(dir, 'install.log') }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr.on('data', (d: Buffer) => (out += d.toString()));
    p.on('close', (code) => resolve({ code, out }));
  });
  const calls = await readFile(join(dir, 'calls'), 'utf8').catch(() => '');
  return { ...r, calls, paths: w.paths, target: join(dir, 't') };
}

describe("phoneHome.afterInstall: 'kexec'", () => {
  it('loads the newest installed kernel with the OS command line, and starts it once node0 confirmed the switch', async () => {
    const r = await finish(await labPlan('kexec'), 'ok: switched to debian');
    expect(r.code, r.out).toBe(0);
    expect(r.calls).toBe(
      `kexec --load --initrd=${r.target}/boot/initrd.img-6.1.0-28-amd64 --command-line=root=LABEL=root rw console=tty0 console=ttyS0,115200 -- ${r.target}/boot/vmlinuz-6.1.0-28-amd64\nkexec --exec\nreboot \n`,
    );
    // The stand-in's `kexec --exec` returns; the real one returns only when it failed, hence the reboot after it.
    // done before the log, and the kernel started after both.
    expect(r.paths).toEqual(['/portacluster/report/done', '/portacluster/report/log']);
    expect(r.out).toMatch(/step kexec_load \d+ \d+/);
  });

  it('reboots instead when node0 did not say it switched the link (an old watcher, the access-log input)', async () => {
    const r = await finish(await labPlan('kexec'), 'ok');
    expect(r.code, r.out).toBe(0);
    expect(r.calls).toMatch(/^kexec --load .*\nreboot \n$/);
    expect(r.out).toContain('node0 did not confirm the switch to the OS (its answer: ok): rebooting instead of kexec');
  });

  it('reboots when the image has no kernel to load, and a plain reboot plan never touches kexec', async () => {
    const none = await finish(await labPlan('kexec'), 'ok: switched to debian', false);
    expect(none.code, none.out).toBe(0);
    expect(none.calls).toBe('reboot \n');
    expect(none.out).toContain('the image has no /boot/vmlinuz-*: the node reboots instead of kexec');
    const plain = await finish(await labPlan('reboot'), 'ok: switched to debian');
    expect(plain.calls).toBe('reboot \n');
  });

  it('the spec accepts kexec only with the built-in environment', () => {
    const s = baseSpec();
    s.phoneHome = { ...s.phoneHome, afterInstall: 'kexec' };
    expect(planCluster(validateSpec(structuredClone(s), 'kexec')).phoneHome.afterInstall).toBe('kexec');
    expect(() => validateSpec({ ...structuredClone(s), installerEnv: { type: 'systemrescue', path: '/srv/iso/sysrcd.iso', sha256: 'ab'.repeat(32) } }, 'kexec')).toThrow(/phoneHome\.afterInstall: kexec needs installerEnv\.type "builtin"/);
    expect(() => validateSpec({ ...structuredClone(s), phoneHome: { ...s.phoneHome, afterInstall: 'kexec --exec' } }, 'bad')).toThrow(/phoneHome\.afterInstall/);
  });
});
