/**
 * The plan as one boot server's dnsmasq, nginx and boot files see it: the same cluster with the server in
 * node0's place on its rack's network (its address as admin.httpBase, so the profiles and scripts rendered
 * from the view name it), only its nodes, its own DHCP range. The renderers take that view unchanged, so a
 * server hands out the same loaders, per-MAC links and scripts as node0 does, with its own address.
 */
import type { PlanBootServer } from './boot-servers.ts';
import type { Plan } from './plan.ts';

/** The nodes node0 serves itself: those no boot server names. */
export function node0Nodes(plan: Plan): Plan['nodes'] {
  const behind = new Set(plan.bootServers.flatMap((b) => b.nodes));
  return plan.nodes.filter((n) => !behind.has(n.name));
}

/** The plan as one boot server's own services see it: the server in node0's place, its nodes only. */
export function bootServerView(plan: Plan, server: PlanBootServer): Plan {
  return {
    ...plan,
    admin: { ...plan.admin, hostname: server.name, interface: server.interface, ip: server.ip, prefix: server.prefix, netmask: server.netmask, network: server.network, httpBase: server.httpBase },
    dhcp: { mode: 'server', rangeStart: server.rangeStart, rangeEnd: server.rangeEnd, leaseTime: server.leaseTime },
    // Switches and PDUs are on node0's network, not in a rack's.
    appliances: [],
    nodes: plan.nodes.filter((n) => n.bootServer === server.name),
    phoneHome: { ...plan.phoneHome, url: server.httpBase + plan.phoneHome.path },
    bootServers: [],
  };
}
