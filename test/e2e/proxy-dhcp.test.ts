/**
 * Proxy DHCP and UEFI HTTP boot, in a network namespace, with node0's services as the product runs them:
 * `portacluster serve` (the generated dnsmasq and nginx configs, and the watcher) over a small served tree
 * with the real loaders and the real pxelinux.cfg/iPXE trees and per-MAC links. Beside it the lab's
 * stand-in home router (build/lab/router.ts, as `lab up` starts it for a proxy-mode spec) hands out the
 * addresses, with no boot options; last, with the router gone, serve in server mode answers an HTTP-boot
 * node alone. VMs boot only until their loader and their per-MAC boot config were fetched; the signals are
 * dnsmasq's log (serve --log-dhcp), nginx's access log and the router's leases — never a sleep.
 */
import { type ChildProcess } from 'node:child_process';
import { chmod, copyFile, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLabRouter, stopLabRouter, type LabRouter } from '../../build/lab/router.ts';
import { planCluster, type Plan } from '../../build/plan/plan.ts';
import { renderIpxeTree } from '../../build/render/ipxe.ts';
import { renderPxelinuxTree, type PxeProfile } from '../../build/render/pxelinux.ts';
import { parseIpv4 } from '../../build/spec/values.ts';
import { validateSpec } from '../../build/spec/validate.ts';
import { baseSpec } from '../fixtures/specs.ts';
import { REPO } from './harness/lab.ts';
import { createNetns, type Netns } from './harness/netns.ts';
import { createDisk, startVm, type Vm } from './harness/vm.ts';

const ADMIN = '192.168.10.10';
const MIN = 60_000;
const SERVER_NODE_IP = '192.168.10.20';
/** UEFI firmware settings for HTTP boot only: IPv4 HTTP, no PXE, no IPv6 — what one sets in a firmware's setup menu. */
const HTTP_BOOT_ONLY = [
  '-fw_cfg', 'name=opt/org.tianocore/IPv4PXESupport,string=n',
  '-fw_cfg', 'name=opt/org.tianocore/IPv6PXESupport,string=n',
  '-fw_cfg', 'name=opt/org.tianocore/IPv6Support,string=n',
];

const NODES = {
  pxbios: { mac: '52:54:00:a0:00:01', firmware: 'bios' as const },
  pxuefi: { mac: '52:54:00:a0:00:02', firmware: 'uefi' as const, loader: 'ipxe' as const },
  pxhttp: { mac: '52:54:00:a0:00:03', firmware: 'uefi' as const },
  pxefipx: { mac: '52:54:00:a0:00:05', firmware: 'uefi' as const },
};

let dir: string;
let dist: string;
let ns: Netns;
let router: LabRouter | undefined;
const vms: Vm[] = [];
const figures: string[] = [];

/** A spec, its plan, and the file `serve --config` reads it from. */
interface Case {
  name: string;
  plan: Plan;
  config: string;
}

async function specCase(name: string, s: Record<string, any>): Promise<Case> {
  const config = join(dir, `${name}.json`);
  await writeFile(config, JSON.stringify(s, null, 2));
  return { name, plan: planCluster(validateSpec(s, config)), config };
}

/** Proxy-mode spec; `httpBoot` puts the whole cluster on iPXE, as boot.httpBoot requires. */
function proxyCase(name: string, o: { httpBoot: boolean }): Promise<Case> {
  const s = baseSpec();
  s.dhcp = { mode: 'proxy' };
  s.appliances = [];
  s.boot.default = 'installer';
  s.boot.loader = o.httpBoot ? 'ipxe' : 'pxelinux';
  s.boot.httpBoot = o.httpBoot;
  s.nodes = Object.entries(NODES)
    .filter(([n]) => (n === 'pxhttp') === o.httpBoot)
    .map(([n, x]) => ({ name: n, ...x, profile: n === 'pxbios' ? 'rescue' : 'os' }));
  return specCase(name, s);
}

/** Server mode (node0 the network's only DHCP server) with HTTP-boot clients: one UEFI node with a fixed address. */
function serverHttpCase(name: string): Promise<Case> {
  const s = baseSpec();
  s.appliances = [];
  s.boot.loader = 'ipxe';
  s.boot.httpBoot = true;
  s.nodes = [{ name: 'pxsrv', mac: '52:54:00:a0:00:04', firmware: 'uefi', ip: SERVER_NODE_IP, profile: 'os' }];
  return specCase(name, s);
}

/** The served tree: real loaders, and the real pxelinux.cfg/ and ipxe/ trees with per-MAC links. */
async function writeTree(plan: Plan): Promise<void> {
  const pxe = join(dist, 'pxe');
  await mkdir(join(pxe, 'pxelinux.cfg'), { recursive: true });
  await mkdir(join(pxe, 'ipxe'), { recursive: true });
  const loaders: [string, string][] = [
    ['/usr/lib/PXELINUX/pxelinux.0', 'pxelinux.0'],
    ['/usr/lib/syslinux/modules/bios/ldlinux.c32', 'ldlinux.c32'],
    ['/usr/lib/SYSLINUX.EFI/efi64/syslinux.efi', 'syslinux.efi'],
    ['/usr/lib/syslinux/modules/efi64/ldlinux.e64', 'ldlinux.e64'],
    ['/usr/lib/ipxe/undionly.kpxe', 'undionly.kpxe'],
    ['/usr/lib/ipxe/snponly.efi', 'snponly.efi'],
  ];
  for (const [from, name] of loaders) await copyFile(from, join(pxe, name));
  // Every profile hands over to the local disk: the test is done once the node's own config was read.
  const profiles = Object.fromEntries(plan.profiles.all.map((p) => [p, { label: p, localboot: true } as PxeProfile]));
  const trees = [
    ['pxelinux.cfg', renderPxelinuxTree(plan, profiles)],
    ['ipxe', renderIpxeTree(plan, profiles)],
  ] as const;
  for (const [sub, tree] of trees) {
    for (const [name, text] of Object.entries(tree.files)) await writeFile(join(pxe, sub, name), text);
    for (const [name, target] of Object.entries(tree.links)) {
      await rm(join(pxe, sub, name), { force: true });
      await symlink(target, join(pxe, sub, name));
    }
  }
}

/** node0 as the product runs it: `portacluster serve` in the namespace, from the case's spec, over the small tree. */
interface Served {
  child: ChildProcess;
  /** serve --json lines so far (dnsmasq's DHCP and TFTP log among them). */
  lines: string[];
  /** Where serve's dnsmasq keeps its leases: in proxy mode it must hand out none. */
  leases: string;
  accessLog: string;
}
let served: Served | undefined;

async function startServe(c: Case): Promise<Served> {
  await writeTree(c.plan);
  const home = join(dir, c.name);
  const child = ns.spawn(
    ['node', '--import', 'tsx', join(REPO, 'build/cli/main.ts'), 'serve', '--config', c.config, '--root', dist, '--state', join(home, 'state', 'watch-state.json'),
      '--run-dir', join(home, 'run'), '--log-dir', join(home, 'log'), '--interface', ns.bridge, '--no-upstream-dns', '--log-dhcp', '--json'],
    { stdout: 'pipe' },
  );
  const s: Served = { child, lines: [], leases: join(home, 'state', 'dnsmasq.leases'), accessLog: join(home, 'log', 'access.log') };
  served = s;
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
  await new Promise<void>((resolve, reject) => {
    let up = 0;
    child.once('exit', (code) => reject(new Error(`portacluster serve exited ${code}: ${stderr}\n${s.lines.slice(-30).join('\n')}`)));
    createInterface({ input: child.stdout! }).on('line', (line) => {
      s.lines.push(line);
      if (line.includes('"event":"up"') && ++up === 3) resolve();
    });
  });
  return s;
}

/** SIGTERM, as Ctrl-C or systemd stops it: serve stops dnsmasq, nginx and the watcher, then exits 0. */
async function stopServe(): Promise<void> {
  const s = served;
  served = undefined;
  if (!s || s.child.exitCode !== null || s.child.signalCode !== null) return;
  const gone = new Promise<number | null>((r) => s.child.once('exit', (code) => r(code)));
  s.child.kill('SIGTERM');
  expect(await gone).toBe(0);
}

/** The text dnsmasq logged through serve (its DHCP and TFTP lines). */
const dnsmasqLog = (s: Served) =>
  s.lines
    .map((l) => JSON.parse(l) as { event: string; service?: string; line?: string })
    .filter((e) => e.event === 'line' && e.service === 'dnsmasq')
    .map((e) => e.line!)
    .join('\n');

const readText = (file: string) => readFile(file, 'utf8').catch(() => '');

async function waitFor(what: string, timeoutMs: number, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}\n${await diagnosis()}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

async function diagnosis(): Promise<string> {
  const tail = (name: string, text: string, n: number) => `---- ${name} ----\n${text.split('\n').slice(-n).join('\n')}`;
  const serial = await Promise.all(vms.map(async (vm) => `---- serial ${vm.name} ----\n${await vm.serialTail(25)}`));
  const parts = [...serial, tail('router', router ? await readText(router.log) : '(none)', 15)];
  if (served) parts.push(tail('portacluster serve', served.lines.join('\n'), 40), tail('access log', await readText(served.accessLog), 20));
  return parts.join('\n');
}

/** The router's lease of `mac`: the node's address, which must lie in the router's pool. */
async function routerLease(mac: string): Promise<string | undefined> {
  const line = (await readText(router!.leases)).split('\n').find((l) => l.split(' ')[1] === mac);
  return line?.split(' ')[2];
}

const inPool = (ip: string) => {
  const n = parseIpv4(ip);
  return n !== null && n >= parseIpv4(router!.pool.first)! && n <= parseIpv4(router!.pool.last)!;
};

/** Files serve's dnsmasq sent to `ip` over TFTP (paths relative to the TFTP root). */
function tftpSent(s: Served, ip: string): string[] {
  const root = join(dist, 'pxe') + '/';
  return dnsmasqLog(s)
    .split('\n')
    .map((l) => / sent (\S+) to (\S+)$/.exec(l))
    .filter((m): m is RegExpExecArray => m !== null && m[2] === ip)
    .map((m) => m[1]!.replace(root, ''));
}

/** Paths serve's nginx served to `ip`. */
async function httpGets(s: Served, ip: string): Promise<string[]> {
  return (await readText(s.accessLog))
    .split('\n')
    .filter((l) => l.startsWith(`${ip} `) && / 200 /.test(l))
    .map((l) => /"GET (\S+)/.exec(l)?.[1] ?? '')
    .filter(Boolean);
}

/** UEFI nodes run OVMF's own network stack (romfile=""): QEMU's iPXE option ROM would boot first otherwise. */
async function bootNode(plan: Plan, name: string, extraArgs: string[] = []): Promise<Vm> {
  const n = plan.nodes.find((x) => x.name === name)!;
  const tap = `pxtap${vms.length}`;
  await ns.addTap(tap);
  const disk = join(dir, `${name}.qcow2`);
  await createDisk(disk, '64M');
  const vm = await startVm(ns, { name, mac: n.mac, firmware: n.firmware, disk, tap, dir, extraArgs, ...(n.firmware === 'uefi' ? { romfile: '' } : {}) });
  vms.push(vm);
  return vm;
}

describe.sequential('proxy DHCP beside a router, and UEFI HTTP boot, node0 by portacluster serve (QEMU)', () => {
  beforeAll(async () => {
    dir = await mkdtemp('/var/tmp/pc-e2e-proxy-');
    // dnsmasq (TFTP) and nginx workers run as nobody: the served path must be searchable.
    await chmod(dir, 0o755);
    dist = join(dir, 'dist');
    ns = await createNetns(`pc-proxy-${process.pid}`, `${ADMIN}/24`);
    // The router is another host: the lab's stand-in, in its own namespace, on the bridge by a veth pair.
    const first = await proxyCase('proxy-pxe', { httpBoot: false });
    router = await startLabRouter({ plan: first.plan, labNetns: ns.name, bridge: ns.bridge, dir });
    await waitFor('the router dnsmasq', 10_000, async () => /started, version/.test(await readText(router!.log)));
  }, 2 * MIN);

  afterAll(async () => {
    for (const vm of vms) await vm.quit().catch(() => {});
    await stopServe().catch(() => {});
    // Already gone when the server-mode case stopped it: stopLabRouter takes that in its stride.
    if (router) await stopLabRouter(router, 5000);
    await ns?.stop();
    console.log(`figures:\n  ${figures.join('\n  ')}`);
    if (dir && !process.env.PORTACLUSTER_E2E_KEEP) await rm(dir, { recursive: true, force: true });
  });

  it('a BIOS node (pxelinux) and UEFI nodes (iPXE, pxelinux) get their address from the router and their loader and per-MAC config from node0', async () => {
    const c = await proxyCase('proxy-pxe', { httpBoot: false });
    const plan = c.plan;
    const s = await startServe(c);
    try {
      const bios = await bootNode(plan, 'pxbios');
      const uefi = await bootNode(plan, 'pxuefi');
      const efipx = await bootNode(plan, 'pxefipx');
      const mac = (name: string) => plan.nodes.find((n) => n.name === name)!;
      let biosIp = '';
      let uefiIp = '';
      await waitFor('pxbios to read its per-MAC pxelinux.cfg over TFTP', 3 * MIN, async () => {
        biosIp = (await routerLease(mac('pxbios').mac)) ?? '';
        return biosIp !== '' && tftpSent(s, biosIp).includes(`pxelinux.cfg/${mac('pxbios').pxeFile}`);
      });
      figures.push(`pxbios (BIOS, pxelinux): power-on → per-MAC pxelinux.cfg ${((Date.now() - bios.started) / 1000).toFixed(1)} s`);
      await waitFor('pxuefi to fetch its per-MAC iPXE script over HTTP', 5 * MIN, async () => {
        uefiIp = (await routerLease(mac('pxuefi').mac)) ?? '';
        return uefiIp !== '' && (await httpGets(s, uefiIp)).includes(`/pxe/ipxe/${mac('pxuefi').pxeFile}.ipxe`);
      });
      figures.push(`pxuefi (UEFI, iPXE): power-on → per-MAC iPXE script ${((Date.now() - uefi.started) / 1000).toFixed(1)} s`);
      let efipxIp = '';
      await waitFor('pxefipx to read its per-MAC pxelinux.cfg over TFTP (syslinux.efi)', 5 * MIN, async () => {
        efipxIp = (await routerLease(mac('pxefipx').mac)) ?? '';
        return efipxIp !== '' && tftpSent(s, efipxIp).includes(`pxelinux.cfg/${mac('pxefipx').pxeFile}`);
      });
      figures.push(`pxefipx (UEFI, pxelinux): power-on → per-MAC pxelinux.cfg ${((Date.now() - efipx.started) / 1000).toFixed(1)} s`);
      expect(tftpSent(s, efipxIp)).toEqual(expect.arrayContaining(['syslinux.efi', 'ldlinux.e64']));
      await efipx.quit();
      for (const ip of [biosIp, uefiIp, efipxIp]) expect(inPool(ip), `${ip} is from the router's pool`).toBe(true);
      expect(tftpSent(s, biosIp)).toEqual(expect.arrayContaining(['pxelinux.0', 'ldlinux.c32', `pxelinux.cfg/${mac('pxbios').pxeFile}`]));
      expect(tftpSent(s, uefiIp)).toContain('snponly.efi');
      expect(await httpGets(s, uefiIp)).toEqual(expect.arrayContaining(['/pxe/ipxe/boot.ipxe', `/pxe/ipxe/${mac('pxuefi').pxeFile}.ipxe`]));
      // node0 handed out no address: its proxy dnsmasq keeps no lease at all.
      expect((await readText(s.leases)).trim()).toBe('');
      await bios.quit();
      await uefi.quit();
    } finally {
      await stopServe();
    }
  }, 10 * MIN);

  it('a UEFI node that boots over HTTP fetches iPXE by URL, with no TFTP request', async () => {
    const c = await proxyCase('proxy-http', { httpBoot: true });
    const s = await startServe(c);
    try {
      // The firmware's own settings: IPv4 HTTP boot only (no PXE, no IPv6), as one sets it up in the setup menu.
      const vm = await bootNode(c.plan, 'pxhttp', HTTP_BOOT_ONLY);
      const node = c.plan.nodes.find((n) => n.name === 'pxhttp')!;
      let ip = '';
      await waitFor('pxhttp to fetch snponly.efi and its per-MAC iPXE script over HTTP', 5 * MIN, async () => {
        ip = (await routerLease(node.mac)) ?? '';
        return ip !== '' && (await httpGets(s, ip)).includes(`/pxe/ipxe/${node.pxeFile}.ipxe`);
      });
      figures.push(`pxhttp (UEFI HTTP boot): power-on → per-MAC iPXE script ${((Date.now() - vm.started) / 1000).toFixed(1)} s`);
      expect(inPool(ip)).toBe(true);
      expect(await httpGets(s, ip)).toEqual(expect.arrayContaining(['/pxe/snponly.efi', '/pxe/ipxe/boot.ipxe']));
      expect(tftpSent(s, ip)).toEqual([]);
      // The firmware's own word that it took the HTTP path to that URL.
      expect(await vm.serialTail(200)).toMatch(/Start HTTP Boot over IPv4[\s\S]*URI: http:\/\/192\.168\.10\.10\/pxe\/snponly\.efi/);
      // The firmware asked as an HTTP-boot client, and the proxy answered with vendor class HTTPClient.
      const dhcpLog = dnsmasqLog(s);
      expect(dhcpLog).toMatch(/vendor class: HTTPClient:Arch:00016/);
      expect(dhcpLog).toMatch(/bootfile name: http:\/\/192\.168\.10\.10\/pxe\/snponly\.efi/);
      expect(dhcpLog).toContain(`option: 60 vendor-class  ${[...Buffer.from('HTTPClient')].map((b) => b.toString(16)).join(':')}`);
      await vm.quit();
    } finally {
      await stopServe();
    }
  }, 8 * MIN);

  it('server mode: node0 alone answers an HTTP-boot node with its fixed address, iPXE by URL and vendor class HTTPClient', async () => {
    // node0 is now the network's only DHCP server.
    process.kill(router!.pid, 'SIGTERM');
    const c = await serverHttpCase('server-http');
    const s = await startServe(c);
    try {
      const vm = await bootNode(c.plan, 'pxsrv', HTTP_BOOT_ONLY);
      const node = c.plan.nodes[0]!;
      await waitFor('pxsrv to fetch snponly.efi and its per-MAC iPXE script over HTTP', 5 * MIN, async () => (await httpGets(s, SERVER_NODE_IP)).includes(`/pxe/ipxe/${node.pxeFile}.ipxe`));
      figures.push(`pxsrv (UEFI HTTP boot, server mode): power-on → per-MAC iPXE script ${((Date.now() - vm.started) / 1000).toFixed(1)} s`);
      expect(await httpGets(s, SERVER_NODE_IP)).toEqual(expect.arrayContaining(['/pxe/snponly.efi', '/pxe/ipxe/boot.ipxe']));
      expect(tftpSent(s, SERVER_NODE_IP)).toEqual([]);
      expect(await vm.serialTail(200)).toMatch(/Start HTTP Boot over IPv4[\s\S]*Station IP address is 192\.168\.10\.20[\s\S]*URI: http:\/\/192\.168\.10\.10\/pxe\/snponly\.efi/);
      const dhcpLog = dnsmasqLog(s);
      expect(dhcpLog).toMatch(/vendor class: HTTPClient:Arch:00016/);
      expect(dhcpLog).toContain(`option: 60 vendor-class  ${[...Buffer.from('HTTPClient')].map((b) => b.toString(16)).join(':')}`);
      await vm.quit();
    } finally {
      await stopServe();
    }
  }, 8 * MIN);
});
