/**
 * The lab's network: a namespace holding a bridge named like the spec's cluster interface, with node0's
 * address, and one tap per VM. Nothing is routed out of it, so the lab's dnsmasq can never answer on the
 * host's own network. Everything here is an argv for `ip`; nothing is left running by these functions.
 */
import { run } from '../lib/run.ts';

/**
 * iPXE (the NIC ROM of QEMU's NICs) waits ~13 s for IPv6 autoconfiguration when no router answers. This
 * answers router solicitations with a link-local router advertisement that carries no prefix and a router
 * lifetime of 0: it assigns nothing, it only ends the wait. It answers solicitations only (answering its own
 * multicast once flooded the bridge), at most one advertisement per 100 ms.
 */
export const RA_RESPONDER = `
import socket, struct, sys, select, time
ifname = sys.argv[1]
idx = socket.if_nametoindex(ifname)
s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, idx)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_LOOP, 0)
s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, ifname.encode())
blocked = [0xffffffff] * 8
blocked[133 >> 5] &= ~(1 << (133 & 31)) & 0xffffffff
s.setsockopt(socket.IPPROTO_ICMPV6, 1, struct.pack('8I', *blocked))
ra = struct.pack('!BBHBBHII', 134, 0, 0, 64, 0, 0, 0, 0)
last = 0.0
while True:
    r, _, _ = select.select([s], [], [], 1.0)
    if r:
        data, _ = s.recvfrom(1500)
        if not data or data[0] != 133:
            continue
    now = time.monotonic()
    if now - last < 0.1:
        continue
    last = now
    try:
        s.sendto(ra, ('ff02::1', 0, 0, idx))
    except OSError:
        pass
`;

export const nsExec = (ns: string, argv: string[]): string[] => ['ip', 'netns', 'exec', ns, ...argv];

export async function netnsExists(ns: string): Promise<boolean> {
  const r = await run(['ip', 'netns', 'list'], { nothrow: true });
  return r.stdout.split('\n').some((l) => l.split(' ')[0] === ns);
}

/** A namespace with lo up and a bridge holding adminCidr. Removed again if any step fails. */
export async function createLabNetwork(ns: string, bridge: string, adminCidr: string): Promise<void> {
  await run(['ip', 'netns', 'add', ns]);
  const inNs = (...args: string[]) => run(['ip', '-n', ns, ...args]);
  try {
    await inNs('link', 'set', 'lo', 'up');
    await inNs('link', 'add', bridge, 'type', 'bridge', 'stp_state', '0', 'forward_delay', '0');
    await inNs('addr', 'add', adminCidr, 'dev', bridge);
    await inNs('link', 'set', bridge, 'up');
  } catch (e) {
    await run(['ip', 'netns', 'del', ns], { nothrow: true });
    throw e;
  }
}

export async function addTap(ns: string, bridge: string, tap: string): Promise<void> {
  await run(['ip', '-n', ns, 'tuntap', 'add', 'dev', tap, 'mode', 'tap']);
  await run(['ip', '-n', ns, 'link', 'set', tap, 'master', bridge, 'up']);
}

/** Deleting the namespace removes its bridge and taps with it. */
export async function deleteLabNetwork(ns: string): Promise<void> {
  await run(['ip', 'netns', 'del', ns], { nothrow: true });
}

/** Whether this process already runs inside the named namespace (same inode as /run/netns/NS). */
export async function insideNetns(ns: string): Promise<boolean> {
  const { stat } = await import('node:fs/promises');
  const [self, named] = await Promise.all([stat('/proc/self/ns/net').catch(() => null), stat(`/run/netns/${ns}`).catch(() => null)]);
  return !!self && !!named && self.ino === named.ino && self.dev === named.dev;
}
