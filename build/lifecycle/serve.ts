/**
 * node0's services from a built tree, as one supervised group: dnsmasq (DHCP + TFTP), nginx (HTTP) and
 * the watcher (phone-home reports, link switches). Everything is checked before anything starts: the
 * tree is there, the cluster interface exists and holds the admin IP, and the real tools accept the
 * configs (`dnsmasq --test`, `nginx -t`).
 *
 * The configs are the generated ones, rendered from the tree's own spec (etc/portacluster.json) by the
 * same renderers as the build, with node0's runtime paths: the served root (--root), the interface
 * (--interface, the lab's bridge), and serve's own pid, lease and log files, so it never shares them
 * with a system dnsmasq or nginx.
 */
import { serverLinks } from './links.ts';
import { mkdir, readFile, readlink, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { PXE_DIR } from '../layout.ts';
import { atomicWrite } from '../lib/atomic.ts';
import { StageError } from '../lib/errors.ts';
import { run } from '../lib/run.ts';
import type { Plan } from '../plan/plan.ts';
import { renderDnsmasqConf } from '../render/dnsmasq.ts';
import { renderNginxConf } from '../render/nginx.ts';
import { childService, startGroup, type Group, type GroupEvent, type ServiceDef } from './supervise.ts';
import { stopStaleServices } from './stale-services.ts';
import { startWatcher, type WatchEvent, type WatchPower } from './watch.ts';

/** Where serve keeps its runtime configs and pid files, and nginx's access log, unless told otherwise. */
export const DEFAULT_RUN_DIR = '/run/portacluster';
export const DEFAULT_LOG_DIR = '/var/log/portacluster';

export interface ServeOptions {
  plan: Plan;
  /** The served tree (dist/ or /srv/public). */
  root: string;
  stateFile: string;
  /** Runtime configs and pid files. */
  runDir: string;
  /** nginx's access log (the watcher and `status` read it). */
  logDir: string;
  /** Bind dnsmasq here instead of admin.interface. */
  interface?: string;
  /** No upstream DNS and no /etc/hosts: the lab's namespace has no way out, and must not try one. */
  noUpstreamDns?: boolean;
  /** dnsmasq logs each DHCP exchange in full (client arch, vendor class, what it was told to boot). */
  logDhcp?: boolean;
  /** One deadline for every phase (serve --timeout); absent: the plan's phoneHome.deadlines. */
  timeoutMs?: number;
  /** The watcher's power for retries and parking (the CLI wires it; lifecycle does not know drivers). */
  power?: WatchPower;
  /** ssh -F file the watcher reaches the boot servers with (their nodes' links are switched there). */
  sshConfig?: string;
  /** Reads the spec again (from the now-live tree) for a reload; without it a reload re-renders the same plan. */
  reloadPlan?: () => Promise<Plan>;
  onEvent(e: ServeEvent): void;
}

export type ServeEvent = GroupEvent | { event: 'report'; report: WatchEvent } | { event: 'reload'; ok: boolean; message: string };

/** What deploy --activate reads from <run-dir>: which serve runs which root, and how its last reload went. */
export interface ServeInfo {
  pid: number;
  root: string;
  runDir: string;
  logDir: string;
  stateFile: string;
  interface: string;
}
export const SERVE_PID = 'serve.pid';
export const SERVE_INFO = 'serve.json';
export const RELOAD_RESULT = 'reload.json';

export interface Served extends Group {
  /** Re-renders and re-checks the configs from the tree; applies them only if the tools accept them. */
  reload(): Promise<{ ok: boolean; message: string }>;
}

export interface ServePaths {
  dnsmasqConf: string;
  nginxConf: string;
  nginxPrefix: string;
  accessLog: string;
  leases: string;
}

export function servePaths(o: Pick<ServeOptions, 'runDir' | 'logDir' | 'stateFile'>): ServePaths {
  return {
    dnsmasqConf: join(o.runDir, 'dnsmasq.conf'),
    nginxConf: join(o.runDir, 'nginx.conf'),
    nginxPrefix: join(o.runDir, 'nginx'),
    accessLog: join(o.logDir, 'access.log'),
    leases: join(dirname(o.stateFile), 'dnsmasq.leases'),
  };
}

/** The cluster interface must exist here and hold the admin IP, or nodes would get answers from nowhere. */
export async function checkInterface(iface: string, ip: string, prefix: number): Promise<void> {
  const r = await run(['ip', '-j', 'addr', 'show', 'dev', iface], { nothrow: true });
  if (r.exitCode !== 0)
    throw new StageError('serve', `the cluster interface ${iface} does not exist on this host\n  hint: set admin.interface in the spec to the NIC on the cluster network (ip -br link lists them), or pass --interface`);
  const addrs = (JSON.parse(r.stdout || '[]') as { addr_info?: { family: string; local: string; prefixlen: number }[] }[]).flatMap((l) => l.addr_info ?? []);
  const v4 = addrs.filter((a) => a.family === 'inet');
  if (!v4.some((a) => a.local === ip))
    throw new StageError(
      'serve',
      `${iface} does not hold the admin IP ${ip}/${prefix} (it has ${v4.map((a) => `${a.local}/${a.prefixlen}`).join(', ') || 'no IPv4 address'})\n  hint: ip addr add ${ip}/${prefix} dev ${iface}, or fix admin.ip in the spec`,
    );
}

async function checkTree(root: string): Promise<void> {
  const pxe = await stat(join(root, PXE_DIR)).catch(() => null);
  if (!pxe?.isDirectory()) throw new StageError('serve', `no served tree at ${root} (no pxe/ in it)\n  hint: portacluster build --out ${root}, or deploy a tree there, or pass --root DIR`);
  // nginx's workers and dnsmasq's TFTP run as an unprivileged user: every directory on the way to the tree
  // must let others through, or every node gets 403 / a TFTP error while serve says all is well.
  for (let dir = resolve(root); ; dir = dirname(dir)) {
    const st = await stat(dir);
    if ((st.mode & 0o001) === 0)
      throw new StageError('serve', `${dir} is mode ${(st.mode & 0o777).toString(8)}: nginx's workers and dnsmasq's TFTP (unprivileged) cannot reach ${resolve(root)} through it\n  hint: chmod o+x ${dir}, or build and serve the tree somewhere else (--root)`);
    if (dir === dirname(dir)) break;
  }
}

/** Writes the configs (to `<file><suffix>`) and has the real tools check them; a refused candidate is removed. */
async function writeChecked(o: ServeOptions, p: ServePaths, suffix: string, consequence: string): Promise<void> {
  const dnsmasqConf = p.dnsmasqConf + suffix;
  const nginxConf = p.nginxConf + suffix;
  await writeFile(dnsmasqConf, renderDnsmasqConf(o.plan, { interface: o.interface ?? o.plan.admin.interface, servedRoot: resolve(o.root) }));
  await writeFile(nginxConf, renderNginxConf(o.plan, { root: resolve(o.root), pid: join(o.runDir, 'nginx.pid'), errorLog: 'stderr', accessLog: p.accessLog }));
  const checks: [string, string, string[]][] = [
    ['dnsmasq', dnsmasqConf, ['dnsmasq', '--test', `--conf-file=${dnsmasqConf}`]],
    ['nginx', nginxConf, ['nginx', '-t', '-q', '-p', p.nginxPrefix, '-c', nginxConf]],
  ];
  for (const [name, file, argv] of checks) {
    const r = await run(argv, { nothrow: true });
    if (r.exitCode === 0) continue;
    if (suffix) await Promise.all([rm(dnsmasqConf, { force: true }), rm(nginxConf, { force: true })]);
    throw new StageError('serve', `${name} refuses its config ${file}; ${consequence}:\n${(r.stderr || r.stdout).trim().replace(/^/gm, '    ')}`);
  }
}

/** Writes the runtime configs and has the real tools check them; refuses with the tool's own words. */
export async function prepareConfigs(o: ServeOptions, consequence = 'nothing was started'): Promise<ServePaths> {
  const p = servePaths(o);
  for (const d of [o.runDir, o.logDir, dirname(p.leases), join(p.nginxPrefix, 'logs')]) {
    await mkdir(d, { recursive: true }).catch((e: NodeJS.ErrnoException) => {
      throw new StageError('serve', `cannot create the directory ${d} (${e.code ?? e.message}); ${consequence}\n  hint: pass --run-dir/--log-dir/--state paths this user may create, or run as root`);
    });
  }
  await writeChecked(o, p, '', consequence);
  return p;
}

function watcherService(o: ServeOptions): ServiceDef {
  return {
    name: 'watcher',
    async start() {
      const listen = { host: '127.0.0.1', port: o.plan.phoneHome.watcherPort };
      const w = await startWatcher({
        plan: o.plan,
        root: resolve(o.root),
        stateFile: o.stateFile,
        listen,
        ...(o.timeoutMs !== undefined ? { timeoutMs: o.timeoutMs } : {}),
        ...(o.power ? { power: o.power } : {}),
        // Nodes behind boot servers: their links are switched there too, with node0's own ssh setup
        // unless serve was given an ssh config (as watch and reimage take one).
        servers: serverLinks(o.plan, o.sshConfig),
        onEvent: (report) => o.onEvent({ event: 'report', report }),
      });
      // The watcher lives in this process: it ends only when the group stops it.
      return { pid: process.pid, detail: `reports at http://${listen.host}:${listen.port}${o.plan.phoneHome.path}/ (proxied by nginx), state ${o.stateFile}`, exited: new Promise(() => {}), stop: () => w.close() };
    },
  };
}

function dnsmasqService(o: ServeOptions, p: ServePaths, iface: string): ServiceDef {
  return childService(
    'dnsmasq',
    ['dnsmasq', '--keep-in-foreground', `--conf-file=${p.dnsmasqConf}`, `--pid-file=${join(o.runDir, 'dnsmasq.pid')}`, `--dhcp-leasefile=${p.leases}`, '--log-facility=-', ...(o.noUpstreamDns ? ['--no-resolv', '--no-hosts'] : []), ...(o.logDhcp ? ['--log-dhcp'] : [])],
    { readyLine: /started, version/, detail: `DHCP + TFTP on ${iface}, tftp root ${resolve(o.root, PXE_DIR)}` },
  );
}

/** Checks everything, then starts dnsmasq, nginx and the watcher; the group stops as one. */
export async function serve(o: ServeOptions): Promise<Served> {
  await checkTree(o.root);
  const iface = o.interface ?? o.plan.admin.interface;
  await checkInterface(iface, o.plan.admin.ip, o.plan.admin.prefix);
  const p = await prepareConfigs(o);
  // A serve killed outright leaves its dnsmasq and nginx holding the ports: stop them, or nothing starts.
  const stale = await stopStaleServices(o.runDir, SERVE_PID, [
    { name: 'dnsmasq', pidFile: join(o.runDir, 'dnsmasq.pid'), config: p.dnsmasqConf },
    { name: 'nginx', pidFile: join(o.runDir, 'nginx.pid'), config: p.nginxConf },
  ]);
  for (const s of stale) o.onEvent({ event: 'line', service: 'serve', stream: 'stderr', line: `stopped ${s}, left running by a serve of ${o.runDir} that died` });
  const base = `http://${o.plan.admin.ip}:80/`;
  const services: ServiceDef[] = [
    // The watcher first: nginx proxies reports to it from its first request on.
    watcherService(o),
    dnsmasqService(o, p, iface),
    childService('nginx', ['nginx', '-p', p.nginxPrefix, '-c', p.nginxConf, '-g', 'daemon off;'], {
      probe: async () => (await fetch(base, { signal: AbortSignal.timeout(1000) })).status > 0,
      detail: `${base} serving ${resolve(o.root)}, access log ${p.accessLog}`,
    }),
  ];
  const group = await startGroup(services, o.onEvent);
  const info: ServeInfo = { pid: process.pid, root: resolve(o.root), runDir: resolve(o.runDir), logDir: resolve(o.logDir), stateFile: resolve(o.stateFile), interface: iface };
  await writeFile(join(o.runDir, SERVE_PID), `${process.pid}\n`);
  await writeFile(join(o.runDir, SERVE_INFO), JSON.stringify(info, null, 2) + '\n');
  void group.done.then(() => Promise.all([SERVE_PID, SERVE_INFO, RELOAD_RESULT].map((f) => rm(join(o.runDir, f), { force: true }))));

  let current = o;
  let reloads = 0;
  let queue: Promise<unknown> = Promise.resolve();
  const reloadOnce = async (): Promise<{ ok: boolean; message: string }> => {
    const release = await readlink(o.root).catch(() => resolve(o.root));
    let result: { ok: boolean; message: string };
    try {
      const next: ServeOptions = { ...current, plan: current.reloadPlan ? await current.reloadPlan() : current.plan };
      await checkTree(next.root);
      // Candidates first: until the tools accept them, the running services and their files stay as they are.
      await writeChecked(next, p, '.new', `the running services keep their previous config`);
      // Directives only: the header comment names the spec's hash, which changes with any field.
      const directives = (t: string | null) => t?.split('\n').filter((l) => !l.startsWith('#')).join('\n');
      const dnsmasqSame = directives(await readFile(p.dnsmasqConf, 'utf8').catch(() => null)) === directives(await readFile(p.dnsmasqConf + '.new', 'utf8'));
      await rename(p.dnsmasqConf + '.new', p.dnsmasqConf);
      await rename(p.nginxConf + '.new', p.nginxConf);
      current = next;
      // nginx's master re-reads its config on SIGHUP and replaces its workers gracefully; dnsmasq rereads
      // only its hosts files on SIGHUP, so it is restarted, but only when its config changed: a restart
      // drops the TFTP transfers in flight, and pxelinux does not retry a broken one (a node booting during
      // the deploy would wait at "Boot failed" for its deadline). The watcher restarts with the new spec.
      const nginx = group.pidOf('nginx');
      if (nginx) process.kill(nginx, 'SIGHUP');
      if (!dnsmasqSame) await group.restart('dnsmasq', dnsmasqService(next, p, iface));
      await group.restart('watcher', watcherService(next));
      result = { ok: true, message: `reloaded from ${release}: nginx re-read its config (SIGHUP), ${dnsmasqSame ? 'dnsmasq kept (its config is the same)' : 'dnsmasq restarted'}, the watcher restarted` };
    } catch (e) {
      result = { ok: false, message: `reload from ${release} failed: ${(e as Error).message}` };
    }
    reloads += 1;
    // Written then renamed: deploy --activate polls this file and must never read half of it.
    await atomicWrite(join(o.runDir, RELOAD_RESULT), JSON.stringify({ n: reloads, ...result }) + '\n').catch(() => {});
    o.onEvent({ event: 'reload', ...result });
    return result;
  };
  return {
    ...group,
    // One reload at a time: a second SIGHUP waits for the first.
    reload: () => {
      const r = queue.then(reloadOnce);
      queue = r.catch(() => {});
      return r;
    },
  };
}
