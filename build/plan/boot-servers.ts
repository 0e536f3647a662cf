/**
 * Boot servers in the plan (issue 17): each resolved once (defaults, its rack's netmask, its base URL, its
 * nodes' names). boot-server-view.ts gives the plan as one server's own services see it.
 */
import type { NormalizedSpec } from '../spec/normalized.ts';
import { PLANNED_DEFAULTS } from '../spec/schema.ts';
import { formatIpv4, parseIpv4, subnetOf } from '../spec/values.ts';

export interface PlanBootServer {
  name: string;
  /** Its address on node0's network; node0 is its origin at admin.ip. */
  backboneIp: string;
  interface: string;
  ip: string;
  prefix: number;
  netmask: string;
  network: string;
  /** What its nodes fetch from: http://<ip>. */
  httpBase: string;
  rangeStart: string;
  rangeEnd: string;
  leaseTime: string;
  /** The names of the nodes behind it, in nodes[] order. */
  nodes: string[];
  /** deploy's ssh destination. */
  ssh: string;
}

export function planBootServers(spec: NormalizedSpec): PlanBootServer[] {
  return (spec.bootServers ?? []).map((b) => {
    const net = subnetOf(parseIpv4(b.ip)!, b.prefix);
    const behind = new Set(b.nodes);
    return {
      name: b.name,
      backboneIp: b.backboneIp,
      interface: b.interface,
      ip: b.ip,
      prefix: b.prefix,
      netmask: formatIpv4(net.netmask),
      network: formatIpv4(net.network),
      httpBase: `http://${b.ip}`,
      rangeStart: b.rangeStart,
      rangeEnd: b.rangeEnd,
      leaseTime: b.leaseTime ?? PLANNED_DEFAULTS.leaseTime,
      nodes: spec.nodes.filter((n) => behind.has(n.name)).map((n) => n.name),
      ssh: b.ssh ?? `root@${b.backboneIp}`,
    };
  });
}
