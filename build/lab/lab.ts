/**
 * A virtual cluster on this machine, from any spec and its built tree: a network namespace with a bridge
 * named like the spec's cluster interface and holding node0's address, node0's services started by
 * `portacluster serve` inside it, and one QEMU VM per node with the spec's MAC and firmware. The host's
 * own network is never touched. Everything started is recorded (PIDs, sockets) in a registry under
 * /run/portacluster, which `lab down` and the lifecycle commands (`reimage --reboot` powers lab VMs
 * through their monitors) read.
 *
 * Nodes start powered off, like a rack that was just cabled: `portacluster reimage --all --reboot`
 * powers them on into the installer.
 */
import { spawn } from 'node:child_process';
import { mkdir, open, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { SERVED_SPEC, PXE_DIR } from '../layout.ts';
import { StageError, UsageError } from '../lib/errors.ts';
import { pidAlive, terminate } from '../lib/process.ts';

/** How long lab down waits for serve, a BMC stand-in or the router to go after SIGTERM, before SIGKILL. */
const STOP_GRACE_MS = 10_000;
import type { Plan, PlanNode } from '../plan/plan.ts';
import { addTap, createLabNetwork, deleteLabNetwork, netnsExists, nsExec, RA_RESPONDER } from './netns.ts';
import { startLabRouter, stopLabRouter, type LabRouter } from './router.ts';
import { startLabVm, vmQuit, type LabBmc, type LabVm } from './vm.ts';
import { ipmiStandIn } from './ipmi-bmc.ts';
import { pduStandIn, redfishStandIn } from './bmc-stand-ins.ts';
import { vmPower, type VmPower } from '../power/qemu-monitor.ts';

export const LAB_REGISTRY_DIR = '/run/portacluster';

type StandIn = (o: { ns: string; bridge: string; node: PlanNode; dir: string; vm: LabVm; others: readonly LabBmc[] }) => Promise<LabBmc>;

/**
 * The BMC stand-ins the lab starts for a node by its spec power, one line each: the node's power commands
 * then talk to it over the real protocol, and it drives the node's VM through the monitor.
 */
const BMC_STAND_INS: Partial<Record<PlanNode['power']['type'], StandIn>> = {
  ipmi: ipmiStandIn,
  redfish: redfishStandIn,
  pdu: pduStandIn,
};

export interface LabRecord {
  cluster: string;
  netns: string;
  bridge: string;
  dir: string;
  root: string;
  stateFile: string;
  serve: { pid: number; log: string; runDir: string; logDir: string };
  raPid: number;
  /** Proxy-DHCP specs: the stand-in home router that hands out the addresses. */
  router?: LabRouter;
  vms: LabVm[];
  startedAt: string;
}

export const registryFile = (cluster: string): string => join(process.env.PORTACLUSTER_LAB_REGISTRY ?? LAB_REGISTRY_DIR, `lab-${cluster}.json`);
export const netnsName = (cluster: string): string => `pclab-${cluster}`.slice(0, 31);

export async function readLab(cluster: string): Promise<LabRecord | null> {
  const text = await readFile(registryFile(cluster), 'utf8').catch(() => null);
  return text ? (JSON.parse(text) as LabRecord) : null;
}


export interface LabUpOptions {
  plan: Plan;
  /** The built tree to serve (dist/). */
  root: string;
  dir: string;
  stateFile: string;
  /** The first N nodes of the spec; all when absent. */
  nodes?: number;
  memoryMiB: number;
  /** argv that runs this portacluster (node + loader + main script). */
  self: string[];
  log(line: string): void;
}

async function waitServeUp(log: string, pid: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const lines = (await readFile(log, 'utf8').catch(() => '')).split('\n').filter(Boolean);
    const events = lines.flatMap((l) => {
      try {
        return [JSON.parse(l) as { event: string; service?: string }];
      } catch {
        return [];
      }
    });
    if (events.filter((e) => e.event === 'up').length === 3) return;
    if (!pidAlive(pid) || Date.now() > deadline)
      throw new StageError('lab up', `node0's services did not come up (portacluster serve ${pidAlive(pid) ? 'is still starting' : 'exited'}); its output:\n${lines.slice(-15).map((l) => `    ${l}`).join('\n')}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

export async function labUp(o: LabUpOptions): Promise<LabRecord> {
  const { plan } = o;
  if (process.getuid?.() !== 0) throw new UsageError('lab up needs root: it creates a network namespace, a bridge and taps\n  hint: sudo portacluster lab up');
  const pxe = await stat(join(o.root, PXE_DIR)).catch(() => null);
  if (!pxe?.isDirectory()) throw new UsageError(`no built tree at ${o.root}\n  hint: npm run build:image (or portacluster build --out ${o.root}) first`);
  const ns = netnsName(plan.cluster);
  if ((await readLab(plan.cluster)) || (await netnsExists(ns))) throw new UsageError(`a lab for cluster ${plan.cluster} is already up (network namespace ${ns})\n  hint: portacluster lab status, or portacluster lab down first`);
  const nodes = plan.nodes.slice(0, o.nodes ?? plan.nodes.length);
  await mkdir(o.dir, { recursive: true });
  await mkdir(LAB_REGISTRY_DIR, { recursive: true });
  const bridge = plan.admin.interface;
  await createLabNetwork(ns, bridge, `${plan.admin.ip}/${plan.admin.prefix}`);
  const started: { serve?: number; ra?: number; router?: LabRouter; vms: LabVm[] } = { vms: [] };
  try {
    if (plan.dhcp.mode === 'proxy') {
      started.router = await startLabRouter({ plan, labNetns: ns, bridge, dir: o.dir });
      o.log(`router: the lab's stand-in home router (dnsmasq, addresses only) at ${started.router.ip}, pool ${started.router.pool.first}–${started.router.pool.last}; log ${started.router.log}`);
    }
    const ra = spawn('ip', ['netns', 'exec', ns, 'python3', '-c', RA_RESPONDER, bridge], { stdio: 'ignore', detached: true });
    ra.unref();
    started.ra = ra.pid;
    const serveLog = join(o.dir, 'serve.log');
    const runDir = join(o.dir, 'run');
    const logDir = join(o.dir, 'log');
    const out = await open(serveLog, 'w');
    const argv = nsExec(ns, [...o.self, 'serve', '--config', join(o.root, SERVED_SPEC), '--root', o.root, '--state', o.stateFile, '--run-dir', runDir, '--log-dir', logDir, '--no-upstream-dns', '--json']);
    const serve = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', out.fd, out.fd], detached: true });
    serve.unref();
    await out.close();
    started.serve = serve.pid;
    o.log(`node0: portacluster serve in network namespace ${ns} (bridge ${bridge}, ${plan.admin.ip}/${plan.admin.prefix}); output in ${serveLog}`);
    await waitServeUp(serveLog, serve.pid!, 60_000);
    for (const [i, n] of nodes.entries()) {
      const tap = `pctap${i}`;
      await addTap(ns, bridge, tap);
      const fresh = !(await stat(join(o.dir, `${n.name}.qcow2`)).catch(() => null));
      const vm = await startLabVm(ns, { name: n.name, mac: n.mac, firmware: n.firmware, tap, dir: o.dir, memoryMiB: o.memoryMiB, diskBytes: Math.max(plan.disk.minBytes, 4 * 1024 ** 3) }, { freshDisk: fresh });
      started.vms.push(vm);
      o.log(`${n.name}: ${n.firmware} VM (qemu pid ${vm.pid}, ${o.memoryMiB} MiB, powered off), disk ${vm.disk}${fresh ? ' (new)' : ''}, serial console ${vm.serialLog}`);
      const standIn = BMC_STAND_INS[n.power.type];
      if (standIn) {
        vm.bmc = await standIn({ ns, bridge, node: n, dir: o.dir, vm, others: started.vms.flatMap((v) => (v.bmc ? [v.bmc] : [])) });
        o.log(`${n.name}: ${vm.bmc.kind} BMC stand-in at ${vm.bmc.address} (pid ${vm.bmc.pid}), log ${vm.bmc.log}`);
      }
    }
  } catch (e) {
    for (const vm of started.vms) if (vm.bmc) await terminate(vm.bmc.pid, STOP_GRACE_MS);
    for (const vm of started.vms) await vmQuit(vm);
    if (started.serve) await terminate(started.serve, STOP_GRACE_MS);
    if (started.ra) await terminate(started.ra, STOP_GRACE_MS);
    if (started.router) await stopLabRouter(started.router, STOP_GRACE_MS);
    await deleteLabNetwork(ns);
    throw e;
  }
  const record: LabRecord = {
    cluster: plan.cluster,
    netns: ns,
    bridge,
    dir: o.dir,
    root: o.root,
    stateFile: o.stateFile,
    serve: { pid: started.serve!, log: join(o.dir, 'serve.log'), runDir: join(o.dir, 'run'), logDir: join(o.dir, 'log') },
    raPid: started.ra!,
    ...(started.router ? { router: started.router } : {}),
    vms: started.vms,
    startedAt: new Date().toISOString(),
  };
  await writeFile(registryFile(plan.cluster), JSON.stringify(record, null, 2) + '\n');
  return record;
}

/** Stops the VMs, node0's services and the namespace, by the PIDs the registry recorded. Disks stay unless wipe. */
export async function labDown(cluster: string, o: { wipe: boolean; log(line: string): void }): Promise<LabRecord> {
  const lab = await readLab(cluster);
  if (!lab) throw new UsageError(`no lab is up for cluster ${cluster} (no ${registryFile(cluster)})`);
  for (const vm of lab.vms) {
    if (vm.bmc && (await terminate(vm.bmc.pid, STOP_GRACE_MS))) o.log(`${vm.name}: ${vm.bmc.kind} BMC stand-in (pid ${vm.bmc.pid}) stopped`);
    await vmQuit(vm);
    o.log(`${vm.name}: qemu (pid ${vm.pid}) stopped`);
  }
  // serve stops dnsmasq, nginx and the watcher itself on SIGTERM.
  if (await terminate(lab.serve.pid, STOP_GRACE_MS)) o.log(`node0: portacluster serve (pid ${lab.serve.pid}) stopped`);
  await terminate(lab.raPid, STOP_GRACE_MS);
  if (lab.router) {
    await stopLabRouter(lab.router, STOP_GRACE_MS);
    o.log(`router: the lab's stand-in (pid ${lab.router.pid}) stopped, namespace ${lab.router.netns} removed`);
  }
  await deleteLabNetwork(lab.netns);
  o.log(`network namespace ${lab.netns} removed`);
  if (o.wipe) {
    for (const vm of lab.vms) await rm(vm.disk, { force: true });
    o.log(`disks removed from ${lab.dir}`);
  }
  await rm(registryFile(cluster), { force: true });
  return lab;
}

export interface LabStatus {
  up: boolean;
  netns: string;
  serve: { pid: number; running: boolean; log: string } | null;
  vms: (LabVm & { power: VmPower })[];
}

export async function labStatus(cluster: string): Promise<LabStatus> {
  const lab = await readLab(cluster);
  if (!lab) return { up: false, netns: netnsName(cluster), serve: null, vms: [] };
  const vms = await Promise.all(lab.vms.map(async (vm) => ({ ...vm, power: await vmPower(vm) })));
  return { up: await netnsExists(lab.netns), netns: lab.netns, serve: { pid: lab.serve.pid, running: pidAlive(lab.serve.pid), log: lab.serve.log }, vms };
}

export const labDirFor = (cluster: string, base = resolve('.cache', 'portacluster', 'lab')): string => join(base, cluster);
