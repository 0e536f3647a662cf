/**
 * phoneHome.afterInstall 'kexec' in the QEMU lab: a BIOS node installs (image mode), reports done, the
 * watcher switches its link to the OS and says so, and the installer starts the installed kernel directly.
 * The VM runs with -no-reboot, so a firmware reboot would end qemu: the installed OS reaching `login:` in
 * the same qemu process, with no second PXE round, is the deterministic signal. The next real boot goes
 * the normal way: the node's link already points at the OS.
 */
import { mkdtemp, readFile, readlink, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pxelinuxPath } from '../../build/layout.ts';
import { buildLabDist, startLab, type Lab } from './harness/lab.ts';

const MIN = 60_000;
let lab: Lab;
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp('/var/tmp/pc-e2e-kexec-');
  lab = await startLab(await buildLabDist(dir, (raw) => void (raw.phoneHome = { ...raw.phoneHome, afterInstall: 'kexec' })));
}, 60 * MIN);

afterAll(async () => {
  await lab?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe("phoneHome.afterInstall 'kexec'", () => {
  it('installs, is switched to the OS, and kexecs into the installed OS without a firmware reboot', async () => {
    const name = 'labbios';
    await lab.switchTo(name, 'installer');
    const vm = await lab.startNode(name, { disk: join(dir, `${name}.qcow2`), freshDisk: true });
    let exited = false;
    void vm.exited.then(() => (exited = true));
    try {
      await lab.waitReport(name, 'done', 20 * MIN);
      const switched = await lab.waitSwitched(name, MIN);
      expect(switched.switched!.to).toBe(lab.plan.os.name);
      const doneAt = (Date.now() - vm.started) / 1000;
      const loginAt = await vm.waitSerial(new RegExp(`^${name} login:`, 'm'), 10 * MIN);
      // Same qemu process (-no-reboot): no firmware reboot happened.
      expect(exited).toBe(false);
      const serial = await readFile(vm.serialLog, 'utf8');
      expect(serial).toMatch(/portacluster: step kexec_load \d+ \d+/);
      expect(serial).toContain(`installed ${lab.plan.os.name} on ${name}; kexec`);
      // Two kernels in one qemu process: the installer environment's, then the installed OS's.
      expect(serial.match(/Linux version \d/g) ?? []).toHaveLength(2);
      expect(await readlink(join(lab.dist, pxelinuxPath(lab.node(name).pxeFile)))).toBe(lab.plan.os.name);
      const out = await lab.ssh(lab.keys.admin, lab.plan.users[0]!.name, lab.node(name).ip!, 'hostname; cat /proc/cmdline; findmnt -no FSTYPE /', 3 * MIN);
      const [host, cmdline, fstype] = out.split('\n');
      expect(host).toBe(name);
      expect(cmdline).toMatch(/^root=LABEL=root rw console=tty0 console=ttyS0,115200/);
      expect(fstype).toBe('ext4');
      console.log(`kexec: done at ${doneAt.toFixed(1)} s after power-on, installed OS at login: ${loginAt.toFixed(1)} s`);
    } catch (e) {
      console.error(await lab.diagnose([vm]));
      throw e;
    } finally {
      await vm.quit?.();
    }
  }, 40 * MIN);
});
