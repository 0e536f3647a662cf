/**
 * The bench's two-tier network, every part of it in namespaces made here and removed in destroy():
 *
 *   node0 ──(backbone rate)── switch ──┬── server1 ──(rack rate)── rack1 (the installers of rack 1)
 *                                      ├── server2 ──(rack rate)── rack2
 *                                      └── …
 *
 * node0's one NIC and each server's NIC into its rack are shaped with tbf on their egress (the direction
 * the images flow). A server also routes, so the same installers can fetch from node0 directly: the flat
 * network of one node0, where all bytes go through node0's NIC. Nothing is routed out of the namespaces.
 */
import { run } from '../../build/lib/run.ts';

export interface Rack {
  index: number;
  /** The boot server's namespace and its address on each side. */
  serverNs: string;
  serverBackbone: string;
  serverRack: string;
  /** The rack's installers' namespace and their address. */
  rackNs: string;
  client: string;
}

export interface ScaleNet {
  node0Ns: string;
  switchNs: string;
  /** node0's NIC (its namespace's name for it), whose tx counter is node0's egress. */
  node0Dev: string;
  racks: Rack[];
  exec(ns: string, argv: string[]): string[];
  txBytes(ns: string, dev: string): Promise<number>;
  destroy(): Promise<void>;
}

export interface ScaleNetOptions {
  /** Every namespace's name starts with it; unique per run. */
  prefix: string;
  node0Cidr: string;
  servers: number;
  backboneMbit: number;
  rackMbit: number;
}

const ip = (...args: string[]) => run(['ip', ...args]);

/**
 * tbf with a bucket above the largest GSO packet veth hands it (64 KiB), so no packet is ever too big to
 * pass, and a queue of 50 ms at the rate; tbf counts each segment's headers (qdisc_pkt_len), so the rate
 * is Ethernet frames without preamble, FCS and gap.
 */
async function shape(ns: string, dev: string, mbit: number): Promise<void> {
  await run(['ip', 'netns', 'exec', ns, 'tc', 'qdisc', 'replace', 'dev', dev, 'root', 'tbf', 'rate', `${mbit}mbit`, 'burst', '256kb', 'latency', '50ms']);
}

export async function createScaleNet(o: ScaleNetOptions): Promise<ScaleNet> {
  const [node0Ip, prefixLen] = o.node0Cidr.split('/') as [string, string];
  const backboneNet = node0Ip.split('.').slice(0, 3).join('.');
  const made: string[] = [];
  const addNs = async (name: string) => {
    await ip('netns', 'add', name);
    made.push(name);
    await ip('-n', name, 'link', 'set', 'lo', 'up');
    return name;
  };
  const net: ScaleNet = {
    node0Ns: `${o.prefix}-n0`,
    switchNs: `${o.prefix}-sw`,
    node0Dev: 'eth0',
    racks: [],
    exec: (ns, argv) => ['ip', 'netns', 'exec', ns, ...argv],
    async txBytes(ns, dev) {
      const j = JSON.parse((await run(['ip', '-n', ns, '-j', '-s', 'link', 'show', 'dev', dev])).stdout) as { stats64: { tx: { bytes: number } } }[];
      return j[0]!.stats64.tx.bytes;
    },
    async destroy() {
      // Deleting a namespace deletes its ends of the veths, and with them the peers.
      for (const ns of made.reverse()) await ip('netns', 'del', ns).catch(() => {});
    },
  };
  try {
    await addNs(net.switchNs);
    await ip('-n', net.switchNs, 'link', 'add', 'bb', 'type', 'bridge', 'stp_state', '0', 'forward_delay', '0');
    await ip('-n', net.switchNs, 'link', 'set', 'bb', 'up');
    const plug = async (ns: string, dev: string, port: string, cidr: string) => {
      await ip('link', 'add', 'name', dev, 'netns', ns, 'type', 'veth', 'peer', 'name', port, 'netns', net.switchNs);
      await ip('-n', net.switchNs, 'link', 'set', port, 'master', 'bb', 'up');
      await ip('-n', ns, 'addr', 'add', cidr, 'dev', dev);
      await ip('-n', ns, 'link', 'set', dev, 'up');
    };
    await addNs(net.node0Ns);
    await plug(net.node0Ns, net.node0Dev, 'n0', o.node0Cidr);
    await shape(net.node0Ns, net.node0Dev, o.backboneMbit);
    for (let k = 1; k <= o.servers; k++) {
      const rack: Rack = {
        index: k,
        serverNs: await addNs(`${o.prefix}-s${k}`),
        serverBackbone: `${backboneNet}.${20 + k}`,
        serverRack: `10.100.${k}.1`,
        rackNs: await addNs(`${o.prefix}-r${k}`),
        client: `10.100.${k}.2`,
      };
      await plug(rack.serverNs, 'bb', `s${k}`, `${rack.serverBackbone}/${prefixLen}`);
      await ip('link', 'add', 'name', 'rack', 'netns', rack.serverNs, 'type', 'veth', 'peer', 'name', 'uplink', 'netns', rack.rackNs);
      await ip('-n', rack.serverNs, 'addr', 'add', `${rack.serverRack}/24`, 'dev', 'rack');
      await ip('-n', rack.rackNs, 'addr', 'add', `${rack.client}/24`, 'dev', 'uplink');
      await ip('-n', rack.serverNs, 'link', 'set', 'rack', 'up');
      await ip('-n', rack.rackNs, 'link', 'set', 'uplink', 'up');
      await ip('-n', rack.rackNs, 'route', 'add', 'default', 'via', rack.serverRack);
      await ip('-n', net.node0Ns, 'route', 'add', `10.100.${k}.0/24`, 'via', rack.serverBackbone);
      // The server routes between its rack and the backbone: the flat-network run goes through it.
      await run(net.exec(rack.serverNs, ['sysctl', '-q', '-w', 'net.ipv4.ip_forward=1']));
      await shape(rack.serverNs, 'rack', o.rackMbit);
      net.racks.push(rack);
    }
    return net;
  } catch (e) {
    await net.destroy();
    throw e;
  }
}
