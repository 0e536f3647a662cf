/**
 * The reimaging loop, for real: nodes PXE-boot in QEMU through the generated dnsmasq and nginx configs,
 * run the generated installer in the built-in environment, phone home, get switched to the OS profile and
 * boot the installed golden image from their own disk; rescue; and the four faults. Every wait is for a
 * deterministic signal (a phone-home report, a serial-console line, qemu exiting on power-off); the
 * timeouts only bound a hang.
 */
import { copyFile, mkdtemp, readFile, readlink, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run } from '../../build/lib/run.ts';
import { buildLabDist, corruptCopy, diskSignatures, startLab, FLAKY_PORT, type Lab } from './harness/lab.ts';
import type { Vm } from './harness/vm.ts';
import { PXELINUX_DIR, autorunPath, imagePath, urlFor } from '../../build/layout.ts';
import type { StateDoc } from '../../build/lifecycle/state.ts';
import { vmPower } from '../../build/power/qemu-monitor.ts';

const MIN = 60_000;
let lab: Lab;
let dir: string;
const figures: string[] = [];
const rootUuids = new Map<string, string>();
const t0 = Date.now();
/** Progress on stderr as it happens, so a hung or slow run shows where it is. */
const progress = (msg: string) => process.stderr.write(`[e2e +${((Date.now() - t0) / 1000).toFixed(0)} s] ${msg}\n`);

/** Runs `fn`; on failure prints the serial tails and server logs first, so a red run says why. */
async function withDiagnosis<T>(vms: Vm[], fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    console.error(await lab.diagnose(vms));
    throw e;
  }
}

/** Polls a condition the lab's event lists will make true (a report arriving), bounded by a timeout. */
async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`no ${what} within ${ms / 1000} s`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function exitedWithin(vm: Vm, ms: number): Promise<number | null> {
  return Promise.race([vm.exited, new Promise<never>((_, rej) => setTimeout(() => rej(new Error(`${vm.name} did not power off within ${ms / 1000} s`)), ms))]);
}

/** Boots `name` into the installer on `disk`; resolves when it reported done and powered off. */
async function install(name: string, disk: string, fresh: boolean): Promise<{ vm: Vm; seconds: number }> {
  const vm = await lab.startNode(name, { disk, freshDisk: fresh });
  progress(`${name}: installer booting`);
  const since = lab.reports.length;
  await lab.waitReport(name, 'done', 12 * MIN);
  progress(`${name}: reported done`);
  await exitedWithin(vm, 2 * MIN);
  progress(`${name}: powered off`);
  const mine = lab.reports.slice(since).filter((r) => r.host === name);
  const at = (p: string) => ((mine.find((r) => r.phase === p)?.at ?? NaN) - vm.started) / 1000;
  figures.push(`${name}: start ${at('start').toFixed(1)} s, partition ${at('partition').toFixed(1)}, download ${at('download').toFixed(1)}, configure ${at('configure').toFixed(1)}, done ${at('done').toFixed(1)}, powered off ${((Date.now() - vm.started) / 1000).toFixed(1)} s`);
  return { vm, seconds: (Date.now() - vm.started) / 1000 };
}

/** Boots the installed OS from the network and checks hostname, key login and sudo over ssh. */
async function bootInstalled(name: string, disk: string): Promise<Vm> {
  const node = lab.node(name);
  const vm = await lab.startNode(name, { disk });
  progress(`${name}: installed OS booting`);
  const seconds = await vm.waitSerial(new RegExp(`^${name} login:`, 'm'), 8 * MIN);
  progress(`${name}: login: after ${seconds.toFixed(1)} s`);
  figures.push(`${name}: installed OS power-on → login: ${seconds.toFixed(1)} s`);
  const out = await lab.ssh(lab.keys.admin, lab.plan.users[0]!.name, node.ip!, 'hostname; sudo -n id -u; test -s /etc/machine-id && echo machine-id; findmnt -no FSTYPE /; findmnt -no UUID /; findmnt -bno SIZE /', 3 * MIN);
  const lines = out.split('\n');
  expect(lines.slice(0, 4)).toEqual([name, '0', 'machine-id', 'ext4']);
  // Image mode: the image was grown to the partition (4 GiB disk less the 64 MiB ESP).
  expect(Number(lines[5])).toBeGreaterThan(3.5 * 2 ** 30);
  rootUuids.set(name, lines[4]!);
  progress(`${name}: ssh checks passed`);
  return vm;
}

/** The lab installs in image mode; the tarball-mode variants of the fault tests use this plan. */
const tarballMode = () => ({ ...lab.plan, image: { ...lab.plan.image, installMode: 'tarball' as const } });

describe.sequential('reimaging loop (QEMU, PXE through the generated dnsmasq and nginx)', () => {
  beforeAll(async () => {
    dir = await mkdtemp('/var/tmp/pc-e2e-');
    const built = await buildLabDist(dir);
    figures.push(`dist build (cached): ${built.buildSeconds.toFixed(1)} s`);
    lab = await startLab(built);
  }, 60 * MIN);

  afterAll(async () => {
    await lab?.stop();
    console.log(`figures:\n  ${figures.join('\n  ')}`);
    if (dir && !process.env.PORTACLUSTER_E2E_KEEP) await rm(dir, { recursive: true, force: true });
  });

  it('BIOS and UEFI nodes install, report done, are switched, and boot the installed OS with the spec hostname and key', async () => {
    const disks = { labbios: join(dir, 'labbios.qcow2'), labuefi: join(dir, 'labuefi.qcow2') };
    const vms: Vm[] = [];
    await withDiagnosis(vms, async () => {
      const results = await Promise.all(
        (['labbios', 'labuefi'] as const).map(async (name) => {
          const r = await install(name, disks[name], true);
          vms.push(r.vm);
          return r;
        }),
      );
      for (const name of ['labbios', 'labuefi']) {
        // The watcher (`portacluster watch`, reading nginx's access log) flips the link on `done`.
        const e = await lab.waitSwitched(name, 2 * MIN);
        expect(e.switched).toMatchObject({ from: 'installer', to: lab.plan.os.name });
        expect(await readlink(join(lab.dist, PXELINUX_DIR, lab.node(name).pxeFile))).toBe(lab.plan.os.name);
      }
      // Progress from the node: the state's progress rose to the image size; the run's phases have timestamps.
      const state = JSON.parse(await readFile(lab.stateFile, 'utf8')) as StateDoc;
      const size = lab.fsImage!.size;
      for (const name of ['labbios', 'labuefi']) {
        const s = state.nodes[name]!;
        expect(s.progress).toMatchObject({ bytes: size, total: size });
        const seen = lab.watcherEvents.filter((e) => e.node === name && e.state === 'progress').map((e) => e.progress!);
        expect(seen.map((p) => p.bytes)).toEqual(seen.map((p) => p.bytes).sort((a, b) => a - b));
        expect(seen.at(-1)).toMatchObject({ bytes: size, total: size });
        expect(s.history.map((h) => h.phase)).toEqual(['requested', 'start', 'disk', 'partition', 'download', 'extract', 'configure', 'done']);
        expect(s.history.every((h) => Date.parse(h.at) >= Date.parse(s.history[0]!.at))).toBe(true);
        const last = s.runs!.at(-1)!;
        expect(last).toMatchObject({ run: s.run, result: 'done' });
        expect(Object.keys(last.phases)).toEqual(['requested', 'start', 'disk', 'partition', 'download', 'extract', 'configure']);
        figures.push(`${name}: ${seen.length} progress report(s) (${seen.map((p) => `${Math.round((100 * p.bytes) / p.total)}% ${(p.rateBps / 2 ** 20).toFixed(1)} MiB/s`).join(', ')}); seconds per phase ${JSON.stringify(last.phases)}`);
      }
      const booted = await Promise.all((['labbios', 'labuefi'] as const).map((name) => bootInstalled(name, disks[name])));
      vms.push(...booted);
      for (const vm of booted) {
        progress(`${vm.name}: quitting`);
        await vm.quit();
      }
      progress('installed nodes stopped');
      // The same image on both disks, but each root got a UUID of its own.
      expect(rootUuids.get('labbios')).toMatch(/^[0-9a-f-]{36}$/);
      expect(rootUuids.get('labbios')).not.toBe(rootUuids.get('labuefi'));
      expect(results.length).toBe(2);
    });
  }, 40 * MIN);

  it('rescue: the node is reachable over ssh with the rescue key; a corrupt golden tarball is refused and reported failed', async () => {
    const vms: Vm[] = [];
    await withDiagnosis(vms, async () => {
      // Both install modes: a corrupt tarball (streamed into the filesystems) and a corrupt ext4 image
      // (streamed onto the root partition) are refused and wiped.
      const corrupt = await corruptCopy(lab.dist, lab.image);
      await lab.addInstallerVariant('fault-corrupt', tarballMode(), corrupt);
      await lab.switchTo('labcorrupt', 'fault-corrupt');
      const corruptImage = await corruptCopy(lab.dist, lab.fsImage!);
      await lab.addInstallerVariant('fault-corrupt-image', lab.plan, lab.image, corruptImage);
      await lab.switchTo('labcorruptimg', 'fault-corrupt-image');
      const corruptDisk = join(dir, 'labcorrupt.qcow2');
      const corruptImageDisk = join(dir, 'labcorruptimg.qcow2');
      const rescueVm = await lab.startNode('labrescue', { disk: join(dir, 'labrescue.qcow2'), freshDisk: true });
      const corruptVm = await lab.startNode('labcorrupt', { disk: corruptDisk, freshDisk: true });
      const corruptImageVm = await lab.startNode('labcorruptimg', { disk: corruptImageDisk, freshDisk: true });
      vms.push(rescueVm, corruptVm, corruptImageVm);

      await lab.waitReport('labrescue', 'rescue-ready', 6 * MIN);
      const who = await lab.ssh(lab.keys.rescue, lab.plan.rescue.user, lab.node('labrescue').ip!, 'id -un; cat /run/portacluster-env', 2 * MIN);
      expect(who.split('\n').slice(0, 2)).toEqual([lab.plan.rescue.user, 'builtin']);
      await rescueVm.quit();

      const failed = await lab.waitReport('labcorrupt', 'failed', 10 * MIN);
      expect(failed.failedPhase).toBe('download');
      expect(failed.body).toContain('does not match its sha256');
      expect(lab.reports.some((r) => r.host === 'labcorrupt' && r.phase === 'done')).toBe(false);
      // The full log follows the failed report.
      await until(() => lab.reports.some((r) => r.host === 'labcorrupt' && r.phase === 'log'), MIN, 'the log upload of labcorrupt');
      expect(await readlink(join(lab.dist, PXELINUX_DIR, lab.node('labcorrupt').pxeFile))).toBe('fault-corrupt');
      await corruptVm.quit();
      // Nothing mountable (let alone bootable) is left of the unverified bytes.
      expect(await diskSignatures(corruptDisk, dir)).toEqual([]);

      const failedImage = await lab.waitReport('labcorruptimg', 'failed', 10 * MIN);
      expect(failedImage.failedPhase).toBe('download');
      expect(failedImage.body).toContain('does not match its sha256');
      expect(lab.reports.some((r) => r.host === 'labcorruptimg' && r.phase === 'done')).toBe(false);
      await corruptImageVm.quit();
      expect(await diskSignatures(corruptImageDisk, dir)).toEqual([]);
    });
  }, 30 * MIN);

  it('a selector matching no disk writes nothing; a dropped download on an installed disk is resumed and the reinstall succeeds', async () => {
    const vms: Vm[] = [];
    await withDiagnosis(vms, async () => {
      const installed = join(dir, 'labbios.qcow2');
      const nodiskDisk = join(dir, 'labnodisk.qcow2');
      const dropDisk = join(dir, 'labdrop.qcow2');
      await copyFile(installed, nodiskDisk);
      await copyFile(installed, dropDisk);
      await lab.addInstallerVariant('fault-nodisk', { ...lab.plan, disk: { ...lab.plan.disk, target: { byId: 'virtio-no-such-disk' } } }, lab.image, lab.fsImage);
      // Tarball mode here (image mode's resume is driven by the fast tier's flaky server too).
      await lab.addInstallerVariant('fault-drop', { ...tarballMode(), admin: { ...lab.plan.admin, httpBase: `http://${lab.plan.admin.ip}:${FLAKY_PORT}` } }, lab.image);
      await lab.switchTo('labnodisk', 'fault-nodisk');
      await lab.switchTo('labdrop', 'fault-drop');

      const nodiskVm = await lab.startNode('labnodisk', { disk: nodiskDisk });
      vms.push(nodiskVm);
      const dropRun = install('labdrop', dropDisk, false).then((r) => (vms.push(r.vm), r));

      const failed = await lab.waitReport('labnodisk', 'failed', 10 * MIN);
      expect(failed.failedPhase).toBe('disk');
      expect(failed.body).toContain('no disk at /dev/disk/by-id/virtio-no-such-disk');
      await nodiskVm.quit();
      const same = await run(['qemu-img', 'compare', '-q', installed, nodiskDisk], { nothrow: true });
      expect(same.exitCode, 'the disk of the refused install changed').toBe(0);

      await dropRun;
      await lab.waitSwitched('labdrop', 2 * MIN);
      const flaky = await run(['cat', join(dir, 'flaky.log')]);
      const downloads = flaky.stdout.trim().split('\n').map((l) => JSON.parse(l) as { range: string | null; dropped: boolean });
      expect(downloads.filter((d) => d.dropped).length).toBe(2);
      expect(downloads.at(-1)).toMatchObject({ dropped: false });
      expect(downloads.at(-1)!.range).toMatch(/^bytes=\d+-$/);
    });
  }, 30 * MIN);

  it('a node whose download stalls is power-cycled retries times through its VM monitor, then parked off and marked failed with the phase', async () => {
    const vms: Vm[] = [];
    const t = Date.now();
    await withDiagnosis(vms, async () => {
      // A server that accepts the image request and never answers: the stream stalls (curl gives up after
      // 30 s without bytes and resumes, forever), the node stays in its phase past the deadline.
      lab.ns.spawn(['python3', '-c', STALL_SERVER, lab.plan.admin.ip, String(STALL_PORT)]);
      await lab.addInstallerVariant('fault-stall', lab.plan, lab.image, lab.fsImage);
      const autorun = join(lab.dist, autorunPath('fault-stall'));
      const image = urlFor(lab.plan.admin.httpBase, imagePath(lab.fsImage!.fileName));
      const script = await readFile(autorun, 'utf8');
      expect(script).toContain(`'${image}'`);
      await writeFile(autorun, script.replace(`'${image}'`, `'${image.replace(lab.plan.admin.httpBase, `http://${lab.plan.admin.ip}:${STALL_PORT}`)}'`));
      await lab.switchTo('labstall', 'fault-stall');
      // The watcher's power-cycle is a monitor system_reset: this VM resets on it (and pauses when parked)
      // instead of exiting as the harness's other VMs do (-no-reboot).
      const vm = await lab.startNode('labstall', { disk: join(dir, 'labstall.qcow2'), freshDisk: true, extraArgs: ['-action', 'reboot=reset,shutdown=pause'] });
      vms.push(vm);
      progress('labstall: installer booting, its image will stall');
      const retry = await until(() => lab.watcherEvents.some((e) => e.node === 'labstall' && e.source === 'timer'), 6 * MIN, 'a retry of labstall').then(() => lab.watcherEvents.find((e) => e.node === 'labstall' && e.source === 'timer')!);
      progress(`labstall: ${retry.state}: ${retry.detail}`);
      // The stream stalls in extract; once curl gives up on it (30 s without a byte) the installer resumes
      // in the download phase, which stalls as well: whichever the deadline catches is named.
      expect(retry).toMatchObject({ state: 'requested', tries: 2, detail: expect.stringMatching(/^missed the (extract|download) deadline \(0\.5 min\): power-cycled into the installer again, try 2 of 2$/) });
      const failed = await lab.waitReport('labstall', 'failed', 6 * MIN);
      progress(`labstall: failed: ${failed.body}`);
      expect(['extract', 'download']).toContain(failed.failedPhase);
      expect(failed.body).toBe(`timeout in ${failed.failedPhase} after 2 tries`);
      const mine = lab.watcherEvents.filter((e) => e.node === 'labstall');
      // Two boots into the installer (the first, and the retry), each counted; parked off through the monitor.
      expect(mine.filter((e) => e.phase === 'start' && e.state === 'installing')).toHaveLength(2);
      expect(mine.at(-1)).toMatchObject({ state: 'failed', parked: 'powered off', tries: 2 });
      expect(await vmPower({ monitor: vm.monitor, pid: vm.child.pid! })).not.toBe('running');
      const s = (JSON.parse(await readFile(lab.stateFile, 'utf8')) as StateDoc).nodes.labstall!;
      expect(s).toMatchObject({ state: 'failed', phase: failed.failedPhase, tries: 2, parked: 'powered off' });
      expect(s.runs!.at(-1)).toMatchObject({ result: 'failed' });
      expect(await readlink(join(lab.dist, PXELINUX_DIR, lab.node('labstall').pxeFile))).toBe('fault-stall');
      await vm.quit();
      figures.push(`stall case: boot → retry → parked in ${((Date.now() - t) / 1000).toFixed(0)} s`);
    });
  }, 12 * MIN);
});

const STALL_PORT = 8082;
/** Accepts connections and reads requests, never answers: a download that stalls. */
const STALL_SERVER = `
import socket, sys, threading
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(64)
held = []
while True:
    c, _ = s.accept(); held.append(c)
`;
