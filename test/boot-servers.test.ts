/**
 * bootServers[] (issue 17): the spec's rules (every node behind one server at most, disjoint rack subnets,
 * addresses that fit), the plan, and each server's dnsmasq.conf (its nodes only, bound to its rack
 * interface, checked by the real dnsmasq) and nginx.conf.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { autorunPath, bootServerDnsmasqConf, bootServerNginxConf, bootServerPath, ipxePath, ipxeNodeFile, pxelinuxPath, pxelinuxNodeFile } from '../build/layout.ts';
import { run } from '../build/lib/run.ts';
import { bootServerView, node0Nodes } from '../build/plan/boot-server-view.ts';
import { renderBootFiles, type BootArtifacts, type BootFiles } from '../build/render/boot-files.ts';
import { planCluster, type Plan } from '../build/plan/plan.ts';
import { renderBootServerDnsmasqConf } from '../build/render/dnsmasq-bootserver.ts';
import { renderDnsmasqConf } from '../build/render/dnsmasq.ts';
import { bootServerSite, renderBootServerNginxConf } from '../build/render/nginx-bootserver.ts';
import { validateSpec } from '../build/spec/validate.ts';
import { baseSpec, problems, withServers } from './fixtures/specs.ts';
import { expectGolden } from './helpers/golden.ts';
import { workspace } from './helpers/workspace.ts';

const mutated = (f: (s: Record<string, any>) => void) =>
  problems((s) => {
    withServers(s);
    f(s);
  });

let plan: Plan;
let ws: Awaited<ReturnType<typeof workspace>>;

beforeAll(async () => {
  const spec = baseSpec();
  withServers(spec);
  plan = planCluster(validateSpec(spec));
  ws = await workspace('pc-bootservers-');
});
afterAll(() => ws.cleanup());

describe('bootServers[] in the spec', () => {
  it('accepts two racks beside node0 and resolves them in the plan', () => {
    expect(mutated(() => {})).toEqual([]);
    expect(plan.bootServers.map((b) => [b.name, b.netmask, b.network, b.httpBase, b.leaseTime, b.nodes, b.ssh])).toEqual([
      ['rack1-boot', '255.255.255.0', '10.100.1.0', 'http://10.100.1.1', '1h', ['node3'], 'root@192.168.10.21'],
      ['rack2-boot', '255.255.255.0', '10.100.2.0', 'http://10.100.2.1', '12h', ['node4'], 'deploy@rack2-boot'],
    ]);
    expect(node0Nodes(plan).map((n) => n.name)).toEqual(['node1', 'node2']);
    // No bootServers: the plan says so, and node0 serves every node.
    const flat = planCluster(validateSpec(baseSpec()));
    expect(flat.bootServers).toEqual([]);
    expect(node0Nodes(flat)).toHaveLength(2);
  });

  it('every node is behind one server at most, and it must exist', () => {
    expect(mutated((s) => s.bootServers[1].nodes.push('node3'))).toEqual([
      'bootServers[1].nodes[1]: node "node3" is also behind bootServers[0] (rack1-boot) | hint: every node is served by exactly one boot server, or by node0 when none names it',
    ]);
    // node3, named by no server now, is node0's own: its rack address no longer fits.
    expect(mutated((s) => (s.bootServers[0].nodes = ['node9']))).toEqual(['nodes[2].ip: 10.100.1.13 is outside the cluster subnet 192.168.10.0/24', 'bootServers[0].nodes[0]: no node named "node9" in nodes[]']);
  });

  it('rack subnets are disjoint from each other and from node0\'s; ranges and addresses fit', () => {
    expect(mutated((s) => (s.bootServers[1] = { ...s.bootServers[1], ip: '10.100.1.2', rangeStart: '10.100.1.20', rangeEnd: '10.100.1.30' }))).toEqual([
      "bootServers[1].ip: its rack subnet 10.100.1.0/24 overlaps 10.100.1.0/24 (bootServers[0].ip) | hint: each rack has a subnet of its own, disjoint from node0's and every other rack's",
    ]);
    expect(mutated((s) => (s.bootServers[0] = { ...s.bootServers[0], ip: '192.168.10.2', prefix: 16, rangeStart: '192.168.20.1', rangeEnd: '192.168.20.9' }))).toContain(
      "bootServers[0].ip: its rack subnet 192.168.0.0/16 overlaps 192.168.10.0/24 (admin.ip) | hint: each rack has a subnet of its own, disjoint from node0's and every other rack's",
    );
    expect(mutated((s) => Object.assign(s.bootServers[0], { rangeStart: '10.100.9.1', rangeEnd: '10.100.1.5' }))).toEqual([
      'bootServers[0].rangeStart: 10.100.9.1 is outside its rack subnet 10.100.1.0/24',
      'bootServers[0].rangeEnd: range end 10.100.1.5 is before its start 10.100.9.1',
    ]);
    expect(mutated((s) => (s.bootServers[0].ip = '10.100.1.150'))).toEqual(['bootServers[0].ip: 10.100.1.150 is inside its own dynamic range 10.100.1.100–10.100.1.200']);
  });

  it("a server's backbone address is a free fixed address on node0's network", () => {
    expect(mutated((s) => (s.bootServers[0].backboneIp = '10.0.0.21'))).toEqual([
      "bootServers[0].backboneIp: 10.0.0.21 is outside node0's cluster subnet 192.168.10.0/24 | hint: the backbone is admin.ip's network: node0 reaches its boot servers there",
    ]);
    expect(mutated((s) => (s.bootServers[0].backboneIp = '192.168.10.150'))).toEqual([
      "bootServers[0].backboneIp: 192.168.10.150 is inside node0's dynamic range 192.168.10.130–192.168.10.180 | hint: a boot server needs a fixed address outside dhcp.rangeStart…rangeEnd",
    ]);
    expect(mutated((s) => (s.bootServers[1].backboneIp = '192.168.10.11'))).toEqual(['bootServers[1].backboneIp: duplicate address 192.168.10.11, also used by nodes[0].ip']);
    expect(mutated((s) => (s.bootServers[1].name = 'node1'))).toEqual(['bootServers[1].name: duplicate name "node1", also used by nodes[0]']);
  });

  it("a node behind a server has its fixed address on that server's subnet, not node0's", () => {
    expect(mutated((s) => (s.nodes[2].ip = '192.168.10.13'))).toEqual([
      "nodes[2].ip: 192.168.10.13 is outside its boot server rack1-boot's rack subnet 10.100.1.0/24 | hint: rack1-boot hands out its nodes' addresses: use one in 10.100.1.0/24",
    ]);
    expect(mutated((s) => (s.nodes[2].ip = '10.100.1.120'))).toEqual([
      "nodes[2].ip: 10.100.1.120 is inside rack1-boot's dynamic range 10.100.1.100–10.100.1.200 | hint: fixed addresses must lie outside the range",
    ]);
    // The same address for a node of node0's own is outside node0's subnet, as before.
    expect(mutated((s) => (s.nodes[0].ip = '10.100.1.14'))).toEqual(['nodes[0].ip: 10.100.1.14 is outside the cluster subnet 192.168.10.0/24']);
  });

  it('an ssh target never starts an option', () => {
    expect(mutated((s) => (s.bootServers[0].ssh = '-oProxyCommand=touch /tmp/x'))[0]).toMatch(/^bootServers\[0\]\.ssh: /);
  });
});

describe("a boot server's generated configs", () => {
  it('are named per server under etc/', () => {
    expect([bootServerDnsmasqConf('rack1-boot'), bootServerNginxConf('rack1-boot')]).toEqual(['etc/servers/rack1-boot/etc/dnsmasq.conf', 'etc/servers/rack1-boot/etc/nginx.conf']);
  });

  it("dnsmasq: bound to the rack interface, its own range, its nodes only, iPXE by the server's own URL", async () => {
    const [rack1, rack2] = plan.bootServers as [Plan['bootServers'][0], Plan['bootServers'][0]];
    const one = renderBootServerDnsmasqConf(plan, rack1);
    await expectGolden('bootservers/rack1-boot/etc/dnsmasq.conf', one);
    expect(one).toContain('interface=eno2\nbind-interfaces');
    expect(one).toContain('dhcp-range=10.100.1.100,10.100.1.200,255.255.255.0,1h');
    expect(one.match(/^dhcp-host=.*$/gm)).toEqual(['dhcp-host=c0:3f:d5:60:e5:a3,node3,10.100.1.13']);
    const two = renderBootServerDnsmasqConf(plan, rack2);
    expect(two.match(/^dhcp-host=.*$/gm)).toEqual(['dhcp-host=c0:3f:d5:60:e5:a4,set:ipxe-node,node4']);
    expect(two).toContain('dhcp-boot=tag:ipxe-node,tag:ipxe,http://10.100.2.1/pxe/ipxe/boot.ipxe');
    expect(two).toContain('interface=enp3s0');
    for (const [name, conf] of [['rack1', one], ['rack2', two]] as const) {
      const file = join(ws.dir, `${name}-dnsmasq.conf`);
      await writeFile(file, conf);
      const r = await run(['dnsmasq', '--test', `--conf-file=${file}`], { nothrow: true });
      expect(r.stderr + r.stdout).toMatch(/syntax check OK/);
    }
  });

  it("node0's own dnsmasq.conf leaves the nodes behind boot servers to them", () => {
    expect(renderDnsmasqConf(plan).match(/^dhcp-host=.*$/gm)).toEqual(['dhcp-host=c4:04:15:90:bf:b4,switch', 'dhcp-host=c0:3f:d5:60:e5:a1,node1,192.168.10.11', 'dhcp-host=c0:3f:d5:60:cd:8b,node2']);
  });

  it("nginx: listens on the server's rack address, node0's admin IP is its origin", () => {
    const conf = renderBootServerNginxConf(plan, bootServerSite(plan, plan.bootServers[0]!));
    expect(conf).toContain('listen 10.100.1.1:80 default_server;');
    expect(conf).toContain(`proxy_pass http://${plan.admin.ip};`);
  });
});

// What the stages would hand over: the built-in environment's boot files and an image, content-addressed.
const ARTS: BootArtifacts = {
  env: { kind: 'builtin', version: 'test', kernel: 'installer-kernel', initrds: ['installer-initramfs'], files: [] },
  image: { fileName: 'arch-0123456789abcdef.tar.zst', sha256: 'ab'.repeat(32), size: 200_000_000 },
};

describe("a boot server's own tree (its boot configs and scripts name it, not node0)", () => {
  let node0: BootFiles;
  let rack1: BootFiles;
  let rack2: BootFiles;
  beforeAll(async () => {
    node0 = await renderBootFiles(plan, ARTS);
    rack1 = await renderBootFiles(bootServerView(plan, plan.bootServers[0]!), ARTS, { server: 'rack1-boot' });
    rack2 = await renderBootFiles(bootServerView(plan, plan.bootServers[1]!), ARTS, { server: 'rack2-boot' });
  });

  it('the plan gives each node the base it fetches from', () => {
    expect(plan.nodes.map((n) => [n.name, n.bootServer, n.httpBase])).toEqual([
      ['node1', null, 'http://192.168.10.10'],
      ['node2', null, 'http://192.168.10.10'],
      ['node3', 'rack1-boot', 'http://10.100.1.1'],
      ['node4', 'rack2-boot', 'http://10.100.2.1'],
    ]);
  });

  it("matches the golden files, and lives under the server's dir in node0's tree", async () => {
    // The scripts' hand-written libraries are pinned by the example's goldens: here, their data prologue only.
    for (const [path, f] of Object.entries(rack1.files)) await expectGolden(`bootservers/rack1-boot/${path}`, f.mode === 0o755 ? f.text.split('\n# ---- ')[0]! + '\n' : f.text);
    expect(bootServerPath('rack1-boot', autorunPath('installer'))).toBe('etc/servers/rack1-boot/installer/autorun');
    expect(rack1.files[autorunPath('installer')]!.mode).toBe(0o755);
  });

  it('links only its own nodes, so per-MAC entries differ per server; node0 keeps the record of every node', () => {
    const own = (b: BootFiles) => Object.keys(b.links).filter((l) => /\/01-/.test(l)).sort();
    expect(own(rack1)).toEqual([ipxePath(ipxeNodeFile('c0:3f:d5:60:e5:a3')), pxelinuxPath(pxelinuxNodeFile('c0:3f:d5:60:e5:a3'))]);
    expect(own(rack2)).toEqual([ipxePath(ipxeNodeFile('c0:3f:d5:60:e5:a4')), pxelinuxPath(pxelinuxNodeFile('c0:3f:d5:60:e5:a4'))]);
    expect(own(node0)).toHaveLength(8);
  });

  it("every URL a node behind a server is handed names that server: loaders' profiles, the entry script, the scripts' data", () => {
    const hosts = (b: BootFiles) => new Set(Object.values(b.files).flatMap((f) => [...f.text.matchAll(/http:\/\/([0-9.]+)/g)].map((m) => m[1])));
    expect(hosts(rack1)).toEqual(new Set(['10.100.1.1']));
    expect(hosts(rack2)).toEqual(new Set(['10.100.2.1']));
    expect(hosts(node0)).toEqual(new Set(['192.168.10.10']));
    expect(rack2.files[ipxePath('boot.ipxe')]!.text).toContain('chain http://10.100.2.1/pxe/ipxe/01-${netX/mac:hexhyp}.ipxe');
    expect(rack1.files[pxelinuxPath('installer')]!.text).toContain('ar_source=http://10.100.1.1/installer/');
    const installer = rack1.files[autorunPath('installer')]!.text;
    expect(installer).toContain("PC_IMAGE_URL='http://10.100.1.1/images/arch-0123456789abcdef.tar.zst'");
    expect(installer).toContain("PC_PHONE_HOME_URL='http://10.100.1.1/portacluster/report'");
    expect(installer).toContain("PC_RUNS_URL='http://10.100.1.1/runs'");
    // Its own nodes only: the installer identifies the machine among them.
    expect(installer).toMatch(/PC_NODE_MACS=\(\s*'c0:3f:d5:60:e5:a3'\s*\)/);
    // The DHCP server the environment takes a lease from is the rack's own (server mode).
    expect(rack1.files[pxelinuxPath('installer')]!.text).toContain('pc_dhcp_server=10.100.1.1');
    // The same profile, node0's and a server's, differs by the address alone.
    const strip = (t: string) => t.replace(/http:\/\/[0-9.]+/g, 'BASE').replace(/pc_dhcp_server=[0-9.]+/g, 'pc_dhcp_server=ADDR');
    expect(strip(rack1.files[pxelinuxPath('installer')]!.text)).toBe(strip(node0.files[pxelinuxPath('installer')]!.text));
  });

  it("refuses to render a server's tree with a node that boots elsewhere", async () => {
    const view = bootServerView(plan, plan.bootServers[0]!);
    await expect(renderBootFiles({ ...view, nodes: [...view.nodes, plan.nodes[3]!] }, ARTS, { server: 'rack1-boot' })).rejects.toThrow(/node node4 boots from rack2-boot \(http:\/\/10\.100\.2\.1\), not from http:\/\/10\.100\.1\.1/);
  });

  it('its scripts pass bash -n and shellcheck', async () => {
    for (const path of [autorunPath('installer'), autorunPath('rescue')]) {
      const file = join(ws.dir, path.replace('/', '-'));
      await writeFile(file, rack1.files[path]!.text);
      await run(['bash', '-n', file]);
      const r = await run(['shellcheck', '--shell=bash', '--', file], { nothrow: true });
      expect(r.stdout + r.stderr).toBe('');
    }
  });
});
