/**
 * Discover and enrol, on a real machine nobody typed in: a QEMU VM with a MAC the spec does not know, two
 * disks with their own serials and 1 GiB of RAM PXE-boots the discover profile (boot.discover), reports its
 * inventory to the watcher and powers off with both disks byte-for-byte as they were (never written: no
 * allocated cluster in either qcow2). `portacluster enroll` adds it to the lab's JSON spec with a disk
 * selector by its first disk's serial; after a rebuild and serve's reload, `reimage` and a power-on install
 * it onto exactly that disk, and the other stays untouched. The lab's spec has phoneHome.afterInstall
 * 'kexec', so the same boot also proves that: after `done` and the watcher's switch, the installer starts
 * the installed kernel directly; the VM runs with -no-reboot, so the OS reaching `login:` in the same qemu
 * process means no firmware reboot and no second PXE round.
 */
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { capture, run } from '../../build/lib/run.ts';
import { buildLabDist, E2E_CACHE, REPO, startLab, type Lab } from './harness/lab.ts';
import { createDisk } from './harness/vm.ts';

const MIN = 60_000;
const MAC = '52:54:00:00:99:01';
const NAME = 'labnew';
const IP = '192.168.10.40';

let lab: Lab;
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pc-discover-'));
  const built = await buildLabDist(dir, (raw) => {
    raw.boot.discover = true;
    raw.phoneHome = { ...raw.phoneHome, afterInstall: 'kexec' };
  });
  lab = await startLab(built);
}, 30 * MIN);

afterAll(async () => {
  await lab?.stop();
  await rm(dir, { recursive: true, force: true });
});

/** Clusters qemu-img says hold data: none for a disk nothing wrote to. */
async function dataExtents(qcow2: string): Promise<number> {
  const map = JSON.parse(await capture(['qemu-img', 'map', '--output=json', qcow2])) as { data: boolean; length: number }[];
  return map.filter((m) => m.data).reduce((n, m) => n + m.length, 0);
}

describe('discover and enrol (QEMU)', () => {
  it('an unknown machine reports its inventory without writing, is enrolled, and installs onto the disk the selector names', async () => {
    const disksDir = join(lab.dir, 'newmachine');
    await mkdir(disksDir, { recursive: true });
    const [a, b] = [join(disksDir, 'a.qcow2'), join(disksDir, 'b.qcow2')];
    await createDisk(a, '4G');
    await createDisk(b, '6G');
    const disks = ['-drive', `file=${b},if=none,id=d1,format=qcow2,cache=unsafe`, '-device', 'virtio-blk-pci,drive=d1,serial=DISCB'];

    // 1. Discovery: the VM boots what the default link says for an unknown MAC, reports, powers off.
    const t0 = Date.now();
    const vm = await lab.startMachine({ name: 'newmachine', mac: MAC, firmware: 'bios', disk: a, diskSerial: 'DISCA', extraArgs: disks });
    const event = await lab.waitEvent((e) => e.phase === 'inventory' && e.mac === MAC, 5 * MIN);
    const reported = (Date.now() - t0) / 1000;
    expect(event.state).toBe('inventory');
    expect(await vm.exited).toBe(0);
    console.log(`discover: power-on → inventory reported ${reported.toFixed(1)} s`);

    const listed = JSON.parse(await lab.cli(['discovered', '--json'])).machines as any[];
    expect(listed.map((m) => m.mac)).toEqual([MAC]);
    const inv = listed[0].inventory;
    expect(inv.bootMac).toBe(MAC);
    expect(inv.firmware).toBe('bios');
    expect(inv.disks.map((d: any) => [d.name, d.sizeBytes, d.serial, d.byId.filter((x: string) => x.startsWith('virtio-'))])).toEqual([
      ['vda', 4 * 1024 ** 3, 'DISCA', ['virtio-DISCA']],
      ['vdb', 6 * 1024 ** 3, 'DISCB', ['virtio-DISCB']],
    ]);
    // 1024 MiB of RAM, less what the firmware and kernel keep for themselves.
    expect(inv.memoryBytes).toBeGreaterThan(900 * 1024 ** 2);
    expect(inv.memoryBytes).toBeLessThanOrEqual(1024 * 1024 ** 2);
    expect(inv.nics.filter((n: any) => n.boot).map((n: any) => n.mac)).toEqual([MAC]);
    expect(await dataExtents(a)).toBe(0);
    expect(await dataExtents(b)).toBe(0);

    // 2. Enrolment: the lab's JSON spec gains the node, with its own disk selector (the cluster's
    //    onlyNonRemovable matches both disks of this machine).
    const enrolled = JSON.parse(await lab.cli(['enroll', MAC, '--name', NAME, '--ip', IP, '--json']));
    expect(enrolled).toMatchObject({ written: true, entry: { name: NAME, mac: MAC, ip: IP, firmware: 'bios', diskTarget: { byId: 'virtio-DISCA' } }, disk: { name: 'vda', clusterMatches: ['vda', 'vdb'] } });
    expect(enrolled.warnings).toHaveLength(1);
    const again = await run(['node', '--import', 'tsx', join(REPO, 'build/cli/main.ts'), 'enroll', MAC, '--name', 'other', '--config', join(lab.dir, 'lab.json'), '--root', lab.dist, '--state', lab.stateFile], { cwd: REPO, nothrow: true });
    expect(again.exitCode).toBe(2);
    expect(again.stderr).toContain(`MAC ${MAC} is already in the spec: nodes[`);

    // 3. Build and reload (what deploy --activate does on node0), then reimage and power on: it installs.
    await run(['node', '--import', 'tsx', join(REPO, 'build/cli/main.ts'), 'build', '--config', join(lab.dir, 'lab.json'), '--out', lab.dist, '--cache', E2E_CACHE, '--force-out', '-q'], { cwd: REPO, env: { ...process.env, SOURCE_DATE_EPOCH: '1704067200' } });
    await lab.reload();
    await lab.cli(['reimage', NAME]);
    const vm2 = await lab.startMachine({ name: 'newmachine-2', mac: MAC, firmware: 'bios', disk: a, diskSerial: 'DISCA', extraArgs: disks });
    let exited = false;
    void vm2.exited.then(() => (exited = true));
    const switched = await lab.waitSwitched(NAME, 10 * MIN);
    expect(switched.switched!.to).toBe(lab.plan.os.name);
    const doneAt = (Date.now() - vm2.started) / 1000;
    // kexec: the installed OS at login: in the same qemu process (-no-reboot: a firmware reboot ends it).
    const loginAt = await vm2.waitSerial(new RegExp(`^${NAME} login:`, 'm'), 10 * MIN);
    expect(exited).toBe(false);
    const serial = await readFile(vm2.serialLog, 'utf8');
    expect(serial).toMatch(/portacluster: step kexec_load \d+ \d+/);
    expect(serial).toContain(`installed ${lab.plan.os.name} on ${NAME}; kexec`);
    // Two kernels in one qemu process: the installer environment's, then the installed OS's, booted by label.
    expect(serial.match(/Linux version \d/g) ?? []).toHaveLength(2);
    expect(serial).toMatch(/Command line: root=LABEL=root rw console=tty0 console=ttyS0,115200/);
    console.log(`kexec: done at ${doneAt.toFixed(1)} s after power-on, installed OS at login: ${loginAt.toFixed(1)} s`);
    await vm2.quit();
    expect(await dataExtents(a)).toBeGreaterThan(100 * 1024 ** 2);
    expect(await dataExtents(b)).toBe(0);
    const status = JSON.parse(await lab.cli(['status', '--json'])).nodes.find((n: any) => n.name === NAME);
    expect(status).toMatchObject({ state: 'done', profile: lab.plan.profiles.os });
    // Its installer sent the inventory again at start: kept for the node, refreshed on each install.
    expect(status.inventory.disksById.map((d: any) => [d.name, d.byId.filter((x: string) => x.startsWith('virtio-'))])).toEqual([['vda', ['virtio-DISCA']], ['vdb', ['virtio-DISCB']]]);
    expect(Date.parse(status.inventory.seenAt)).toBeGreaterThan(t0 + reported * 1000);
  }, 25 * MIN);
});
