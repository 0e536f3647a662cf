/**
 * The racks of the two-tier lab (issue 17). A boot server is a network namespace of its own: its rack
 * bridge (named like its bootServers[].interface, holding its rack address; nodes' taps join it) and a veth
 * on node0's bridge holding its backbone address. Its "disk" is a directory that every process of the
 * server sees at the spec's servedRoot (mount-ns.ts): its sshd (in node0's namespace, where deploy and the
 * watcher reach it over ssh), and its dnsmasq and nginx, started from the configs deploy put there (etc/ of
 * its tree) as generated. The runtime paths those configs name (/run, /var/log/nginx, /var/lib/nginx,
 * /var/cache) are the rack's own directories in the same mount namespace, so the files run unchanged.
 */
import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { DNSMASQ_CONF, NGINX_CONF } from '../../../build/layout.ts';
import { run } from '../../../build/lib/run.ts';
import type { PlanBootServer } from '../../../build/plan/boot-servers.ts';
import { inMountNs } from '../../helpers/mount-ns.ts';
import { startSshd, type Sshd } from '../../helpers/sshd.ts';
import { createNetns, type Netns } from './netns.ts';

export interface RackDisk {
  server: PlanBootServer;
  /** What the server sees at dirname(servedRoot). */
  disk: string;
  sshd: Sshd;
}

/** The server's disk and its sshd (in node0's namespace `node0Ns`), before anything is deployed to it. */
export async function startRackSshd(dir: string, server: PlanBootServer, servedRoot: string, node0Ns: string): Promise<RackDisk> {
  const disk = join(dir, server.name, 'disk');
  await mkdir(disk, { recursive: true, mode: 0o755 });
  // node0's own: the mount point of the server's disk in its namespaces.
  await mkdir(dirname(servedRoot), { recursive: true, mode: 0o755 });
  const sshd = await startSshd(join(dir, server.name, 'ssh'), { alias: server.ssh, bindOver: { src: disk, dst: dirname(servedRoot) }, netns: node0Ns });
  return { server, disk, sshd };
}

/** One ssh_config naming every server (what deploy, reimage and serve's watcher get with --ssh-config). */
export async function writeRacksSshConfig(file: string, racks: readonly RackDisk[]): Promise<string> {
  await writeFile(file, (await Promise.all(racks.map((r) => readFile(r.sshd.sshConfig, 'utf8')))).join(''));
  return file;
}

export interface Rack extends RackDisk {
  ns: Netns;
  /** The server's nginx access log (its /var/log/nginx/access.log). */
  accessLog: string;
  /** The tail of its dnsmasq's log, for a diagnosis. */
  dnsmasqLog(): string;
  /** Bytes node0's side of the backbone link sent this server so far (the veth's counter). */
  backboneBytes(): Promise<number>;
  /** Bytes of files in the server's image cache (its proxy_cache_path). */
  cachedBytes(): Promise<number>;
  stop(): Promise<void>;
}

async function waitFile(file: string, child: ChildProcess, what: string, tail: () => string | Promise<string>): Promise<void> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    if (await readFile(file).then(() => true, () => false)) return;
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`${what} did not start: ${await tail()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The server's namespace and its services, from its deployed tree; `node0` is node0's namespace and bridge. */
export async function startRack(dir: string, d: RackDisk, servedRoot: string, node0: Netns, backbonePrefix: number): Promise<Rack> {
  const { server } = d;
  const ns = await createNetns(`pc-${server.name}-${process.pid}`, `${server.ip}/${server.prefix}`);
  const base = join(dir, server.name);
  try {
    if (ns.bridge !== server.interface) throw new Error(`the lab spec must name the rack bridge ${ns.bridge} as ${server.name}'s interface (got ${server.interface})`);
    // The backbone: a veth from node0's bridge to the server, holding its backbone address.
    const peer = `pcbb-${server.name}`.slice(0, 15);
    await run(['ip', 'link', 'add', 'name', peer, 'netns', node0.name, 'type', 'veth', 'peer', 'name', 'backbone', 'netns', ns.name]);
    await run(['ip', '-n', node0.name, 'link', 'set', peer, 'master', node0.bridge, 'up']);
    await run(['ip', '-n', ns.name, 'addr', 'add', `${server.backboneIp}/${backbonePrefix}`, 'dev', 'backbone']);
    await run(['ip', '-n', ns.name, 'link', 'set', 'backbone', 'up']);
    const rt = Object.fromEntries(['run', 'log', 'lib', 'cache'].map((k) => [k, join(base, k)])) as Record<'run' | 'log' | 'lib' | 'cache', string>;
    for (const p of Object.values(rt)) await mkdir(p, { recursive: true, mode: 0o755 });
    const binds = [
      { src: d.disk, dst: dirname(servedRoot) },
      { src: rt.run, dst: '/run' },
      { src: rt.log, dst: '/var/log/nginx' },
      { src: rt.lib, dst: '/var/lib/nginx' },
      { src: rt.cache, dst: '/var/cache' },
    ];
    let dnsmasqTail = '';
    // As serve runs node0's dnsmasq: the generated config, runtime paths on the command line, no way out.
    const dnsmasq = ns.spawn(inMountNs(binds, ['dnsmasq', '--keep-in-foreground', `--conf-file=${servedRoot}/${DNSMASQ_CONF}`, '--pid-file=/run/dnsmasq.pid', '--dhcp-leasefile=/run/dnsmasq.leases', '--log-facility=-', '--no-resolv', '--no-hosts']));
    dnsmasq.stderr!.on('data', (b: Buffer) => (dnsmasqTail = (dnsmasqTail + b.toString()).slice(-8000)));
    await waitFile(join(rt.run, 'dnsmasq.pid'), dnsmasq, `${server.name}'s dnsmasq`, () => dnsmasqTail);
    let nginxErr = '';
    // The cache's parent: nginx makes (and hands its workers) only the last directory of proxy_cache_path.
    const nginx = ns.spawn(inMountNs(binds, ['sh', '-c', 'mkdir -p /var/cache/portacluster && exec nginx -c "$1" -g "daemon off;"', 'sh', `${servedRoot}/${NGINX_CONF}`]));
    nginx.stderr!.on('data', (b: Buffer) => (nginxErr = (nginxErr + b.toString()).slice(-4000)));
    await waitFile(join(rt.run, 'nginx.pid'), nginx, `${server.name}'s nginx`, async () => `${nginxErr}\n${(await readFile(join(rt.log, 'error.log'), 'utf8').catch(() => '')).slice(-2000)}`);
    return {
      ...d,
      ns,
      accessLog: join(rt.log, 'access.log'),
      dnsmasqLog: () => dnsmasqTail,
      async backboneBytes() {
        const out = await run(['ip', '-n', node0.name, '-j', '-s', 'link', 'show', 'dev', peer]);
        return (JSON.parse(out.stdout) as { stats64: { tx: { bytes: number } } }[])[0]!.stats64.tx.bytes;
      },
      async cachedBytes() {
        const files = await readdir(rt.cache, { recursive: true, withFileTypes: true });
        let total = 0;
        for (const f of files) if (f.isFile()) total += (await stat(join(f.parentPath, f.name))).size;
        return total;
      },
      async stop() {
        await ns.stop();
        await d.sshd.stop();
      },
    };
  } catch (e) {
    await ns.stop();
    throw e;
  }
}
