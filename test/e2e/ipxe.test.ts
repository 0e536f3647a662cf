/**
 * iPXE over HTTP, in the same lab as the pxelinux loop: a BIOS and a UEFI node whose spec says
 * `loader: ipxe` boot the installer, the installed OS and rescue through iPXE (dnsmasq hands iPXE clients
 * the boot.ipxe URL; everything after it is HTTP), and `portacluster reimage` (the CLI, as on node0) sends
 * an iPXE node and a pxelinux node back to the installer through their own loaders. Signals: phone-home
 * reports, serial lines, nginx's access log, ssh; never a sleep.
 */
import { mkdtemp, readFile, readlink, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildLabDist, startLab, type Lab } from './harness/lab.ts';
import type { Vm } from './harness/vm.ts';
import { DNSMASQ_CONF, IPXE_DIR, ipxeNodeFile, PXELINUX_DIR } from '../../build/layout.ts';

const MIN = 60_000;
let lab: Lab;
let dir: string;
const figures: string[] = [];
const NODES = ['labipxe', 'labipxeuefi'] as const;

async function withDiagnosis<T>(vms: Vm[], fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    console.error(await lab.diagnose(vms));
    throw e;
  }
}

/** nginx's access log: what a node fetched over HTTP (iPXE loads kernel and initrds this way). */
async function httpFetches(ip: string): Promise<string[]> {
  const log = await readFile(join(dir, 'log/access.log'), 'utf8');
  return log
    .split('\n')
    .filter((l) => l.startsWith(`${ip} `))
    .map((l) => /"GET (\S+)/.exec(l)?.[1] ?? '')
    .filter(Boolean);
}

describe.sequential('iPXE over HTTP (QEMU, BIOS and UEFI)', () => {
  beforeAll(async () => {
    dir = await mkdtemp('/var/tmp/pc-e2e-ipxe-');
    lab = await startLab(await buildLabDist(dir));
  }, 60 * MIN);

  afterAll(async () => {
    await lab?.stop();
    console.log(`figures:\n  ${figures.join('\n  ')}`);
    if (dir && !process.env.PORTACLUSTER_E2E_KEEP) await rm(dir, { recursive: true, force: true });
  });

  it('installer, installed OS and rescue boot through iPXE on BIOS and UEFI', async () => {
    const vms: Vm[] = [];
    const disks = Object.fromEntries(NODES.map((n) => [n, join(dir, `${n}.qcow2`)])) as Record<(typeof NODES)[number], string>;
    await withDiagnosis(vms, async () => {
      // dnsmasq's per-node tag: these two get the iPXE script, the rest of the cluster pxelinux.
      const conf = await readFile(join(lab.dist, DNSMASQ_CONF), 'utf8');
      for (const n of NODES) expect(conf).toContain(`dhcp-host=${lab.node(n).mac},set:ipxe-node,${n},${lab.node(n).ip}`);

      await Promise.all(
        NODES.map(async (name) => {
          const vm = await lab.startNode(name, { disk: disks[name], freshDisk: true });
          vms.push(vm);
          const done = await lab.waitReport(name, 'done', 12 * MIN);
          await vm.exited;
          figures.push(`${name}: iPXE installer power-on → done ${((done.at - vm.started) / 1000).toFixed(1)} s`);
          const e = await lab.waitSwitched(name, 2 * MIN);
          expect(e.switched).toMatchObject({ from: 'installer', to: lab.plan.os.name });
        }),
      );
      for (const name of NODES) {
        const fetched = await httpFetches(lab.node(name).ip!);
        // Kernel and initramfs came over HTTP, chosen by the per-MAC iPXE script.
        expect(fetched).toEqual(expect.arrayContaining(['/pxe/ipxe/boot.ipxe', `/pxe/ipxe/${lab.node(name).pxeFile}.ipxe`, '/pxe/installer-kernel', '/pxe/installer-initramfs']));
        expect(await readlink(join(lab.dist, IPXE_DIR, ipxeNodeFile(lab.node(name).mac)))).toBe(`${lab.plan.os.name}.ipxe`);
      }

      // The installed OS, through iPXE: its own kernel and initramfs over HTTP, root on the node's disk.
      await Promise.all(
        NODES.map(async (name) => {
          const vm = await lab.startNode(name, { disk: disks[name] });
          vms.push(vm);
          const s = await vm.waitSerial(new RegExp(`^${name} login:`, 'm'), 8 * MIN);
          figures.push(`${name}: installed OS via iPXE power-on → login: ${s.toFixed(1)} s`);
          const out = await lab.ssh(lab.keys.admin, lab.plan.users[0]!.name, lab.node(name).ip!, 'hostname; findmnt -no SOURCE /', 3 * MIN);
          expect(out.split('\n')[0]).toBe(name);
          await vm.quit();
        }),
      );
      for (const name of NODES) expect(await httpFetches(lab.node(name).ip!)).toEqual(expect.arrayContaining([`/pxe/${lab.plan.os.kernel}`, `/pxe/${lab.plan.os.initramfs}`]));

      // Rescue, switched by the CLI as an admin on node0 would.
      const switched = await lab.cli(['rescue', ...NODES, '--json']);
      expect(JSON.parse(switched).switched.map((s: { node: string }) => s.node).sort()).toEqual([...NODES].sort());
      await Promise.all(
        NODES.map(async (name) => {
          const vm = await lab.startNode(name, { disk: disks[name] });
          vms.push(vm);
          await lab.waitReport(name, 'rescue-ready', 6 * MIN);
          const who = await lab.ssh(lab.keys.rescue, lab.plan.rescue.user, lab.node(name).ip!, 'id -un', 2 * MIN);
          expect(who.trim()).toBe(lab.plan.rescue.user);
          await vm.quit();
        }),
      );
    });
  }, 45 * MIN);

  it('`portacluster reimage` sends an iPXE node and a pxelinux node to the installer through their own loaders', async () => {
    const vms: Vm[] = [];
    await withDiagnosis(vms, async () => {
      const nodes = ['labipxe', 'labbios'];
      await lab.cli(['reimage', ...nodes]);
      for (const n of nodes) {
        expect(await readlink(join(lab.dist, PXELINUX_DIR, lab.node(n).pxeFile))).toBe('installer');
        expect(await readlink(join(lab.dist, IPXE_DIR, ipxeNodeFile(lab.node(n).mac)))).toBe('installer.ipxe');
      }
      const since = lab.reports.length;
      await Promise.all(
        nodes.map(async (name) => {
          const vm = await lab.startNode(name, { disk: join(dir, `${name}-reimage.qcow2`), freshDisk: true });
          vms.push(vm);
          // A new start report: the first test's install left older ones in the list.
          const deadline = Date.now() + 6 * MIN;
          while (!lab.reports.slice(since).some((r) => r.host === name && r.phase === 'start')) {
            if (Date.now() > deadline) throw new Error(`${name} did not start the installer after reimage`);
            await new Promise((r) => setTimeout(r, 200));
          }
          await vm.quit();
        }),
      );
      expect(lab.reports.slice(since).filter((r) => r.phase === 'start').map((r) => r.host).sort()).toEqual([...nodes].sort());
      // The iPXE node fetched the installer over HTTP; the pxelinux node took it over TFTP.
      expect(await httpFetches(lab.node('labipxe').ip!)).toContain('/pxe/installer-initramfs');
      expect(await httpFetches(lab.node('labbios').ip!)).not.toContain('/pxe/installer-initramfs');
      // dnsmasq's log is in serve's output, one line per event, prefixed by the service.
      const dnsmasqLog = lab.serveLog().join('\n');
      expect(dnsmasqLog).toMatch(new RegExp(`sent \\S+/pxe/installer-initramfs to ${lab.node('labbios').ip!.replace(/\./g, '\\.')}`));
    });
  }, 20 * MIN);
});
