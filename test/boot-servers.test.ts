/**
 * bootServers[] (issue 17): the spec's rules (every node behind one server at most, disjoint rack subnets,
 * addresses that fit), the plan, and each server's dnsmasq.conf (its nodes only, bound to its rack
 * interface, checked by the real dnsmasq) and nginx.conf.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bootServerDnsmasqConf, bootServerNginxConf } from '../build/layout.ts';
import { run } from '../build/lib/run.ts';
import { node0Nodes } from '../build/plan/boot-server-view.ts';
import { planCluster, type Plan } from '../build/plan/plan.ts';
import { renderBootServerDnsmasqConf } from '../build/render/dnsmasq-bootserver.ts';
import { renderDnsmasqConf } from '../build/render/dnsmasq.ts';
import { bootServerSite, renderBootServerNginxConf } from '../build/render/nginx-bootserver.ts';
import { validateSpec } from '../build/spec/validate.ts';
import { baseSpec, problems } from './fixtures/specs.ts';
import { expectGolden } from './helpers/golden.ts';
import { workspace } from './helpers/workspace.ts';

/** Two racks: node3 behind rack1-boot (fixed address), node4 behind rack2-boot (from its range); node1 and node2 stay node0's. */
function withServers(s: Record<string, any>): void {
  s.nodes.push({ name: 'node3', mac: 'c0:3f:d5:60:e5:a3', ip: '10.100.1.13' }, { name: 'node4', mac: 'c0:3f:d5:60:e5:a4', loader: 'ipxe' });
  s.bootServers = [
    { name: 'rack1-boot', backboneIp: '192.168.10.21', interface: 'eno2', ip: '10.100.1.1', rangeStart: '10.100.1.100', rangeEnd: '10.100.1.200', nodes: ['node3'] },
    { name: 'rack2-boot', backboneIp: '192.168.10.22', interface: 'enp3s0', ip: '10.100.2.1', prefix: 24, rangeStart: '10.100.2.100', rangeEnd: '10.100.2.200', leaseTime: '12h', nodes: ['node4'], ssh: 'deploy@rack2-boot' },
  ];
}
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
    expect([bootServerDnsmasqConf('rack1-boot'), bootServerNginxConf('rack1-boot')]).toEqual(['etc/servers/rack1-boot/dnsmasq.conf', 'etc/servers/rack1-boot/nginx.conf']);
  });

  it("dnsmasq: bound to the rack interface, its own range, its nodes only, iPXE by the server's own URL", async () => {
    const [rack1, rack2] = plan.bootServers as [Plan['bootServers'][0], Plan['bootServers'][0]];
    const one = renderBootServerDnsmasqConf(plan, rack1);
    await expectGolden('bootservers/rack1-boot/dnsmasq.conf', one);
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
