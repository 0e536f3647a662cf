/**
 * Proxy DHCP and UEFI HTTP boot, in a network namespace: a separate dnsmasq in its own namespace plays
 * the home router (addresses only, no boot options); node0's dnsmasq runs the *generated* proxy-mode
 * dnsmasq.conf (only interface, paths and log files adapted) beside nginx serving a small tree with the
 * real loaders and the real pxelinux.cfg/iPXE trees and per-MAC links; last, with the router gone, the
 * generated server-mode dnsmasq.conf answers an HTTP-boot node alone. VMs boot only until their loader
 * and their per-MAC boot config were fetched; the signals are dnsmasq's TFTP log, nginx's access log and
 * the router's leases — never a sleep.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { chmod, copyFile, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run } from '../../build/lib/run.ts';
import { planCluster, type Plan } from '../../build/plan/plan.ts';
import { renderDnsmasqConf } from '../../build/render/dnsmasq.ts';
import { renderIpxeTree } from '../../build/render/ipxe.ts';
import { renderNginxConf } from '../../build/render/nginx.ts';
import { renderPxelinuxTree, type PxeProfile } from '../../build/render/pxelinux.ts';
import { validateSpec } from '../../build/spec/validate.ts';
import { baseSpec } from '../fixtures/specs.ts';
import { adaptNginxConf } from '../helpers/nginx.ts';
import { createNetns, type Netns } from './harness/netns.ts';
import { createDisk, startVm, type Vm } from './harness/vm.ts';

const ADMIN = '192.168.10.10';
const ROUTER = '192.168.10.1';
/** The router's pool: every node address must come from here. */
const POOL = { first: 100, last: 150 };
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
let routerNs: string;
let router: ChildProcess | undefined;
let proxy: ChildProcess | undefined;
const vms: Vm[] = [];
const figures: string[] = [];

/** Proxy-mode spec; `httpBoot` puts the whole cluster on iPXE, as boot.httpBoot requires. */
function proxyPlan(o: { httpBoot: boolean }): Plan {
  const s = baseSpec();
  s.dhcp = { mode: 'proxy' };
  s.appliances = [];
  s.boot.default = 'installer';
  s.boot.loader = o.httpBoot ? 'ipxe' : 'pxelinux';
  s.boot.httpBoot = o.httpBoot;
  s.nodes = Object.entries(NODES)
    .filter(([name]) => (name === 'pxhttp') === o.httpBoot)
    .map(([name, n]) => ({ name, ...n, profile: name === 'pxbios' ? 'rescue' : 'os' }));
  return planCluster(validateSpec(s, 'proxy-e2e'));
}

/** Server mode (node0 the network's only DHCP server) with HTTP-boot clients: one UEFI node with a fixed address. */
function serverHttpPlan(): Plan {
  const s = baseSpec();
  s.appliances = [];
  s.boot.loader = 'ipxe';
  s.boot.httpBoot = true;
  s.nodes = [{ name: 'pxsrv', mac: '52:54:00:a0:00:04', firmware: 'uefi', ip: SERVER_NODE_IP, profile: 'os' }];
  return planCluster(validateSpec(s, 'server-e2e'));
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

/** node0's dnsmasq from the generated dnsmasq.conf, with only the interface, paths and log files of this run changed. */
async function startNode0Dnsmasq(plan: Plan, name: string): Promise<string> {
  const conf = renderDnsmasqConf(plan)
    .replace(/^interface=.*$/m, `interface=${ns.bridge}`)
    .replace(/^tftp-root=.*$/m, `tftp-root=${join(dist, 'pxe')}`)
    .concat([`dhcp-leasefile=${join(dir, `${name}.leases`)}`, `pid-file=${join(dir, `${name}.pid`)}`, `log-facility=${join(dir, `${name}.log`)}`, 'log-dhcp', ''].join('\n'));
  const file = join(dir, `${name}.conf`);
  await writeFile(file, conf);
  await run(ns.exec(['dnsmasq', '--test', `--conf-file=${file}`]));
  proxy = ns.spawn(['dnsmasq', '--keep-in-foreground', `--conf-file=${file}`]);
  await waitFor(`${name} dnsmasq to listen`, 10_000, async () => /started, version/.test(await readLog(`${name}.log`)));
  return join(dir, `${name}.log`);
}

async function stopProcess(child: ChildProcess | undefined): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const gone = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await Promise.race([gone, new Promise((r) => setTimeout(r, 5000))]);
  if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
}

const readLog = (name: string) => readFile(join(dir, name), 'utf8').catch(() => '');

async function waitFor(what: string, timeoutMs: number, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}\n${await diagnosis()}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

async function diagnosis(): Promise<string> {
  const tail = async (name: string, n: number) => `---- ${name} ----\n${(await readLog(name)).split('\n').slice(-n).join('\n')}`;
  const serial = await Promise.all(vms.map(async (vm) => `---- serial ${vm.name} ----\n${await vm.serialTail(25)}`));
  return [...serial, await tail('router.log', 15), await tail('proxy-pxe.log', 40), await tail('proxy-http.log', 40), await tail('server-http.log', 40), await tail('nginx/logs/access.log', 20)].join('\n');
}

/** The router's lease of `mac`: the node's address, which must lie in the router's pool. */
async function routerLease(mac: string): Promise<string | undefined> {
  const line = (await readLog('router.leases')).split('\n').find((l) => l.split(' ')[1] === mac);
  return line?.split(' ')[2];
}

const inPool = (ip: string) => {
  const last = Number(ip.split('.')[3]);
  return ip.startsWith('192.168.10.') && last >= POOL.first && last <= POOL.last;
};

/** Files dnsmasq's TFTP server sent to `ip` (paths relative to the TFTP root). */
async function tftpSent(log: string, ip: string): Promise<string[]> {
  const root = join(dist, 'pxe') + '/';
  return (await readFile(log, 'utf8'))
    .split('\n')
    .map((l) => / sent (\S+) to (\S+)$/.exec(l))
    .filter((m): m is RegExpExecArray => m !== null && m[2] === ip)
    .map((m) => m[1]!.replace(root, ''));
}

/** Paths nginx served to `ip`. */
async function httpGets(ip: string): Promise<string[]> {
  return (await readLog('nginx/logs/access.log'))
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

describe.sequential('proxy DHCP beside a router, and UEFI HTTP boot (QEMU)', () => {
  beforeAll(async () => {
    dir = await mkdtemp('/var/tmp/pc-e2e-proxy-');
    // dnsmasq (TFTP) and nginx workers run as nobody: the served path must be searchable.
    await chmod(dir, 0o755);
    dist = join(dir, 'dist');
    ns = await createNetns(`pc-proxy-${process.pid}`, `${ADMIN}/24`);
    // The router is another host: its own namespace, wired to the lab bridge by a veth pair.
    routerNs = `pc-router-${process.pid}`;
    await run(['ip', 'netns', 'add', routerNs]);
    await run(['ip', '-n', ns.name, 'link', 'add', 'vrouter', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', routerNs]);
    await run(['ip', '-n', ns.name, 'link', 'set', 'vrouter', 'master', ns.bridge, 'up']);
    await run(['ip', '-n', routerNs, 'link', 'set', 'lo', 'up']);
    await run(['ip', '-n', routerNs, 'addr', 'add', `${ROUTER}/24`, 'dev', 'eth0']);
    await run(['ip', '-n', routerNs, 'link', 'set', 'eth0', 'up']);
    const routerConf = join(dir, 'router.conf');
    await writeFile(
      routerConf,
      [
        '# The home router: addresses only, no boot options of any kind.',
        'interface=eth0',
        'bind-interfaces',
        'port=0',
        `dhcp-range=192.168.10.${POOL.first},192.168.10.${POOL.last},255.255.255.0,10m`,
        `dhcp-option=option:router,${ROUTER}`,
        'dhcp-authoritative',
        `dhcp-leasefile=${join(dir, 'router.leases')}`,
        `pid-file=${join(dir, 'router.pid')}`,
        `log-facility=${join(dir, 'router.log')}`,
        'log-dhcp',
        '',
      ].join('\n'),
    );
    router = spawn('ip', ['netns', 'exec', routerNs, 'dnsmasq', '--keep-in-foreground', `--conf-file=${routerConf}`], { stdio: 'ignore' });
    await waitFor('the router dnsmasq', 10_000, async () => /started, version/.test(await readLog('router.log')));

    const plan = proxyPlan({ httpBoot: false });
    await writeTree(plan);
    const nginxConf = await adaptNginxConf(renderNginxConf(plan), { prefix: join(dir, 'nginx'), listen: `${ADMIN}:80`, root: dist });
    await run(ns.exec(['nginx', '-t', '-q', '-c', nginxConf]));
    ns.spawn(['nginx', '-c', nginxConf, '-g', 'daemon off;']);
    await run(ns.exec(['curl', '-fsS', '-o', '/dev/null', '--retry', '20', '--retry-delay', '1', '--retry-connrefused', `http://${ADMIN}/pxe/snponly.efi`]));
  }, 2 * MIN);

  afterAll(async () => {
    for (const vm of vms) await vm.quit().catch(() => {});
    await stopProcess(proxy);
    await stopProcess(router);
    await ns?.stop();
    if (routerNs) await run(['ip', 'netns', 'del', routerNs], { nothrow: true });
    console.log(`figures:\n  ${figures.join('\n  ')}`);
    if (dir && !process.env.PORTACLUSTER_E2E_KEEP) await rm(dir, { recursive: true, force: true });
  });

  it('a BIOS node (pxelinux) and UEFI nodes (iPXE, pxelinux) get their address from the router and their loader and per-MAC config from node0', async () => {
    const plan = proxyPlan({ httpBoot: false });
    const log = await startNode0Dnsmasq(plan, 'proxy-pxe');
    try {
      const bios = await bootNode(plan, 'pxbios');
      const uefi = await bootNode(plan, 'pxuefi');
      const efipx = await bootNode(plan, 'pxefipx');
      const mac = (name: string) => plan.nodes.find((n) => n.name === name)!;
      let biosIp = '';
      let uefiIp = '';
      await waitFor('pxbios to read its per-MAC pxelinux.cfg over TFTP', 3 * MIN, async () => {
        biosIp = (await routerLease(mac('pxbios').mac)) ?? '';
        return biosIp !== '' && (await tftpSent(log, biosIp)).includes(`pxelinux.cfg/${mac('pxbios').pxeFile}`);
      });
      figures.push(`pxbios (BIOS, pxelinux): power-on → per-MAC pxelinux.cfg ${((Date.now() - bios.started) / 1000).toFixed(1)} s`);
      await waitFor('pxuefi to fetch its per-MAC iPXE script over HTTP', 5 * MIN, async () => {
        uefiIp = (await routerLease(mac('pxuefi').mac)) ?? '';
        return uefiIp !== '' && (await httpGets(uefiIp)).includes(`/pxe/ipxe/${mac('pxuefi').pxeFile}.ipxe`);
      });
      figures.push(`pxuefi (UEFI, iPXE): power-on → per-MAC iPXE script ${((Date.now() - uefi.started) / 1000).toFixed(1)} s`);
      let efipxIp = '';
      await waitFor('pxefipx to read its per-MAC pxelinux.cfg over TFTP (syslinux.efi)', 5 * MIN, async () => {
        efipxIp = (await routerLease(mac('pxefipx').mac)) ?? '';
        return efipxIp !== '' && (await tftpSent(log, efipxIp)).includes(`pxelinux.cfg/${mac('pxefipx').pxeFile}`);
      });
      figures.push(`pxefipx (UEFI, pxelinux): power-on → per-MAC pxelinux.cfg ${((Date.now() - efipx.started) / 1000).toFixed(1)} s`);
      expect(await tftpSent(log, efipxIp)).toEqual(expect.arrayContaining(['syslinux.efi', 'ldlinux.e64']));
      await efipx.quit();
      for (const ip of [biosIp, uefiIp, efipxIp]) expect(inPool(ip), `${ip} is from the router's pool`).toBe(true);
      expect(await tftpSent(log, biosIp)).toEqual(expect.arrayContaining(['pxelinux.0', 'ldlinux.c32', `pxelinux.cfg/${mac('pxbios').pxeFile}`]));
      expect(await tftpSent(log, uefiIp)).toContain('snponly.efi');
      expect(await httpGets(uefiIp)).toEqual(expect.arrayContaining(['/pxe/ipxe/boot.ipxe', `/pxe/ipxe/${mac('pxuefi').pxeFile}.ipxe`]));
      // node0 handed out no address: its proxy dnsmasq keeps no lease at all.
      expect((await readLog('proxy-pxe.leases')).trim()).toBe('');
      await bios.quit();
      await uefi.quit();
    } finally {
      await stopProcess(proxy);
    }
  }, 10 * MIN);

  it('a UEFI node that boots over HTTP fetches iPXE by URL, with no TFTP request', async () => {
    const plan = proxyPlan({ httpBoot: true });
    await writeTree(plan);
    const log = await startNode0Dnsmasq(plan, 'proxy-http');
    try {
      // The firmware's own settings: IPv4 HTTP boot only (no PXE, no IPv6), as one sets it up in the setup menu.
      const vm = await bootNode(plan, 'pxhttp', HTTP_BOOT_ONLY);
      const node = plan.nodes.find((n) => n.name === 'pxhttp')!;
      let ip = '';
      await waitFor('pxhttp to fetch snponly.efi and its per-MAC iPXE script over HTTP', 5 * MIN, async () => {
        ip = (await routerLease(node.mac)) ?? '';
        return ip !== '' && (await httpGets(ip)).includes(`/pxe/ipxe/${node.pxeFile}.ipxe`);
      });
      figures.push(`pxhttp (UEFI HTTP boot): power-on → per-MAC iPXE script ${((Date.now() - vm.started) / 1000).toFixed(1)} s`);
      expect(inPool(ip)).toBe(true);
      expect(await httpGets(ip)).toEqual(expect.arrayContaining(['/pxe/snponly.efi', '/pxe/ipxe/boot.ipxe']));
      expect(await tftpSent(log, ip)).toEqual([]);
      // The firmware's own word that it took the HTTP path to that URL.
      expect(await vm.serialTail(200)).toMatch(/Start HTTP Boot over IPv4[\s\S]*URI: http:\/\/192\.168\.10\.10\/pxe\/snponly\.efi/);
      // The firmware asked as an HTTP-boot client, and the proxy answered with vendor class HTTPClient.
      const dhcpLog = await readFile(log, 'utf8');
      expect(dhcpLog).toMatch(/vendor class: HTTPClient:Arch:00016/);
      expect(dhcpLog).toMatch(/bootfile name: http:\/\/192\.168\.10\.10\/pxe\/snponly\.efi/);
      expect(dhcpLog).toContain(`option: 60 vendor-class  ${[...Buffer.from('HTTPClient')].map((b) => b.toString(16)).join(':')}`);
      await vm.quit();
    } finally {
      await stopProcess(proxy);
    }
  }, 8 * MIN);
  it('server mode: node0 alone answers an HTTP-boot node with its fixed address, iPXE by URL and vendor class HTTPClient', async () => {
    // node0 is now the network's only DHCP server.
    await stopProcess(router);
    const plan = serverHttpPlan();
    await writeTree(plan);
    const log = await startNode0Dnsmasq(plan, 'server-http');
    try {
      const vm = await bootNode(plan, 'pxsrv', HTTP_BOOT_ONLY);
      const node = plan.nodes[0]!;
      await waitFor('pxsrv to fetch snponly.efi and its per-MAC iPXE script over HTTP', 5 * MIN, async () => (await httpGets(SERVER_NODE_IP)).includes(`/pxe/ipxe/${node.pxeFile}.ipxe`));
      figures.push(`pxsrv (UEFI HTTP boot, server mode): power-on → per-MAC iPXE script ${((Date.now() - vm.started) / 1000).toFixed(1)} s`);
      expect(await httpGets(SERVER_NODE_IP)).toEqual(expect.arrayContaining(['/pxe/snponly.efi', '/pxe/ipxe/boot.ipxe']));
      expect(await tftpSent(log, SERVER_NODE_IP)).toEqual([]);
      expect(await vm.serialTail(200)).toMatch(/Start HTTP Boot over IPv4[\s\S]*Station IP address is 192\.168\.10\.20[\s\S]*URI: http:\/\/192\.168\.10\.10\/pxe\/snponly\.efi/);
      const dhcpLog = await readFile(log, 'utf8');
      expect(dhcpLog).toMatch(/vendor class: HTTPClient:Arch:00016/);
      expect(dhcpLog).toContain(`option: 60 vendor-class  ${[...Buffer.from('HTTPClient')].map((b) => b.toString(16)).join(':')}`);
      await vm.quit();
    } finally {
      await stopProcess(proxy);
    }
  }, 8 * MIN);
});
