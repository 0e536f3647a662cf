/**
 * The product's own lab, as a new user drives it: `portacluster lab up` on the built tree, then
 * `portacluster reimage … --reboot` powers the VMs on into the installer, `status --json` shows them
 * finish, they boot their OS, and `lab down` leaves no namespace, tap or process behind.
 * Everything runs through the CLI; node0's services are `portacluster serve`'s.
 */
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pidAlive } from '../../build/lib/process.ts';
import { run } from '../../build/lib/run.ts';
import { buildLabDist, REPO, type BuiltDist } from './harness/lab.ts';

const MIN = 60_000;
const NODES = ['labbios', 'labuefi'];

let built: BuiltDist;
let proxyBuilt: BuiltDist;
let dir: string;
const cli = (args: string[], o: { nothrow?: boolean } = {}) =>
  run(['node', '--import', 'tsx', join(REPO, 'build/cli/main.ts'), ...args], { cwd: REPO, ...o, env: { ...process.env, PORTACLUSTER_STATE: join(dir, 'state.json') } });


beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pc-lab-'));
  // serve refuses a tree its unprivileged workers cannot reach, and mkdtemp makes a 0700 directory.
  await chmod(dir, 0o755);
  // Server mode: the two nodes are powered through BMCs (issue 13), the lab's IPMI and Redfish stand-ins,
  // so `reimage --reboot` sets boot-once PXE and powers them on over the real protocols.
  const secret = join(dir, 'bmc.pw');
  await writeFile(secret, 'lab-bmc-secret\n', { mode: 0o600 });
  built = await buildLabDist(join(dir, 'server'), (raw) => {
    raw.nodes[0].power = { type: 'ipmi', host: '192.168.10.221', user: 'admin', passwordFile: secret, cipherSuite: 3 };
    raw.nodes[1].power = { type: 'redfish', url: 'https://192.168.10.222', user: 'root', passwordFile: secret, caFile: join(dir, 'server', 'lab', 'lab-ca.pem') };
  });
  // The same cluster on a network whose DHCP server is someone else's: node0 only says what to boot.
  proxyBuilt = await buildLabDist(join(dir, 'proxy'), (raw) => {
    raw.dhcp = { mode: 'proxy' };
    for (const n of raw.nodes) delete n.ip;
  });
}, 40 * MIN);

afterAll(async () => {
  await cli(['lab', 'down', '--root', built.dist, '--wipe'], { nothrow: true });
  await cli(['lab', 'down', '--root', proxyBuilt.dist, '--wipe'], { nothrow: true });
  await rm(dir, { recursive: true, force: true });
});

async function until<T>(fn: () => Promise<T | undefined>, ms: number, what: string): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2000));
  }
}

async function loop(built: BuiltDist, mode: string): Promise<any> {
    const t0 = Date.now();
    const up = JSON.parse((await cli(['lab', 'up', '--root', built.dist, '--nodes', '2', '--dir', join(dir, mode, 'lab'), '--json'])).stdout);
    expect(up.vms.map((v: { name: string }) => v.name)).toEqual(NODES);
    const status0 = JSON.parse((await cli(['lab', 'status', '--root', built.dist, '--json'])).stdout);
    expect(status0.vms.map((v: { power: string }) => v.power)).toEqual(['off', 'off']);

    const reimage = JSON.parse((await cli(['reimage', ...NODES, '--reboot', '--root', built.dist, '--json'])).stdout);
    expect(reimage.reboots.map((r: { ok: boolean }) => r.ok)).toEqual([true, true]);
    if (mode === 'server') {
      // Powered off → boot-once PXE set through the BMC and the node powered on, by IPMI and by Redfish.
      expect(up.vms.map((v: { bmc?: { kind: string } }) => v.bmc?.kind)).toEqual(['ipmi', 'redfish']);
      expect(reimage.reboots.map((r: { driver: string; bootOnce: string; how: string }) => [r.driver, r.bootOnce, r.how])).toEqual([['ipmi', 'set', 'on'], ['redfish', 'set', 'on']]);
    }

    // The product's status, as a user reads it: both nodes installed and switched to their OS.
    await until(
      async () => {
        const s = JSON.parse((await cli(['status', '--root', built.dist, '--json'], { nothrow: true })).stdout || '{}');
        const rows = (s.nodes ?? []) as { name: string; state: string; profile: string }[];
        const mine = rows.filter((r) => NODES.includes(r.name));
        if (mine.some((r) => r.state === 'failed')) throw new Error(`a node failed: ${JSON.stringify(mine)}\n${await readFile(up.serve.log, 'utf8')}`);
        return mine.length === 2 && mine.every((r) => r.state === 'done' && r.profile === built.plan.profiles.os) ? mine : undefined;
      },
      15 * MIN,
      'both lab nodes done',
    );
    const installed = (Date.now() - t0) / 1000;
    // The lab spec powers nodes off after the install (phoneHome.afterInstall): power them on into their OS,
    // as a user would, through the lab's power (the VM's monitor).
    if (built.plan.phoneHome.afterInstall === 'poweroff') {
      const normal = JSON.parse((await cli(['normal', ...NODES, '--reboot', '--root', built.dist, '--json'])).stdout);
      expect(normal.reboots.map((r: { ok: boolean }) => r.ok)).toEqual([true, true]);
    }
    for (const vm of up.vms as { name: string; serialLog: string }[]) {
      await until(async () => ((await readFile(vm.serialLog, 'utf8')).includes(`${vm.name} login:`) ? true : undefined), 8 * MIN, `${vm.name} at login:`);
    }
    console.log(`lab (${mode} DHCP): up → both nodes done ${installed.toFixed(0)} s, at login: ${((Date.now() - t0) / 1000).toFixed(0)} s`);

    const pids = [up.serve.pid, up.raPid, ...(up.router ? [up.router.pid] : []), ...up.vms.map((v: { pid: number }) => v.pid)];
    await cli(['lab', 'down', '--root', built.dist]);
    expect(pids.filter(pidAlive)).toEqual([]);
    expect((await run(['ip', 'netns', 'list'])).stdout).not.toContain(up.netns);
    expect(JSON.parse((await cli(['lab', 'status', '--root', built.dist, '--json'], { nothrow: true })).stdout).serve).toBeNull();
    return up;
}

describe('portacluster lab', () => {
  it('lab up → reimage --reboot → done → the OS at login: → lab down leaves nothing', async () => {
    const up = await loop(built, 'server');
    expect(up.router).toBeUndefined();
  }, 40 * MIN);

  it('proxy DHCP: beside the lab\'s stand-in router, a BIOS and a UEFI node install and boot their OS', async () => {
    const up = await loop(proxyBuilt, 'proxy');
    // Every address came from the router's pool; node0's dnsmasq leased none.
    const leases = await readFile(up.router.leases, 'utf8');
    for (const vm of up.vms as { mac: string }[]) expect(leases).toContain(vm.mac);
    expect(up.router.pid).toBeGreaterThan(0);
    expect((await run(['ip', 'netns', 'list'])).stdout).not.toContain(up.router.netns);
  }, 40 * MIN);
});
