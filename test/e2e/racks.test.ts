/**
 * Two racks, for real (issue 17): node0 (`portacluster serve` in the lab's namespace) on a backbone bridge;
 * two boot servers, each a namespace of its own with its own rack bridge, running the dnsmasq and nginx that
 * `portacluster deploy --parallel 2` put on its disk (harness/racks.ts); one QEMU node behind each. Both
 * nodes at once: `portacluster reimage` switches their links on their servers over ssh, they install through
 * their own server (kernel and scripts from its copy, the image through its cache of node0), their reports
 * reach node0's watcher as the node, `done` switches the links on the servers, and they boot the installed
 * OS to `login:`. node0's log shows each image fetched once per server; each server's log only its node.
 * Two QEMU boots per node, four in all.
 */
import { mkdtemp, readFile, readlink, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAccessLine, type AccessLine } from '../../build/lifecycle/tail.ts';
import { IMAGES_DIR, PXELINUX_DIR } from '../../build/layout.ts';
import { run } from '../../build/lib/run.ts';
import type { PlanNode } from '../../build/plan/plan.ts';
import { REPO, buildLabDist, deployCli, startLab, type BuiltDist, type Lab } from './harness/lab.ts';
import { startRack, startRackSshd, writeRacksSshConfig, type Rack, type RackDisk } from './harness/racks.ts';
import { createDisk, startVm, type Vm } from './harness/vm.ts';

const MIN = 60_000;
const RACKS = [
  { server: 'rack1', node: 'rack1node', mac: '52:54:00:a5:01:01', net: '10.101.1', backbone: '192.168.10.201' },
  { server: 'rack2', node: 'rack2node', mac: '52:54:00:a5:02:01', net: '10.101.2', backbone: '192.168.10.202' },
] as const;
const t0 = Date.now();
const progress = (msg: string) => process.stderr.write(`[racks +${((Date.now() - t0) / 1000).toFixed(0)} s] ${msg}\n`);

let dir: string;
let built: BuiltDist;
let lab: Lab | undefined;
let servedRoot: string;
let sshConfig: string;
const disks: RackDisk[] = [];
const racks: Rack[] = [];
const vms: Vm[] = [];
const figures: string[] = [];

/** The CLI as an admin runs it on node0: in node0's namespace, on the deployed tree, with the servers' ssh config. */
async function cli(args: string[]): Promise<string> {
  const argv = ['node', '--import', 'tsx', join(REPO, 'build/cli/main.ts'), ...args, '--config', join(dir, 'lab.json'), '--ssh-config', sshConfig, '--root', servedRoot, '--state', join(dir, 'watch-state.json')];
  return (await run(lab!.ns.exec(argv), { cwd: REPO })).stdout;
}

/** node0's or a server's access log, parsed as the watcher parses it (tail.ts). */
async function accessLog(file: string): Promise<AccessLine[]> {
  return (await readFile(file, 'utf8')).split('\n').flatMap((l) => parseAccessLine(l) ?? []);
}

const node = (name: string): PlanNode => lab!.node(name);
const linkOn = (base: string, name: string) => readlink(join(base, 'public', PXELINUX_DIR, node(name).pxeFile));

describe.sequential('two racks behind two boot servers (QEMU)', () => {
  beforeAll(async () => {
    dir = await mkdtemp('/var/tmp/pc-e2e-racks-');
    servedRoot = join(dir, 'srv', 'public');
    built = await buildLabDist(dir, (raw) => {
      raw.admin.servedRoot = servedRoot;
      for (const r of RACKS) {
        // Installed already: reimage has a link to switch on the server.
        raw.nodes.push({ name: r.node, mac: r.mac, ip: `${r.net}.11`, firmware: 'bios', loader: 'ipxe', profile: raw.boot.os.name });
      }
      raw.bootServers = RACKS.map((r) => ({ name: r.server, backboneIp: r.backbone, interface: 'pcbr0', ip: `${r.net}.1`, prefix: 24, rangeStart: `${r.net}.100`, rangeEnd: `${r.net}.150`, nodes: [r.node], ssh: r.server }));
    });
    figures.push(`dist build (cached): ${built.buildSeconds.toFixed(1)} s`);
    progress('dist built');
    // node0 serves the tree deploy publishes (as in faults.test.ts), deployed from its namespace, where the
    // servers' sshds listen.
    lab = await startLab({ ...built, dist: servedRoot }, {
      sshConfig: join(dir, 'racks.ssh_config'),
      async beforeServe(ns) {
        for (const b of built.plan.bootServers) disks.push(await startRackSshd(dir, b, servedRoot, ns.name));
        sshConfig = await writeRacksSshConfig(join(dir, 'racks.ssh_config'), disks);
        const t = Date.now();
        const r = await deployCli(built.dist, servedRoot, ['--ssh-config', sshConfig, '--parallel', '2'], ns.name);
        expect(r.servers?.map((s) => [s.name, s.error])).toEqual(RACKS.map((x) => [x.server, null]));
        figures.push(`deploy --parallel 2 (node0 + 2 servers): ${((Date.now() - t) / 1000).toFixed(1)} s`);
        progress('deployed to node0 and both servers');
      },
    });
    for (const d of disks) racks.push(await startRack(dir, d, servedRoot, lab.ns, built.plan.admin.prefix));
    progress('racks up');
  }, 30 * MIN);

  afterAll(async () => {
    for (const vm of vms) await vm.quit().catch(() => {});
    for (const r of racks) await r.stop().catch(() => {});
    // A rack that never came up still has its sshd.
    for (const d of disks) if (!racks.some((r) => r.sshd === d.sshd)) await d.sshd.stop().catch(() => {});
    await lab?.stop();
    console.log(`figures:\n  ${figures.join('\n  ')}`);
    if (dir && !process.env.PORTACLUSTER_E2E_KEEP) await rm(dir, { recursive: true, force: true });
  });

  it('reimage switches each node on its server; both install through their own server, are switched back on done, and boot the installed OS', async () => {
    const lb = lab!;
    const os = lb.plan.profiles.os;
    try {
      for (const r of racks) expect(await linkOn(r.disk, RACKS.find((x) => x.server === r.server.name)!.node)).toBe(os);
      const reimaged = JSON.parse(await cli(['reimage', ...RACKS.map((r) => r.node), '--json'])) as { switched: { node: string; from: string; to: string }[] };
      expect(reimaged.switched.map((s) => [s.node, s.from, s.to])).toEqual(RACKS.map((r) => [r.node, os, 'installer']));
      // Where each node boots: its own server's copy (and node0's record of it).
      for (const [i, r] of racks.entries()) {
        expect(await linkOn(r.disk, RACKS[i]!.node)).toBe('installer');
        // The other server's copy has no link for it: it would not answer its DHCP either.
        expect(await linkOn(racks[1 - i]!.disk, RACKS[i]!.node).catch(() => 'absent')).toBe('absent');
      }
      expect(await readlink(join(servedRoot, PXELINUX_DIR, node('rack1node').pxeFile))).toBe('installer');

      const boot = async (i: number, phase: 'install' | 'os'): Promise<Vm> => {
        const r = racks[i]!;
        const n = node(RACKS[i]!.node);
        const tap = `pctap${phase === 'install' ? 0 : 1}`;
        await r.ns.addTap(tap);
        const vm = await startVm(r.ns, { name: `${n.name}-${phase}`, mac: n.mac, firmware: 'bios', disk: join(dir, `${n.name}.qcow2`), tap, dir });
        vms.push(vm);
        return vm;
      };
      for (const r of RACKS) await createDisk(join(dir, `${r.node}.qcow2`));
      const installs = await Promise.all(
        RACKS.map(async (r, i) => {
          const vm = await boot(i, 'install');
          progress(`${r.node}: installer booting behind ${r.server}`);
          const done = await lb.waitReport(r.node, 'done', 12 * MIN);
          const switched = await lb.waitSwitched(r.node, 2 * MIN);
          await Promise.race([vm.exited, new Promise((_, rej) => setTimeout(() => rej(new Error(`${r.node} did not power off`)), 2 * MIN))]);
          const off = (Date.now() - vm.started) / 1000;
          progress(`${r.node}: done after ${((done.at - vm.started) / 1000).toFixed(1)} s, powered off after ${off.toFixed(1)} s`);
          figures.push(`${r.node} (behind ${r.server}): power-on → done ${((done.at - vm.started) / 1000).toFixed(1)} s, → powered off ${off.toFixed(1)} s`);
          return switched;
        }),
      );
      for (const [i, e] of installs.entries()) {
        expect(e.switched).toMatchObject({ from: 'installer', to: os });
        // Switched where the node boots, over ssh, and on node0.
        expect(await linkOn(racks[i]!.disk, RACKS[i]!.node)).toBe(os);
        expect(await readlink(join(servedRoot, PXELINUX_DIR, node(RACKS[i]!.node).pxeFile))).toBe(os);
      }
      // The reports reached node0's watcher as the node (X-Forwarded-For from the server's backbone address).
      for (const r of RACKS) {
        const phases = lb.watcherEvents.filter((e) => e.node === r.node && e.state !== 'progress' && e.state !== 'ignored').map((e) => e.phase);
        expect(phases).toEqual(expect.arrayContaining(['start', 'download', 'done']));
      }

      const logins = await Promise.all(
        RACKS.map(async (r, i) => {
          const vm = await boot(i, 'os');
          const seconds = await vm.waitSerial(new RegExp(`^${r.node} login:`, 'm'), 8 * MIN);
          figures.push(`${r.node}: installed OS power-on → login: ${seconds.toFixed(1)} s`);
          progress(`${r.node}: login: after ${seconds.toFixed(1)} s`);
          const out = await lb.ssh(lb.keys.admin, lb.plan.users[0]!.name, node(r.node).ip!, 'hostname', 3 * MIN, racks[i]!.ns);
          expect(out.trim()).toBe(r.node);
          await vm.quit();
          return seconds;
        }),
      );
      expect(logins).toHaveLength(2);
    } catch (e) {
      for (const vm of vms) console.error(`---- serial ${vm.name} ----\n${await vm.serialTail(40)}`);
      for (const r of racks) console.error(`---- ${r.server.name} dnsmasq ----\n${r.dnsmasqLog().slice(-3000)}\n---- ${r.server.name} access.log ----\n${(await readFile(r.accessLog, 'utf8').catch(() => '')).slice(-3000)}`);
      console.error(await lb.diagnose([]));
      throw e;
    }
  }, 30 * MIN);

  it("node0's log shows each image fetched once per server, each node's fetches are in its own server's log only, and status shows both installed", async () => {
    const lb = lab!;
    const node0 = await accessLog(join(dir, 'log/access.log'));
    const image = `/${IMAGES_DIR}/${lb.fsImage!.fileName}`;
    const images = node0.filter((a) => a.url.startsWith(`/${IMAGES_DIR}/`));
    // Once per server, named by the node whose request filled the server's cache (node0 believes the
    // server's X-Forwarded-For; the node cannot reach node0 itself, it is on its rack's network only).
    expect(images.map((a) => [a.remote, a.url, a.status]).sort()).toEqual(RACKS.map((r) => [`${r.net}.11`, image, 200]));
    for (const r of RACKS) {
      const fromRack = node0.filter((a) => a.remote.startsWith(`${r.net}.`));
      // Nothing else of the node's boot crossed the backbone: kernels, initramfs and scripts came from its server's copy.
      expect(fromRack.filter((a) => !a.url.startsWith(lb.plan.phoneHome.path) && !a.url.startsWith('/runs/') && !a.url.startsWith(`/${IMAGES_DIR}/`))).toEqual([]);
      const bytes = fromRack.reduce((s, a) => s + a.bytes, 0);
      // And on the wire: what node0 sent down this server's backbone link is that one copy (plus headers,
      // the run file and the report answers), which the server's cache now holds.
      const rack = racks.find((x) => x.server.name === r.server)!;
      const wire = await rack.backboneBytes();
      expect(wire).toBeGreaterThan(lb.fsImage!.size);
      expect(wire).toBeLessThan(lb.fsImage!.size * 1.05);
      expect(await rack.cachedBytes()).toBeGreaterThan(lb.fsImage!.size);
      expect(await rack.cachedBytes()).toBeLessThan(lb.fsImage!.size + 2 ** 20);
      figures.push(`node0 served ${r.server}: ${(bytes / 2 ** 20).toFixed(1)} MiB in ${fromRack.length} requests (image ${(lb.fsImage!.size / 2 ** 20).toFixed(1)} MiB), ${(wire / 2 ** 20).toFixed(1)} MiB on its backbone link`);
    }
    for (const [i, r] of racks.entries()) {
      const own = await accessLog(r.accessLog);
      const mine = `${RACKS[i]!.net}.11`;
      // The node's whole boot, twice: the iPXE script and kernel, its scripts, the image, its reports.
      expect(own.filter((a) => a.remote === mine && a.url === image)).toHaveLength(1);
      expect(own.some((a) => a.remote === mine && a.url.startsWith('/pxe/'))).toBe(true);
      expect(own.some((a) => a.remote === mine && a.url.startsWith(`${lb.plan.phoneHome.path}/done`))).toBe(true);
      // Only its own rack asked it anything.
      expect(own.filter((a) => !a.remote.startsWith(`${RACKS[i]!.net}.`))).toEqual([]);
      figures.push(`${r.server.name} served ${RACKS[i]!.node}: ${(own.reduce((s, a) => s + a.bytes, 0) / 2 ** 20).toFixed(1)} MiB in ${own.length} requests`);
    }
    const status = JSON.parse(await cli(['status', '--json'])) as { nodes: { name: string; profile: string | null; state: string | null }[] };
    for (const r of RACKS) expect(status.nodes.find((n) => n.name === r.node)).toMatchObject({ profile: lb.plan.profiles.os, state: 'done' });
  }, 5 * MIN);
});
