/**
 * etc/servers/<name>/dnsmasq.conf: a boot server's dnsmasq (issue 17). It is node0's server-mode config
 * rendered from the plan as that server sees it (plan/boot-server-view.ts): bound to the server's rack
 * interface, its own range, only the nodes behind it, the same loaders and per-MAC link names, its own
 * address as the iPXE and HTTP-boot URLs' host. One renderer for both keeps them from drifting apart.
 */
import { bootServerView } from '../plan/boot-server-view.ts';
import type { PlanBootServer } from '../plan/boot-servers.ts';
import type { Plan } from '../plan/plan.ts';
import { renderDnsmasqConf, type DnsmasqRuntime } from './dnsmasq.ts';

export function renderBootServerDnsmasqConf(plan: Plan, server: PlanBootServer, rt?: DnsmasqRuntime): string {
  const view = bootServerView(plan, server);
  return renderDnsmasqConf(view, rt ?? { interface: server.interface, servedRoot: plan.admin.servedRoot });
}
