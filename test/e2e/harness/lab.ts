/**
 * The reimaging lab: dist/ built by the CLI from test/e2e/fixtures/lab.config.ts (with ssh keys made
 * per run), served by `portacluster serve` (the generated dnsmasq and nginx configs and the watcher, on
 * the lab's bridge) in a network namespace. Nodes are VMs (vm.ts) on taps.
 */
import type { ChildProcess } from 'node:child_process';
import { chmod, copyFile, mkdir, open, readFile, readlink, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { run } from '../../../build/lib/run.ts';
import { IMAGES_DIR, MANIFEST_FILE, autorunDir, autorunPath, ipxePath, ipxeProfileFile, pxelinuxPath, urlFor } from '../../../build/layout.ts';
import { switchNodes } from '../../../build/lifecycle/links.ts';
import { startRuns } from '../../../build/lifecycle/runs.ts';
import { registryFile } from '../../../build/lab/lab.ts';
import type { LabVm } from '../../../build/lab/vm.ts';
import { PHASES } from '../../../build/lifecycle/watch.ts';
import { planCluster, type Plan, type PlanNode } from '../../../build/plan/plan.ts';
import type { FsImageRef, ImageRef } from '../../../build/render/autorun.ts';
import { renderInstallerScript } from '../../../build/render/scripts.ts';
import { loadSpec, readSpecFile } from '../../../build/spec/load.ts';
import { createNetns, type Netns } from './netns.ts';
import { createDisk, startVm, type Vm } from './vm.ts';

export const REPO = fileURLToPath(new URL('../../../', import.meta.url));
export const LAB_SPEC = join(REPO, 'test/e2e/fixtures/lab.config.ts');
export const FLAKY_PORT = 8081;
/** Persistent between runs: the golden image and installer environment are built once. */
export const E2E_CACHE = process.env.PORTACLUSTER_E2E_CACHE ?? join(REPO, '.cache', 'e2e');

export interface Report {
  kind: 'report';
  method: string;
  phase: string;
  host: string;
  mac: string;
  failedPhase: string | null;
  query: Record<string, string>;
  body: string;
  at: number;
}

export interface Keys {
  admin: string;
  rescue: string;
}

export interface BuiltDist {
  dir: string;
  dist: string;
  plan: Plan;
  image: ImageRef;
  /** The ext4 image of image mode (the lab's spec installs in image mode). */
  fsImage?: FsImageRef;
  keys: Keys;
  buildSeconds: number;
}

/** Builds dist/ with the CLI (`build --config --out --cache`) from the lab spec and per-run keys. */
/** `edit` changes the lab spec before the build (e.g. proxy-DHCP mode). */
export async function buildLabDist(dir: string, edit?: (raw: Record<string, any>) => void): Promise<BuiltDist> {
  await mkdir(join(dir, 'keys'), { recursive: true });
  // dnsmasq (TFTP) and nginx workers run as nobody: every directory on the served path must be searchable.
  await chmod(dir, 0o755);
  const keys: Keys = { admin: join(dir, 'keys/admin'), rescue: join(dir, 'keys/rescue') };
  for (const k of Object.values(keys)) await run(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-C', `e2e-${k.split('/').at(-1)}`, '-f', k]);
  const raw = structuredClone((await readSpecFile(LAB_SPEC)) as Record<string, any>);
  raw.users[0].sshKeys = [(await readFile(`${keys.admin}.pub`, 'utf8')).trim()];
  raw.rescue.sshKeys = [(await readFile(`${keys.rescue}.pub`, 'utf8')).trim()];
  edit?.(raw);
  const specFile = join(dir, 'lab.json');
  await writeFile(specFile, JSON.stringify(raw, null, 2));
  const dist = join(dir, 'dist');
  const t0 = Date.now();
  await buildWithCli(specFile, dist);
  const plan = planCluster((await loadSpec(specFile)).spec);
  const manifest = JSON.parse(await readFile(join(dist, MANIFEST_FILE), 'utf8'));
  const img = manifest.artifacts.image as { file: string; sha256: string; size: number };
  const fs = manifest.artifacts.fsImage as { file: string; sha256: string; size: number; imageBytes: number } | undefined;
  return { dir, dist, plan, keys, image: { fileName: img.file.replace(/^images\//, ''), sha256: img.sha256, size: img.size }, ...(fs ? { fsImage: { fileName: fs.file.replace(/^images\//, ''), sha256: fs.sha256, size: fs.size, imageBytes: fs.imageBytes } } : {}), buildSeconds: (Date.now() - t0) / 1000 };
}

/** `portacluster build` of a lab spec file into `out`, with the lab's cache and a fixed epoch (reproducible images). */
async function buildWithCli(specFile: string, out: string): Promise<void> {
  await run(['node', '--import', 'tsx', join(REPO, 'build/cli/main.ts'), 'build', '--config', specFile, '--out', out, '--cache', E2E_CACHE], {
    cwd: REPO,
    echo: true,
    env: { ...process.env, SOURCE_DATE_EPOCH: '1704067200' },
  });
}

/**
 * A next release of a built lab: its spec (lab.json, the same keys) changed by `edit`, built into
 * `<dir>/<name>` beside dist/. The lab keeps its spec file: what changes is the tree a deploy publishes.
 */
export async function buildNextRelease(built: BuiltDist, name: string, edit: (raw: Record<string, any>) => void): Promise<string> {
  const raw = JSON.parse(await readFile(join(built.dir, 'lab.json'), 'utf8')) as Record<string, any>;
  edit(raw);
  const specFile = join(built.dir, `${name}.json`);
  await writeFile(specFile, JSON.stringify(raw, null, 2));
  const out = join(built.dir, name);
  await buildWithCli(specFile, out);
  return out;
}

/** What `deploy --json` prints (lifecycle/deploy.ts, deploy-servers.ts); `servers` with boot servers in the tree's spec. */
export interface Deployed {
  release: string;
  previous: string | null;
  carried: string[];
  keptLinks: string[];
  activation: { etc: string; services: string; message: string } | null;
  servers?: { name: string; dest: string; release: string | null; error: string | null }[];
}

/**
 * `portacluster deploy <dest> --from <from> --json` (deploy takes no spec: the tree carries its own), run
 * as on node0: in the lab's namespace, where --activate's `nginx -t` can bind the admin address.
 */
export async function deployCli(from: string, dest: string, extra: string[] = [], netns?: string): Promise<Deployed> {
  const argv = ['node', '--import', 'tsx', join(REPO, 'build/cli/main.ts'), 'deploy', dest, '--from', from, '--json', ...extra];
  const r = await run(netns ? ['ip', 'netns', 'exec', netns, ...argv] : argv, { cwd: REPO });
  return JSON.parse(r.stdout) as Deployed;
}

/** An event line of `portacluster watch --json` (build/lifecycle/watch.ts WatchEvent). */
export interface WatcherEvent {
  at: string;
  source: string;
  node: string | null;
  phase: string;
  state: string;
  switched?: { from: string | null; to: string };
  error?: string;
  detail?: string;
  tries?: number;
  parked?: string;
  progress?: { bytes: number; total: number; rateBps: number; at: string };
}

export interface Lab extends BuiltDist {
  ns: Netns;
  reports: Report[];
  watcherEvents: WatcherEvent[];
  /** Resolves when the watcher switched `host`'s link after its done report. */
  waitSwitched(host: string, timeoutMs: number): Promise<WatcherEvent>;
  /** Resolves with the first report of `host` in `phase`; rejects early on a `failed` report when waiting for another phase. */
  waitReport(host: string, phase: string, timeoutMs: number): Promise<Report>;
  node(name: string): PlanNode;
  /** `portacluster serve --json` lines so far: service output (dnsmasq's DHCP/TFTP log among them) and events. */
  serveLog(): string[];
  /** Runs the portacluster CLI as node0 would, on the lab's spec, served tree and watcher state. */
  cli(args: string[]): Promise<string>;
  /**
   * Starts the node's VM. When its link points at an installing profile (anything but the OS), a run is
   * started first, as reimage/rescue/diskless would (its nonce in the tree, the node requested): the
   * watcher counts only a requested run's reports. The VM is registered like `lab up` registers its VMs,
   * so the watcher powers it (retries, parking) through its monitor.
   */
  startNode(name: string, o: { disk: string; freshDisk?: boolean; extraArgs?: string[] }): Promise<Vm>;
  /** A machine the spec may not know (discovery): its own MAC and disks, no run opened. */
  startMachine(o: { name: string; mac: string; firmware: 'bios' | 'uefi'; disk: string; diskSerial?: string; extraArgs?: string[] }): Promise<Vm>;
  /** Resolves with the first watcher event (serve's report events) that matches. */
  waitEvent(match: (e: WatcherEvent & { mac?: string | null }) => boolean, timeoutMs: number): Promise<WatcherEvent>;
  /** SIGHUP to serve, as deploy --activate sends it: resolves when serve reports the reload (rejects on failure). */
  reload(): Promise<void>;
  /**
   * node0 restarting mid-install: `kill-serve` SIGKILLs serve itself (the watcher with it; dnsmasq and
   * nginx are left orphaned, as a crash leaves them), `kill-nginx` SIGKILLs nginx's master (serve's group
   * then stops, as it does when a service ends). Either way serve is started again on the same state
   * file, as systemd's Restart= would; resolves with the seconds node0 was not serving reports.
   */
  restartServe(how: 'kill-serve' | 'kill-nginx'): Promise<number>;
  /** The watcher's state file (what `status --json` reads). */
  stateFile: string;
  /** The node's boot link → profile, through the lifecycle's switchNodes (what `portacluster reimage/normal` use). */
  switchTo(name: string, profile: string): Promise<void>;
  /** An installer variant served as its own profile: pxelinux.cfg/<name> whose ar_source is /<name>/. */
  addInstallerVariant(name: string, plan: Plan, image: ImageRef, fsImage?: FsImageRef): Promise<void>;
  /** ssh from node0's namespace, or from `via` (a rack's, whose nodes node0 does not reach). */
  ssh(keyFile: string, user: string, ip: string, command: string, timeoutMs: number, via?: Netns): Promise<string>;
  diagnose(vms: Vm[]): Promise<string>;
  stop(): Promise<void>;
}

async function tailFile(file: string, lines: number): Promise<string> {
  return (await readFile(file, 'utf8').catch(() => '(none)')).split('\n').slice(-lines).join('\n');
}

/** node0 with boot servers (the racks lab): how serve's watcher reaches them, and what runs before serve (their sshds, deploy). */
export interface LabOptions {
  /** serve --ssh-config: how the watcher reaches the boot servers. */
  sshConfig?: string;
  /** Runs in node0's namespace before serve starts (e.g. sshds for the boot servers, then deploy). */
  beforeServe?: (ns: Netns) => Promise<void>;
}

export async function startLab(built: BuiltDist, o: LabOptions = {}): Promise<Lab> {
  const { dir, dist, plan } = built;
  const ns = await createNetns(`pc-e2e-${process.pid}`, `${plan.admin.ip}/${plan.admin.prefix}`);
  const reports: Report[] = [];
  const waiters = new Set<() => void>();
  const vms: Vm[] = [];
  const watcherEvents: WatcherEvent[] = [];
  let taps = 0;
  const serveLog: string[] = [];
  const tailLines = (lines: string[], n: number) => lines.slice(-n).join('\n');
  let serve: ChildProcess | undefined;
  /** `portacluster serve` in the namespace; resolves when its three services are up (again, after a restart). */
  async function startServe(): Promise<void> {
    serve = ns.spawn(
      ['node', '--import', 'tsx', join(REPO, 'build/cli/main.ts'), 'serve', '--config', join(dir, 'lab.json'), '--root', dist, '--state', join(dir, 'watch-state.json'),
        '--run-dir', join(dir, 'run'), '--log-dir', join(dir, 'log'), '--interface', ns.bridge, '--no-upstream-dns', '--json', ...(o.sshConfig ? ['--ssh-config', o.sshConfig] : [])],
      { stdout: 'pipe' },
    );
    let serveErr = '';
    serve.stderr!.on('data', (d: Buffer) => (serveErr = (serveErr + d.toString()).slice(-4000)));
    await new Promise<void>((resolve, reject) => {
      let up = 0;
      serve!.once('exit', (c) => reject(new Error(`portacluster serve exited ${c}: ${serveErr}\n${tailLines(serveLog, 30)}`)));
      createInterface({ input: serve!.stdout! }).on('line', (line) => {
        serveLog.push(line);
        let e: { event: string; report?: WatcherEvent & { at: string; detail?: string; mac: string | null } };
        try {
          e = JSON.parse(line);
        } catch {
          return;
        }
        if (e.event === 'up' && ++up === 3) resolve();
        if (e.event === 'report' && e.report) {
          const r = e.report;
          watcherEvents.push(r);
          // Reports that did not count, and progress, are the watcher's business, not phases of the node.
          if (r.state === 'ignored' || r.state === 'progress') {
            for (const w of waiters) w();
            return;
          }
          const failed = r.state === 'failed' && !r.switched;
          reports.push({ kind: 'report', method: 'POST', phase: failed ? 'failed' : r.phase, host: r.node ?? '', mac: r.mac ?? '', failedPhase: failed ? r.phase : null, query: {}, body: r.detail ?? '', at: Date.parse(r.at) });
        }
        for (const w of waiters) w();
      });
    });
  }
  try {
    // The lab's flaky image server (a fault injector, not a node0 service): breaks its first downloads.
    const flaky = ns.spawn(['node', '--import', 'tsx', join(REPO, 'test/e2e/harness/lab-server.ts'), plan.admin.ip, String(FLAKY_PORT), dist, '2'], { stdout: 'pipe' });
    const flakyUp = new Promise<void>((resolve, reject) => {
      flaky.once('exit', (c) => reject(new Error(`the flaky server exited ${c}`)));
      createInterface({ input: flaky.stdout! }).on('line', (line) => {
        const e = JSON.parse(line) as { kind: string };
        if (e.kind === 'listening') resolve();
        if (e.kind === 'flaky') void writeFile(join(dir, 'flaky.log'), line + '\n', { flag: 'a' });
      });
    });
    // node0's services as the product runs them: `portacluster serve` (dnsmasq, nginx, the watcher) from the
    // generated configs, on the lab's bridge. Reports reach the watcher through nginx's proxy; the harness
    // reads what happened from serve's event lines.
    // `lab up` records its VMs here; the harness does the same, so the watcher's power finds them.
    process.env.PORTACLUSTER_LAB_REGISTRY = join(dir, 'lab-registry');
    await mkdir(process.env.PORTACLUSTER_LAB_REGISTRY, { recursive: true });
    await o.beforeServe?.(ns);
    await startServe();
    await flakyUp;
  } catch (e) {
    await ns.stop();
    throw e;
  }

  const stateFile = join(dir, 'watch-state.json');
  const registered = new Map<string, LabVm>();
  const seenAccess = new Set<string>();
  async function readAccessReports(): Promise<void> {
    const prefix = `${plan.phoneHome.path}/`;
    for (const line of (await readFile(join(dir, 'log/access.log'), 'utf8').catch(() => '')).split('\n')) {
      const m = /"(?:GET|POST) (\S+) HTTP/.exec(line);
      if (!m || !m[1]!.startsWith(prefix) || seenAccess.has(line)) continue;
      seenAccess.add(line);
      const u = new URL(m[1]!, 'http://x');
      const phase = u.pathname.slice(prefix.length);
      if ((PHASES as readonly string[]).includes(phase) || phase === 'failed' || phase === 'log') continue;
      reports.push({ kind: 'report', method: 'GET', phase, host: u.searchParams.get('host') ?? '', mac: u.searchParams.get('mac') ?? '', failedPhase: null, query: Object.fromEntries(u.searchParams), body: '', at: Date.now() });
    }
  }

  const lab: Lab = {
    ...built,
    ns,
    reports,
    watcherEvents,
    waitSwitched(host, timeoutMs) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const hit = watcherEvents.find((e) => e.node === host && e.switched);
          if (hit) {
            waiters.delete(check);
            clearTimeout(timer);
            resolve(hit);
          }
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`the watcher did not switch ${host} within ${timeoutMs / 1000} s (its events: ${JSON.stringify(watcherEvents.filter((e) => e.node === host))})`));
        }, timeoutMs);
        waiters.add(check);
        check();
      });
    },
    waitReport(host, phase, timeoutMs) {
      // A report the watcher does not know (the bench's timings) shows only in nginx's access log.
      const fromLog = !(PHASES as readonly string[]).includes(phase) && phase !== 'failed' && phase !== 'log';
      const poll = fromLog ? setInterval(() => void readAccessReports().then(() => { for (const w of waiters) w(); }), 1000) : undefined;
      return new Promise<Report>((resolve, reject) => {
        const check = () => {
          const hit = reports.find((r) => r.host === host && r.phase === phase);
          const failed = phase !== 'failed' && reports.find((r) => r.host === host && r.phase === 'failed');
          if (hit || failed) {
            waiters.delete(check);
            clearTimeout(timer);
            clearInterval(poll);
            if (hit) resolve(hit);
            else reject(new Error(`${host} reported failed in phase ${failed && failed.failedPhase}:\n${failed && failed.body}`));
          }
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          clearInterval(poll);
          reject(new Error(`no ${phase} report from ${host} within ${timeoutMs / 1000} s (reports: ${reports.filter((r) => r.host === host).map((r) => r.phase).join(', ') || 'none'})`));
        }, timeoutMs);
        waiters.add(check);
        check();
      });
    },
    serveLog: () => [...serveLog],
    node(name) {
      const n = plan.nodes.find((x) => x.name === name);
      if (!n) throw new Error(`no node ${name} in the lab spec`);
      return n;
    },
    stateFile,
    async startNode(name, o) {
      const n = lab.node(name);
      if (o.freshDisk) await createDisk(o.disk);
      const profile = await readlink(join(dist, pxelinuxPath(n.pxeFile))).catch(() => null);
      if (profile && profile !== plan.profiles.os) {
        const action = profile === plan.profiles.rescue ? 'rescue' : profile === plan.profiles.diskless ? 'diskless' : 'reimage';
        await startRuns({ stateFile, root: dist, nodes: [n], action, profile, requestedMinutes: plan.phoneHome.deadlines.requested });
      }
      const tap = `pctap${taps++}`;
      await ns.addTap(tap);
      const vm = await startVm(ns, { name: `${name}-${taps}`, mac: n.mac, firmware: n.firmware, disk: o.disk, tap, dir, ...(o.extraArgs ? { extraArgs: o.extraArgs } : {}) });
      vms.push(vm);
      registered.set(name, { name, mac: n.mac, firmware: n.firmware, tap, disk: o.disk, serialLog: vm.serialLog, monitor: vm.monitor, pid: vm.child.pid! });
      await writeFile(registryFile(plan.cluster), JSON.stringify({ cluster: plan.cluster, netns: ns.name, bridge: ns.bridge, dir, root: dist, stateFile, vms: [...registered.values()] }, null, 2));
      return vm;
    },
    async startMachine(o) {
      const tap = `pctap${taps++}`;
      await ns.addTap(tap);
      const vm = await startVm(ns, { name: `${o.name}-${taps}`, mac: o.mac, firmware: o.firmware, disk: o.disk, tap, dir, ...(o.diskSerial ? { diskSerial: o.diskSerial } : {}), ...(o.extraArgs ? { extraArgs: o.extraArgs } : {}) });
      vms.push(vm);
      return vm;
    },
    waitEvent(match, timeoutMs) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const e = watcherEvents.find((x) => match(x));
          if (!e) return;
          waiters.delete(check);
          clearTimeout(timer);
          resolve(e);
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`no matching watcher event within ${timeoutMs / 1000} s; last events:\n${watcherEvents.slice(-10).map((x) => JSON.stringify(x)).join('\n')}`));
        }, timeoutMs);
        waiters.add(check);
        check();
      });
    },
    async restartServe(how) {
      const t = Date.now();
      const old = serve!;
      const gone = new Promise((r) => (old.exitCode !== null || old.signalCode !== null ? r(null) : old.once('exit', r)));
      if (how === 'kill-serve') old.kill('SIGKILL');
      else process.kill(Number((await readFile(join(dir, 'run/nginx.pid'), 'utf8')).trim()), 'SIGKILL');
      await gone;
      await startServe();
      return (Date.now() - t) / 1000;
    },
    reload() {
      const before = serveLog.length;
      serve!.kill('SIGHUP');
      return new Promise((resolve, reject) => {
        const check = () => {
          const line = serveLog.slice(before).find((l) => l.includes('"event":"reload"'));
          if (!line) return;
          waiters.delete(check);
          const e = JSON.parse(line) as { ok: boolean; message: string };
          if (e.ok) resolve();
          else reject(new Error(e.message));
        };
        waiters.add(check);
        check();
      });
    },
    async cli(args) {
      const r = await run(['node', '--import', 'tsx', join(REPO, 'build/cli/main.ts'), ...args, '--config', join(dir, 'lab.json'), '--root', dist, '--state', join(dir, 'watch-state.json')], { cwd: REPO });
      return r.stdout;
    },
    async switchTo(name, profile) {
      await switchNodes([lab.node(name)], profile, { root: dist });
    },
    async addInstallerVariant(name, variantPlan, image, fsImage) {
      await mkdir(join(dist, autorunDir(name)), { recursive: true });
      await writeFile(join(dist, autorunPath(name)), await renderInstallerScript(variantPlan, image, fsImage), { mode: 0o755 });
      const swap = (text: string) => text.replaceAll(`${urlFor(plan.admin.httpBase, autorunDir('installer'))}/`, `${urlFor(plan.admin.httpBase, autorunDir(name))}/`);
      await writeFile(join(dist, pxelinuxPath(name)), swap(await readFile(join(dist, pxelinuxPath('installer')), 'utf8')));
      const ipxe = await stat(join(dist, ipxePath(ipxeProfileFile('installer')))).catch(() => null);
      if (ipxe) await writeFile(join(dist, ipxePath(ipxeProfileFile(name))), swap(await readFile(join(dist, ipxePath(ipxeProfileFile('installer'))), 'utf8')));
    },
    async ssh(keyFile, user, ip, command, timeoutMs, via = ns) {
      const deadline = Date.now() + timeoutMs;
      const argv = via.exec([
        'ssh', '-i', keyFile, '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'BatchMode=yes',
        '-o', 'ConnectTimeout=5', '-o', 'LogLevel=ERROR', `${user}@${ip}`, command,
      ]);
      for (;;) {
        const r = await run(argv, { nothrow: true, timeoutMs: 30_000 });
        if (r.exitCode === 0) return r.stdout;
        // 255: ssh itself (connection refused while sshd starts); anything else is the command's answer.
        if (r.exitCode !== 255 || Date.now() > deadline) throw new Error(`ssh ${user}@${ip} ${command}: exit ${r.exitCode}: ${r.stderr}`);
        await new Promise((res) => setTimeout(res, 1000));
      }
    },
    async diagnose(list) {
      const parts: string[] = [];
      for (const vm of list) parts.push(`---- serial ${vm.name} (last lines) ----\n${await vm.serialTail(60)}`);
      parts.push(`---- reports ----\n${reports.map((r) => `${r.host} ${r.phase}${r.failedPhase ? ` (${r.failedPhase})` : ''}`).join('\n')}`);
      for (const f of reports.filter((r) => r.phase === 'failed')) parts.push(`---- failed report of ${f.host} ----\n${f.body}`);
      parts.push(`---- portacluster serve (watcher, dnsmasq, nginx) ----\n${tailLines(serveLog, 50)}`);
      parts.push(`---- nginx access.log ----\n${await tailFile(join(dir, 'log/access.log'), 30)}`);
      return parts.join('\n');
    },
    async stop() {
      for (const vm of vms) await vm.quit().catch(() => {});
      await writeFile(join(dir, 'serve.log'), serveLog.join('\n') + '\n').catch(() => {});
      // ns.stop() sends serve SIGTERM, which stops dnsmasq, nginx and the watcher, then deletes the namespace.
      await ns.stop();
    },
  };
  return lab;
}

/** A copy of the golden tarball with 4 KiB of garbage in its middle, under another name. */
export async function corruptCopy<T extends ImageRef>(dist: string, image: T): Promise<T> {
  const fileName = `corrupt-${image.fileName}`;
  await copyFile(join(dist, IMAGES_DIR, image.fileName), join(dist, IMAGES_DIR, fileName));
  const fh = await open(join(dist, IMAGES_DIR, fileName), 'r+');
  await fh.write(Buffer.alloc(4096, 0x5a), 0, 4096, Math.floor(image.size / 2));
  await fh.close();
  return { ...image, fileName };
}

/** Filesystem signatures on a qcow2 disk's partitions (empty when wiped), read from a raw copy. */
export async function diskSignatures(qcow2: string, scratch: string): Promise<string[]> {
  const raw = join(scratch, 'inspect.raw');
  await run(['qemu-img', 'convert', '-O', 'raw', qcow2, raw]);
  try {
    const table = await run(['sfdisk', '--json', raw], { nothrow: true });
    if (table.exitCode !== 0) return [];
    const parts = (JSON.parse(table.stdout).partitiontable.partitions ?? []) as { start: number }[];
    const found: string[] = [];
    for (const p of parts) {
      const r = await run(['blkid', '-p', '-o', 'value', '-s', 'TYPE', '-O', String(p.start * 512), raw], { nothrow: true });
      if (r.stdout.trim()) found.push(r.stdout.trim());
    }
    return found;
  } finally {
    await rm(raw, { force: true });
  }
}
