/**
 * Racing commands on one node (issue 16, point 4): `reimage` and `normal` from two loops of real CLI
 * processes while the node's "installer" (this test, over HTTP through the generated nginx into the real
 * watcher) fetches its run file and reports start, progress, phases and done with that run's nonce.
 * Meanwhile readers poll: every link read is a link to a real profile file, every run file and state file
 * parses, every `status --json` shows a profile that fits the node's state; and a reader holding the tree's switch lock (what every switcher
 * holds) always sees one consistent node: both links name the same profile, the state's run is the open run
 * the links were made for, and a done node boots its OS. A report of a superseded run must not switch a link.
 * 25 commands per loop by default (each is a node process: ~1-5 s on a busy 2-core machine);
 * PORTACLUSTER_RACE_ITERATIONS=50 for the longer run.
 */
import { spawn } from 'node:child_process';
import { chmod, lstat, readFile, readlink, stat } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IPXE_DIR, PXELINUX_DIR, ipxeNodeFile, ipxeProfileFile, runPath } from '../build/layout.ts';
import { readRunRecord } from '../build/lifecycle/runs.ts';
import { readState, withSwitchLock } from '../build/lifecycle/state.ts';
import { startWatcher, type WatchEvent } from '../build/lifecycle/watch.ts';
import type { Plan, PlanNode } from '../build/plan/plan.ts';
import { renderNginxConf } from '../build/render/nginx.ts';
import { recordCampaignRow } from './campaign-rows.ts';
import { adaptNginxConf, startNginx, type RunningNginx } from './helpers/nginx.ts';
import { writeServedTree, writeSpec } from './helpers/served-tree.ts';
import { freePort } from './helpers/sshd.ts';
import { workspace } from './helpers/workspace.ts';

const REPO = join(import.meta.dirname, '..');
const ITERATIONS = Number(process.env.PORTACLUSTER_RACE_ITERATIONS ?? 25);
const NODE_IP = '127.0.0.21';

let ws: Awaited<ReturnType<typeof workspace>>;
let plan: Plan;
let specFile: string;
let root: string;
let stateFile: string;
let node: PlanNode;
let nginx: RunningNginx;
let base: string;
const stops: (() => Promise<unknown>)[] = [];

beforeAll(async () => {
  ws = await workspace('pc-race-');
  await chmod(ws.dir, 0o755);
  ({ plan, file: specFile } = await writeSpec(ws.dir, { count: 1, watcherPort: await freePort() }));
  root = join(ws.dir, 'public');
  stateFile = join(ws.dir, 'state', 'state.json');
  await writeServedTree(root, plan);
  node = plan.nodes[0]!;
  // The node's fixed address, for nginx (the run file) and the watcher (reports): a loopback address here.
  node.ip = NODE_IP;
  const port = await freePort();
  const prefix = join(ws.dir, 'nginx');
  const conf = await adaptNginxConf(renderNginxConf(plan), { prefix, listen: `127.0.0.1:${port}`, root });
  nginx = await startNginx({ prefix, conf, pidFile: join(prefix, 'nginx.pid') });
  base = `http://127.0.0.1:${port}`;
  process.env.PORTACLUSTER_LAB_REGISTRY = join(ws.dir, 'no-labs');
}, 60_000);

afterAll(async () => {
  for (const s of stops.reverse()) await s();
  await nginx?.stop();
  delete process.env.PORTACLUSTER_LAB_REGISTRY;
  await ws?.cleanup();
});

function cli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn('node', ['--import', 'tsx', join(REPO, 'build/cli/main.ts'), ...args, '--config', specFile, '--root', root, '--state', stateFile], { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    p.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

function get(path: string): Promise<{ status: number; text: string }> {
  return new Promise((done, fail) => {
    const req = httpRequest(`${base}${path}`, { localAddress: NODE_IP }, (res) => {
      let text = '';
      res.on('data', (d) => (text += d));
      res.on('end', () => done({ status: res.statusCode!, text }));
    });
    req.on('error', fail);
    req.end();
  });
}

/** One read of a per-node link: a symlink whose target is a profile file that exists. */
async function readLink(dir: string, name: string): Promise<string> {
  const path = join(root, dir, name);
  if (!(await lstat(path)).isSymbolicLink()) throw new Error(`${dir}/${name} is not a link`);
  const target = await readlink(path);
  await stat(path).catch(() => {
    throw new Error(`${dir}/${name} -> ${target} dangles`);
  });
  return target;
}

/** What a consistent node looks like; returns the problems (none: consistent). */
async function consistency(): Promise<string[]> {
  const problems: string[] = [];
  const pxe = await readLink(PXELINUX_DIR, node.pxeFile);
  const ipxe = await readLink(IPXE_DIR, ipxeNodeFile(node.mac));
  if (ipxe !== ipxeProfileFile(pxe)) problems.push(`pxelinux -> ${pxe} but iPXE -> ${ipxe}`);
  const st = (await readState(stateFile)).nodes[node.name];
  const rec = await readRunRecord(stateFile, node.name);
  if (!st) return problems;
  if (st.state === 'requested' || st.state === 'installing') {
    if (pxe !== plan.profiles.installer) problems.push(`state ${st.state} (run ${st.run}) but the link boots ${pxe}`);
    if (!rec || st.run !== rec.run) problems.push(`state's run ${st.run} is not the open run ${rec?.run}`);
    else if (rec.closed) problems.push(`state ${st.state} in run ${st.run}, which is closed (${rec.closed.result})`);
  } else if (st.state === 'done' && pxe !== plan.profiles.os) problems.push(`state done (${st.phase}) but the link boots ${pxe}`);
  else if (st.state !== 'done') problems.push(`state ${st.state}: ${st.detail}`);
  return problems;
}

describe('reimage and normal racing on one node while it reports', () => {
  it(`${ITERATIONS} reimage and ${ITERATIONS} normal from two loops: every read consistent, no superseded report switches a link`, async () => {
    const events: WatchEvent[] = [];
    const w = await startWatcher({ plan, root, stateFile, listen: { host: '127.0.0.1', port: plan.phoneHome.watcherPort }, onEvent: (e) => events.push(e) });
    stops.push(() => w.close());
    const t0 = Date.now();
    let running = true;
    const failures: string[] = [];

    const loop = async (action: 'reimage' | 'normal') => {
      for (let i = 0; i < ITERATIONS; i++) {
        const r = await cli([action, node.name, '--json']);
        if (r.code !== 0) failures.push(`${action} #${i} exit ${r.code}: ${r.stderr.trim()}`);
      }
    };

    // The installer: fetch the run file, report the phases and done with its nonce, again and again.
    const reports = { sent: 0, counted: 0, doneSent: 0 };
    const nonces: string[] = [];
    const reporter = async () => {
      let finished = '';
      while (running) {
        const file = await get(`/${runPath(node.mac)}`);
        const nonce = /^nonce=([0-9a-f]{32})$/m.exec(file.text)?.[1];
        // A run it already reported done for: a real node boots its OS now, not the installer again.
        if (file.status !== 200 || !nonce || nonce === finished) {
          await new Promise((r) => setTimeout(r, 20));
          continue;
        }
        if (!nonces.includes(nonce)) nonces.push(nonce);
        const q = `host=${node.name}&mac=${node.mac}&nonce=${nonce}`;
        for (const kind of ['start', 'disk', 'partition', 'progress', 'download', 'configure', 'done']) {
          const extra = kind === 'progress' ? '&bytes=500&total=1000&rate=100' : '';
          const r = await get(`${plan.phoneHome.path}/${kind}?${q}${extra}`);
          reports.sent++;
          if (kind === 'done') reports.doneSent++;
          if (r.status === 200) reports.counted++;
          else if (r.status >= 500) failures.push(`${kind}: HTTP ${r.status} ${r.text}`);
          // node0 refused the start (its run ended meanwhile): the installer stops there.
          if (kind === 'start' && r.status === 409) break;
        }
        finished = nonce;
      }
    };

    // Readers without the lock: what a TFTP/HTTP client or a script sees at any instant.
    const reads = { links: 0, status: 0, locked: 0 };
    const linkReader = async () => {
      while (running) {
        try {
          for (const [dir, name] of [
            [PXELINUX_DIR, node.pxeFile],
            [IPXE_DIR, ipxeNodeFile(node.mac)],
          ] as const) {
            const target = await readLink(dir, name);
            if (![plan.profiles.installer, plan.profiles.os].some((p) => target === p || target === ipxeProfileFile(p))) failures.push(`${dir}/${name} -> ${target}`);
          }
          const run = await readFile(join(root, runPath(node.mac)), 'utf8').catch(() => null);
          if (run !== null && !/^run=\S+\nnonce=[0-9a-f]{32}\n$/.test(run)) failures.push(`half a run file: ${JSON.stringify(run)}`);
          const state = await readFile(stateFile, 'utf8').catch(() => null);
          if (state !== null) JSON.parse(state);
          reads.links++;
        } catch (e) {
          failures.push(`unlocked read: ${(e as Error).message}`);
        }
        await new Promise((r) => setTimeout(r, 2));
      }
    };
    const statusReader = async () => {
      while (running) {
        const r = await cli(['status', '--json']);
        try {
          const row = JSON.parse(r.stdout).nodes.find((n: { name: string }) => n.name === node.name);
          if (!row) failures.push(`status --json has no ${node.name}`);
          // status reads links and state under the switch lock: one moment, so they agree.
          else if ((row.state === 'requested' || row.state === 'installing') && row.profile !== plan.profiles.installer) failures.push(`status --json: ${row.state} but profile ${row.profile}`);
          else if (row.state === 'done' && row.profile !== plan.profiles.os) failures.push(`status --json: done (${row.phase}) but profile ${row.profile}`);
          reads.status++;
        } catch {
          failures.push(`status --json: not JSON (exit ${r.code}): ${r.stdout.slice(0, 200)} ${r.stderr.slice(0, 200)}`);
        }
      }
    };
    // The reader that holds the switch lock: a consistent node at every read.
    const lockedReader = async () => {
      while (running) {
        const problems = await withSwitchLock(stateFile, consistency).catch((e: Error) => [`locked read: ${e.message}`]);
        failures.push(...problems);
        reads.locked++;
        await new Promise((r) => setTimeout(r, 5));
      }
    };

    const readers = [reporter(), linkReader(), statusReader(), lockedReader()];
    await Promise.all([loop('reimage'), loop('normal')]);
    const lastCommand = Date.now();
    running = false;
    await Promise.all(readers);
    // A stale installer for certain, whatever the timing above: an earlier run's done (one the record still
    // names; older nonces are "of no run", ignored too), sent after the loops.
    if (nonces.length > 1) {
      const stale = await get(`${plan.phoneHome.path}/done?host=${node.name}&mac=${node.mac}&nonce=${nonces[nonces.length - 2]}`);
      reports.sent++;
      if (stale.status === 200) reports.counted++;
      if (stale.status !== 403) failures.push(`an earlier run's done after the loops: HTTP ${stale.status} ${stale.text} (a stale installer must get 403)`);
    }
    // After the last command and the last report: at rest, consistent too.
    const final = await consistency();
    const convergeMs = Date.now() - lastCommand;

    // A report of a superseded run never switched a link: each switch the watcher made was for the run
    // it had just counted as current (the consistency reads above would see the link it left behind).
    const switched = events.filter((e) => e.switched);
    const ignoredStale = events.filter((e) => e.state === 'ignored' && /earlier run|already ended/.test(e.detail ?? ''));
    console.log(
      `race: ${ITERATIONS}+${ITERATIONS} commands in ${((lastCommand - t0) / 1000).toFixed(1)} s; reports sent ${reports.sent} (done ${reports.doneSent}), counted ${reports.counted}, stale ignored ${ignoredStale.length}, links switched by done ${switched.length}; reads: ${reads.links} unlocked, ${reads.status} status --json, ${reads.locked} under the lock; problems ${failures.length}`,
    );
    await recordCampaignRow({
      fault: 'reimage and normal racing on one node while it reports',
      tier: 'fast',
      injected: 2 * ITERATIONS,
      survived: failures.length === 0 && final.length === 0 ? 2 * ITERATIONS : 0,
      dataLost: failures.length + final.length,
      convergeMs,
      note: `${reports.sent} reports, ${ignoredStale.length} stale ones ignored, ${switched.length} done switches; ${reads.links + reads.status + reads.locked} reads`,
    });
    expect([...new Set(failures)].slice(0, 20)).toEqual([]);
    expect(final).toEqual([]);
    // The case tested something: reports of both current and superseded runs arrived, and done switched links.
    expect(switched.length).toBeGreaterThan(0);
    expect(ignoredStale.length).toBeGreaterThan(0);
  }, 900_000);
});
