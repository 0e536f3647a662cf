/**
 * The rule for bootServers[] (issue 17): each server's name and backbone address fit node0's network, its
 * rack subnet is its own (disjoint from node0's and every other rack's), its range lies inside it, and every
 * node is behind one server at most (the rest are node0's own), with a fixed address on its server's subnet.
 * Pushes every problem it finds, like the rules in rules.ts.
 */
import type { SpecIssue } from '../lib/errors.ts';
import type { NormalizedSpec } from './normalized.ts';
import { formatIpv4, parseIpv4, subnetOf } from './values.ts';

interface Net {
  path: string;
  cidr: string;
  network: number;
  broadcast: number;
}

const netOf = (path: string, ip: number, prefix: number): Net => {
  const n = subnetOf(ip, prefix);
  return { path, cidr: `${formatIpv4(n.network)}/${prefix}`, network: n.network, broadcast: n.broadcast };
};
const inside = (net: Net, ip: number) => ip > net.network && ip < net.broadcast;

export function bootServersRule(s: NormalizedSpec, out: SpecIssue[]): void {
  const servers = s.bootServers ?? [];
  const admin = parseIpv4(s.admin.ip);
  // A bad admin.ip is the addresses rule's to report; nothing here can be placed without it.
  if (!servers.length || admin === null) return;
  const adminNet = netOf('admin.ip', admin, s.admin.prefix);
  const r0 = s.dhcp.mode === 'server' && s.dhcp.rangeStart ? parseIpv4(s.dhcp.rangeStart) : null;
  const r1 = s.dhcp.mode === 'server' && s.dhcp.rangeEnd ? parseIpv4(s.dhcp.rangeEnd) : null;
  const inNode0Range = (n: number) => r0 !== null && r1 !== null && n >= r0 && n <= r1;
  const nodeIndex = new Map(s.nodes.map((n, i) => [n.name, i]));
  const names = new Map<string, string>([[s.admin.hostname, 'admin.hostname'], ...s.appliances.map((a, i) => [a.name, `appliances[${i}]`] as const), ...s.nodes.map((n, i) => [n.name, `nodes[${i}]`] as const)]);
  // Addresses already taken on node0's network.
  const taken = new Map<number, string>([[admin, 'admin.ip']]);
  for (const [path, ip] of [...s.appliances.map((a, i) => [`appliances[${i}].ip`, a.ip] as const), ...s.nodes.map((n, i) => [`nodes[${i}].ip`, n.ip] as const)]) {
    const n = ip === undefined ? null : parseIpv4(ip);
    if (n !== null) taken.set(n, path);
  }
  const nets: Net[] = [adminNet];
  const servedBy = new Map<string, string>();
  const notIp = (path: string, v: string) => out.push({ path, message: `not an IPv4 address (got ${JSON.stringify(v)})` });

  servers.forEach((b, i) => {
    const at = `bootServers[${i}]`;
    const prevName = names.get(b.name);
    if (prevName) out.push({ path: `${at}.name`, message: `duplicate name ${JSON.stringify(b.name)}, also used by ${prevName}` });
    else names.set(b.name, at);

    const bb = parseIpv4(b.backboneIp);
    if (bb === null) notIp(`${at}.backboneIp`, b.backboneIp);
    else if (!inside(adminNet, bb))
      out.push({ path: `${at}.backboneIp`, message: `${b.backboneIp} is outside node0's cluster subnet ${adminNet.cidr}`, hint: "the backbone is admin.ip's network: node0 reaches its boot servers there" });
    else if (taken.has(bb)) out.push({ path: `${at}.backboneIp`, message: `duplicate address ${b.backboneIp}, also used by ${taken.get(bb)}` });
    else if (inNode0Range(bb))
      out.push({ path: `${at}.backboneIp`, message: `${b.backboneIp} is inside node0's dynamic range ${s.dhcp.rangeStart}–${s.dhcp.rangeEnd}`, hint: 'a boot server needs a fixed address outside dhcp.rangeStart…rangeEnd' });
    if (bb !== null) taken.set(bb, `${at}.backboneIp`);

    const ip = parseIpv4(b.ip);
    if (ip === null) return notIp(`${at}.ip`, b.ip);
    const net = netOf(`${at}.ip`, ip, b.prefix);
    if (!inside(net, ip)) out.push({ path: `${at}.ip`, message: `${b.ip} is the network or broadcast address of ${net.cidr}` });
    for (const other of nets)
      if (net.network <= other.broadcast && other.network <= net.broadcast)
        out.push({ path: `${at}.ip`, message: `its rack subnet ${net.cidr} overlaps ${other.cidr} (${other.path})`, hint: "each rack has a subnet of its own, disjoint from node0's and every other rack's" });
    nets.push(net);

    const start = parseIpv4(b.rangeStart);
    const end = parseIpv4(b.rangeEnd);
    if (start === null) notIp(`${at}.rangeStart`, b.rangeStart);
    else if (!inside(net, start)) out.push({ path: `${at}.rangeStart`, message: `${b.rangeStart} is outside its rack subnet ${net.cidr}` });
    if (end === null) notIp(`${at}.rangeEnd`, b.rangeEnd);
    else if (!inside(net, end)) out.push({ path: `${at}.rangeEnd`, message: `${b.rangeEnd} is outside its rack subnet ${net.cidr}` });
    if (start !== null && end !== null && start > end) out.push({ path: `${at}.rangeEnd`, message: `range end ${b.rangeEnd} is before its start ${b.rangeStart}` });
    const inRange = (n: number) => start !== null && end !== null && n >= start && n <= end;
    if (inRange(ip)) out.push({ path: `${at}.ip`, message: `${b.ip} is inside its own dynamic range ${b.rangeStart}–${b.rangeEnd}` });

    b.nodes.forEach((name, j) => {
      const idx = nodeIndex.get(name);
      if (idx === undefined) return void out.push({ path: `${at}.nodes[${j}]`, message: `no node named ${JSON.stringify(name)} in nodes[]` });
      const prev = servedBy.get(name);
      if (prev) return void out.push({ path: `${at}.nodes[${j}]`, message: `node ${JSON.stringify(name)} is also behind ${prev}`, hint: 'every node is served by exactly one boot server, or by node0 when none names it' });
      servedBy.set(name, `${at} (${b.name})`);
      const nodeIp = s.nodes[idx]!.ip;
      const n = nodeIp === undefined ? null : parseIpv4(nodeIp);
      if (nodeIp === undefined || n === null) return;
      if (!inside(net, n)) out.push({ path: `nodes[${idx}].ip`, message: `${nodeIp} is outside its boot server ${b.name}'s rack subnet ${net.cidr}`, hint: `${b.name} hands out its nodes' addresses: use one in ${net.cidr}` });
      else if (n === ip) out.push({ path: `nodes[${idx}].ip`, message: `duplicate address ${nodeIp}, also used by ${at}.ip` });
      else if (inRange(n)) out.push({ path: `nodes[${idx}].ip`, message: `${nodeIp} is inside ${b.name}'s dynamic range ${b.rangeStart}–${b.rangeEnd}`, hint: 'fixed addresses must lie outside the range' });
    });
  });
}
