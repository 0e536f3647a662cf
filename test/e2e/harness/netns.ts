/**
 * The lab network: a namespace holding a bridge with node0's address and one tap per VM. Nothing is
 * routed out of it. Every process the lab starts runs inside it and is stopped by PID in stop().
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { run } from '../../../build/lib/run.ts';

export const BRIDGE = 'pcbr0';

export interface Netns {
  name: string;
  bridge: string;
  addTap(tap: string): Promise<void>;
  /** argv run inside the namespace. */
  exec(argv: string[]): string[];
  spawn(argv: string[], o?: { stdout?: 'pipe' | 'ignore' }): ChildProcess;
  stop(): Promise<void>;
}

/**
 * iPXE (the NIC ROM of QEMU's NICs) waits ~13 s for IPv6 autoconfiguration when no router answers.
 * This answers every router solicitation (and says it every second) with a link-local router
 * advertisement that carries no prefix and a router lifetime of 0: it assigns nothing (qemu-lab.md).
 */
const RA_RESPONDER = `
import socket, struct, sys, select, time
ifname = sys.argv[1]
idx = socket.if_nametoindex(ifname)
s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, idx)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_LOOP, 0)
s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, ifname.encode())
# Receive router solicitations (type 133) only: a set bit in ICMP6_FILTER blocks that type.
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
    # At most one advertisement per 100 ms, however many solicitations arrive.
    if now - last < 0.1:
        continue
    last = now
    try:
        s.sendto(ra, ('ff02::1', 0, 0, idx))
    except OSError:
        pass
`;

export async function createNetns(name: string, adminCidr: string): Promise<Netns> {
  const children: ChildProcess[] = [];
  const ip = (...args: string[]) => run(['ip', ...args]);
  await run(['ip', 'netns', 'del', name], { nothrow: true });
  await ip('netns', 'add', name);
  const ns = (...args: string[]) => ip('-n', name, ...args);
  try {
    await ns('link', 'set', 'lo', 'up');
    await ns('link', 'add', BRIDGE, 'type', 'bridge', 'stp_state', '0', 'forward_delay', '0');
    await ns('addr', 'add', adminCidr, 'dev', BRIDGE);
    await ns('link', 'set', BRIDGE, 'up');
  } catch (e) {
    await run(['ip', 'netns', 'del', name], { nothrow: true });
    throw e;
  }
  const self: Netns = {
    name,
    bridge: BRIDGE,
    async addTap(tap) {
      await ns('tuntap', 'add', 'dev', tap, 'mode', 'tap');
      await ns('link', 'set', tap, 'master', BRIDGE, 'up');
    },
    exec: (argv) => ['ip', 'netns', 'exec', name, ...argv],
    spawn(argv, o = {}) {
      const full = self.exec(argv);
      const child = spawn(full[0]!, full.slice(1), { stdio: ['ignore', o.stdout ?? 'ignore', 'pipe'] });
      children.push(child);
      return child;
    },
    async stop() {
      for (const c of children.reverse()) {
        if (c.exitCode === null && c.signalCode === null && c.pid) {
          const gone = new Promise((r) => c.once('exit', r));
          c.kill('SIGTERM');
          await Promise.race([gone, new Promise((r) => setTimeout(r, 5000))]);
          if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
        }
      }
      await run(['ip', 'netns', 'del', name], { nothrow: true });
    },
  };
  self.spawn(['python3', '-c', RA_RESPONDER, BRIDGE]);
  return self;
}
