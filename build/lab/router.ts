/**
 * The lab's stand-in for a home router, for specs in proxy-DHCP mode (dhcp.mode "proxy"): there node0
 * hands out no addresses, so on a real network the router does, and the lab must play it or no node gets
 * an address. It is a plain dnsmasq in a namespace of its own, joined to the lab's bridge by a veth pair:
 * addresses from a pool in the upper half of the cluster subnet, no DNS, no boot options — exactly the
 * kind of DHCP server portacluster's proxy must work beside. It exists only in the lab.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { terminate } from '../lib/process.ts';
import { run } from '../lib/run.ts';
import type { Plan } from '../plan/plan.ts';
import { formatIpv4, parseIpv4, subnetOf } from '../spec/values.ts';
import { nsExec } from './netns.ts';

export interface LabRouter {
  netns: string;
  ip: string;
  pool: { first: string; last: string };
  pid: number;
  leases: string;
  log: string;
}

/** The router's address and pool: the first host address that is not node0's, and the upper half of the subnet. */
export function routerAddresses(plan: Plan): { ip: string; first: string; last: string } {
  const admin = parseIpv4(plan.admin.ip)!;
  const net = subnetOf(admin, plan.admin.prefix);
  const ip = net.network + 1 === admin ? net.network + 2 : net.network + 1;
  const hosts = net.broadcast - net.network - 1;
  let first = net.network + Math.floor(hosts / 2);
  const last = net.broadcast - 1;
  if (admin >= first && admin <= last) first = admin + 1;
  return { ip: formatIpv4(ip), first: formatIpv4(first), last: formatIpv4(last) };
}

export async function startLabRouter(o: { plan: Plan; labNetns: string; bridge: string; dir: string }): Promise<LabRouter> {
  const netns = `${o.labNetns}-rt`.slice(0, 31);
  const a = routerAddresses(o.plan);
  await run(['ip', 'netns', 'add', netns]);
  try {
    // One end in the router's namespace, the other on the lab's bridge: the router is just another host there.
    await run(['ip', '-n', o.labNetns, 'link', 'add', 'pcrt1', 'type', 'veth', 'peer', 'name', 'pcrt0', 'netns', netns]);
    await run(['ip', '-n', o.labNetns, 'link', 'set', 'pcrt1', 'master', o.bridge, 'up']);
    await run(['ip', '-n', netns, 'link', 'set', 'lo', 'up']);
    await run(['ip', '-n', netns, 'addr', 'add', `${a.ip}/${o.plan.admin.prefix}`, 'dev', 'pcrt0']);
    await run(['ip', '-n', netns, 'link', 'set', 'pcrt0', 'up']);
    const leases = join(o.dir, 'router.leases');
    const log = join(o.dir, 'router.log');
    const argv = nsExec(netns, [
      'dnsmasq', '--keep-in-foreground', '--port=0', '--no-resolv', '--no-hosts', '--interface=pcrt0', '--bind-interfaces',
      `--dhcp-range=${a.first},${a.last},${o.plan.admin.netmask},1h`, '--dhcp-authoritative',
      `--dhcp-leasefile=${leases}`, `--pid-file=${join(o.dir, 'router.pid')}`, `--log-facility=${log}`, '--log-dhcp',
    ]);
    const child = spawn(argv[0]!, argv.slice(1), { stdio: 'ignore', detached: true });
    child.unref();
    if (child.pid === undefined) throw new Error('the lab router (dnsmasq) did not start');
    return { netns, ip: a.ip, pool: { first: a.first, last: a.last }, pid: child.pid, leases, log };
  } catch (e) {
    await run(['ip', 'netns', 'del', netns], { nothrow: true });
    throw e;
  }
}

async function deleteRouterNetwork(netns: string): Promise<void> {
  await run(['ip', 'netns', 'del', netns], { nothrow: true });
}

/** The router stopped (SIGTERM, then SIGKILL after `graceMs`) and its namespace removed; one already gone is fine. */
export async function stopLabRouter(router: Pick<LabRouter, 'pid' | 'netns'>, graceMs: number): Promise<void> {
  await terminate(router.pid, graceMs);
  await deleteRouterNetwork(router.netns);
}
