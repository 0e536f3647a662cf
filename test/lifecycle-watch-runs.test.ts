/**
 * Reports only the node itself can make, progress, deadlines: the real watcher over real HTTP, behind the
 * generated nginx where the address check matters (clients bind 127.0.0.x addresses, so nginx sees each
 * "node" at its own IP), and real power actions (a script that leaves evidence in a file).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { chmod, mkdir, readFile, readlink, stat, writeFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { join, resolve } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { PXELINUX_DIR, runPath } from '../build/layout.ts';
import { run } from '../build/lib/run.ts';
import { readRunRecord, runRecordFile, startRuns } from '../build/lifecycle/runs.ts';
import { readState, updateState } from '../build/lifecycle/state.ts';
import { startWatcher, type WatchEvent, type WatchOptions, type Watcher } from '../build/lifecycle/watch.ts';
import { watchPower } from '../build/cli/node-power.ts';
import type { Plan } from '../build/plan/plan.ts';
import { renderNginxConf } from '../build/render/nginx.ts';
import { adaptNginxConf } from './helpers/nginx.ts';
import { writeServedTree, writeSpec } from './helpers/served-tree.ts';
import { freePort, waitForPort } from './helpers/sshd.ts';
import { workspace } from './helpers/workspace.ts';

let ws: Awaited<ReturnType<typeof workspace>>;
let plan: Plan;
let specFile: string;
let root: string;
let stateFile: string;
let evidence: string;
const cleanups: (() => Promise<unknown> | void)[] = [];

beforeEach(async () => {
  ws = await workspace('pc-runs-');
  await chmod(ws.dir, 0o755);
  evidence = join(ws.dir, 'power.log');
  // The "BMC": a real program that leaves a line per power action.
  const script = join(ws.dir, 'power.sh');
  await writeFile(script, `#!/bin/sh\necho "$1 $2" >> ${evidence}\n`, { mode: 0o755 });
  ({ plan, file: specFile } = await writeSpec(ws.dir, { count: 3, watcherPort: await freePort(), reboot: (name) => [script, 'cycle', name] }));
  root = join(ws.dir, 'public');
  stateFile = join(ws.dir, 'state', 'state.json');
  await writeServedTree(root, plan);
  // No lab of this machine's must power these nodes: an empty lab registry.
  process.env.PORTACLUSTER_LAB_REGISTRY = join(ws.dir, 'no-labs');
});
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  delete process.env.PORTACLUSTER_LAB_REGISTRY;
  await ws.cleanup();
});

const node = (name: string) => plan.nodes.find((n) => n.name === name)!;
const pxe = (name: string) => readlink(join(root, PXELINUX_DIR, node(name).pxeFile));
const q = (name: string, nonce = '') => `host=${name}&mac=${node(name).mac}&nonce=${nonce}`;

async function request(names: string[]): Promise<Map<string, string>> {
  await startRuns({ stateFile, root, nodes: names.map(node), action: 'reimage', profile: 'installer', requestedMinutes: plan.phoneHome.deadlines.requested });
  return new Map(await Promise.all(names.map(async (n) => [n, (await readRunRecord(stateFile, n))!.nonce] as [string, string])));
}

/** An HTTP request from a chosen local address (127.0.0.x: the "node" nginx sees). */
function get(url: string, o: { from?: string; headers?: Record<string, string>; body?: string } = {}): Promise<{ status: number; text: string }> {
  return new Promise((done, fail) => {
    const req = httpRequest(url, { method: o.body ? 'POST' : 'GET', ...(o.from ? { localAddress: o.from } : {}), headers: o.headers ?? {} }, (res) => {
      let text = '';
      res.on('data', (d) => (text += d));
      res.on('end', () => done({ status: res.statusCode!, text }));
    });
    req.on('error', fail);
    req.end(o.body);
  });
}

async function watcher(o: Partial<WatchOptions> = {}): Promise<{ w: Watcher; events: WatchEvent[]; next: (pred: (e: WatchEvent) => boolean) => Promise<WatchEvent> }> {
  const events: WatchEvent[] = [];
  const waiters: { pred: (e: WatchEvent) => boolean; resolve: (e: WatchEvent) => void }[] = [];
  const w = await startWatcher({
    plan,
    root,
    stateFile,
    listen: { host: '127.0.0.1', port: 0 },
    onEvent: (e) => {
      events.push(e);
      for (const x of [...waiters]) if (x.pred(e)) (waiters.splice(waiters.indexOf(x), 1), x.resolve(e));
    },
    ...o,
  });
  cleanups.push(() => w.close());
  const next = (pred: (e: WatchEvent) => boolean) =>
    new Promise<WatchEvent>((res, rej) => {
      const seen = events.find(pred);
      if (seen) return res(seen);
      waiters.push({ pred, resolve: res });
      setTimeout(() => rej(new Error(`no such event; got ${JSON.stringify(events, null, 1)}`)), 15_000);
    });
  return { w, events, next };
}

async function startNginx(): Promise<string> {
  const prefix = join(ws.dir, 'nginx');
  const port = await freePort();
  const conf = await adaptNginxConf(renderNginxConf(plan), { prefix, listen: `127.0.0.1:${port}`, root });
  const nginx: ChildProcess = spawn('nginx', ['-p', prefix, '-c', conf, '-g', 'daemon off;'], { stdio: ['ignore', 'ignore', 'pipe'] });
  cleanups.push(() => new Promise<void>((r) => (nginx.exitCode !== null ? r() : (nginx.once('exit', () => r()), nginx.kill('SIGTERM')))));
  await waitForPort(port);
  return `http://127.0.0.1:${port}`;
}

describe('reports only the node itself can make (behind the generated nginx)', () => {
  it('forged reports are ignored and logged, switch nothing; the node from its own IP with its nonce finishes; a second start is a boot loop', async () => {
    // Fixed IPs on loopback so clients can be "the node" or "another host"; node3 keeps none (proxy DHCP).
    Object.assign(node('node1'), { ip: '127.0.0.21' });
    Object.assign(node('node2'), { ip: '127.0.0.22' });
    const base = await startNginx();
    const { events } = await watcher({ listen: { host: '127.0.0.1', port: plan.phoneHome.watcherPort } });
    const report = (kind: string, query: string, from: string, headers?: Record<string, string>) => get(`${base}${plan.phoneHome.path}/${kind}?${query}`, { from, ...(headers ? { headers } : {}) });
    const first = (await request(['node1', 'node3'])).get('node1')!;

    // The run file: to node1's address only; by MAC alone for node3; no listing.
    const runFile = await get(`${base}/${runPath(node('node1').mac)}`, { from: '127.0.0.21' });
    expect(runFile.status).toBe(200);
    expect(runFile.text).toMatch(new RegExp(`^run=[0-9-]+-[0-9a-f]{4}\\nnonce=${first}\\n$`));
    expect((await get(`${base}/${runPath(node('node1').mac)}`, { from: '127.0.0.22' })).status).toBe(403);
    expect((await get(`${base}/${runPath(node('node3').mac)}`, { from: '127.0.0.22' })).status).toBe(200);
    expect((await get(`${base}/runs/`, { from: '127.0.0.21' })).status).toBe(403);

    // A new run: `first` is now an old run's nonce.
    const current = (await request(['node1'])).get('node1')!;
    const forged = [
      await report('done', q('node1', current), '127.0.0.22'),
      await report('done', q('node1', current), '127.0.0.22', { 'X-Real-IP': '127.0.0.21' }),
      await report('done', q('node1'), '127.0.0.21'),
      await report('done', q('node1', first), '127.0.0.21'),
      await report('done', q('node2', current), '127.0.0.22'),
      await report('start', q('node2'), '127.0.0.22'),
    ];
    expect(forged.map((r) => r.status)).toEqual([403, 403, 403, 403, 403, 409]);
    expect(events.map((e) => [e.node, e.state, e.detail])).toEqual([
      ['node1', 'ignored', "ignored done: sent from 127.0.0.22, not from node1's address 127.0.0.21"],
      ['node1', 'ignored', "ignored done: sent from 127.0.0.22, not from node1's address 127.0.0.21"],
      ['node1', 'ignored', expect.stringMatching(/^ignored done: no nonce \(node1's run is \S+\)$/)],
      ['node1', 'ignored', expect.stringMatching(/^ignored done: the nonce of an earlier run \(\S+; the current one is \S+\): a stale installer$/)],
      ['node2', 'ignored', 'ignored done: no install was requested for node2 (reimage, rescue or diskless starts one)'],
      ['node2', 'ignored', 'ignored start: no install was requested for node2 (reimage, rescue or diskless starts one)'],
    ]);
    expect(forged[5]!.text).toMatch(/^refused: ignored start: no install was requested/);
    expect([await pxe('node1'), await pxe('node2')]).toEqual(['installer', 'installer']);
    const before = await readState(stateFile);
    expect(before.nodes.node1).toMatchObject({ state: 'requested', tries: 1 });
    expect(before.nodes.node2).toBeUndefined();

    // The node itself: its address, its current nonce.
    for (const kind of ['start', 'disk', 'partition', 'download', 'extract', 'configure', 'done']) expect((await report(kind, q('node1', current), '127.0.0.21')).status, kind).toBe(200);
    expect(await pxe('node1')).toBe('arch-linux');
    const after = (await readState(stateFile)).nodes.node1!;
    expect(after).toMatchObject({ state: 'done', phase: 'done', tries: 1, run: (await readRunRecord(stateFile, 'node1'))!.run });
    expect(after.runs!.at(-1)).toMatchObject({ result: 'done', phases: { requested: expect.any(Number), start: expect.any(Number), configure: expect.any(Number) } });
    expect((await readRunRecord(stateFile, 'node1'))!.closed).toMatchObject({ result: 'done' });

    // The node boots the installer again with the same run: a boot loop, refused at start, reported.
    const loop = await report('start', q('node1', current), '127.0.0.21');
    expect(loop.status).toBe(409);
    expect(loop.text).toMatch(/^refused: boot loop: node1 started the installer again \(its link points at arch-linux\) after run \S+ ended done at \S+; refused before it touched the disk/);
    expect((await readState(stateFile)).nodes.node1).toMatchObject({ state: 'failed', phase: 'start', detail: expect.stringMatching(/^boot loop: /) });
    expect(await pxe('node1')).toBe('arch-linux');

    // The nonce lives in a 0600 record and the served tree, never in the state or `status --json`.
    expect((await stat(runRecordFile(stateFile, 'node1'))).mode & 0o777).toBe(0o600);
    const status = await run(['node', '--import', 'tsx', resolve('build/cli/main.ts'), 'status', '--config', specFile, '--root', root, '--state', stateFile, '--json'], { nothrow: true });
    expect(status.exitCode, status.stderr).toBe(0);
    expect(status.stdout).toContain(after.run!);
    for (const n of [first, current]) {
      expect(status.stdout).not.toContain(n);
      expect(await readFile(stateFile, 'utf8')).not.toContain(n);
    }
  });
});

describe('a retried report (node0 restarted before it could answer)', () => {
  it('is answered as the first was and counted once, across a watcher restart; a new boot\'s start is still a boot loop', async () => {
    const base = await startNginx();
    const listen = { host: '127.0.0.1', port: plan.phoneHome.watcherPort };
    const first = await watcher({ listen });
    const nonce = (await request(['node1'])).get('node1')!;
    const boot = 'a1'.repeat(16);
    const report = (kind: string, seq: string) => get(`${base}${plan.phoneHome.path}/${kind}?${q('node1', nonce)}&seq=${seq}`, { from: '127.0.0.1' });
    const phases = ['start', 'disk', 'partition', 'download', 'extract', 'configure'];
    for (const [i, kind] of phases.entries()) expect((await report(kind, `${boot}.${i + 1}`)).status, kind).toBe(200);
    const counted = () => readState(stateFile).then((d) => d.nodes.node1!.history.map((h) => h.phase));
    const before = await counted();

    // node0 restarts after counting `configure` and before answering: the installer sends it again.
    await first.w.close();
    const { events } = await watcher({ listen });
    expect(await report('configure', `${boot}.6`)).toEqual({ status: 200, text: 'ok\n' });
    expect(events.at(-1)).toMatchObject({ node: 'node1', phase: 'configure', state: 'ignored', detail: expect.stringMatching(/^ignored configure: a retry of report 6 of run \S+, already counted$/) });
    expect(await counted()).toEqual(before);

    // `done` counted, then retried: the same answer (the installer kexecs on it), one switch, one run ended.
    expect(await report('done', `${boot}.7`)).toEqual({ status: 200, text: 'ok: switched to arch-linux\n' });
    expect(await report('done', `${boot}.7`)).toEqual({ status: 200, text: 'ok: switched to arch-linux\n' });
    expect(events.filter((e) => e.switched).length).toBe(1);
    const after = (await readState(stateFile)).nodes.node1!;
    expect(after.history.map((h) => h.phase).filter((p) => p === 'done')).toHaveLength(1);
    expect(after).toMatchObject({ state: 'done', phase: 'done' });

    // The same number from another boot is no retry: the installer booted again with the ended run (a boot loop).
    const loop = await report('start', `${'b2'.repeat(16)}.1`);
    expect(loop.status).toBe(409);
    expect(loop.text).toMatch(/^refused: boot loop: /);
    // A number that is not BOOT.N is refused as a malformed report.
    expect((await report('configure', '6')).status).toBe(400);
  });
});

describe('progress', () => {
  it('progress reports update the state, at most once per flush interval, and a phase report carries the latest', async () => {
    const nonce = (await request(['node3'])).get('node3')!;
    const { w, events } = await watcher({ progressFlushMs: 60_000 });
    const base = `http://127.0.0.1:${w.address!.port}${plan.phoneHome.path}`;
    for (const kind of ['start', 'download', 'extract']) expect((await get(`${base}/${kind}?${q('node3', nonce)}`)).status).toBe(200);
    const progress = (bytes: number) => get(`${base}/progress?${q('node3', nonce)}&bytes=${bytes}&total=1000&rate=${bytes * 2}`);
    for (const b of [100, 200, 300]) expect((await progress(b)).status).toBe(200);
    expect((await readState(stateFile)).nodes.node3!.progress).toMatchObject({ bytes: 100, total: 1000, rateBps: 200 });
    expect(events.filter((e) => e.state === 'progress').map((e) => e.progress!.bytes)).toEqual([100, 200, 300]);
    // The last one (the whole image) is written at once, and a phase report carries it on.
    expect((await progress(1000)).status).toBe(200);
    expect((await readState(stateFile)).nodes.node3!.progress).toMatchObject({ bytes: 1000, total: 1000 });
    expect((await get(`${base}/configure?${q('node3', nonce)}`)).status).toBe(200);
    const s = (await readState(stateFile)).nodes.node3!;
    expect(s).toMatchObject({ phase: 'configure', progress: { bytes: 1000 } });
    expect(Date.parse(s.deadline!) - Date.parse(s.phaseStarted!)).toBe(plan.phoneHome.deadlines.configure * 60_000);
    // A progress report without counts, or without the run's nonce, counts for nothing.
    expect((await get(`${base}/progress?${q('node3', nonce)}&bytes=x&total=1&rate=1`)).status).toBe(400);
    expect((await get(`${base}/progress?${q('node3')}&bytes=1&total=1&rate=1`)).status).toBe(403);

    // What one state write costs (temp file + fsync + rename + directory fsync, under the lock).
    const t0 = performance.now();
    for (let i = 0; i < 20; i++) await updateState(stateFile, (d) => void (d.nodes.node3!.progress!.bytes = i));
    const ms = (performance.now() - t0) / 20;
    console.log(`state write (fsync'd): ${ms.toFixed(1)} ms each; 500 nodes reporting every 5 s would need ${((500 / 5) * ms / 10).toFixed(0)} % of the watcher's time without the flush interval`);
  });
});

describe('deadlines, retries and parking', () => {
  it('in the streaming phases progress that moves pushes the deadline on; a stalled stream misses it', async () => {
    plan.phoneHome.deadlines.extract = 0.01; // 600 ms
    const nonce = (await request(['node3'])).get('node3')!;
    const { w, events, next } = await watcher({ progressFlushMs: 0 });
    const base = `http://127.0.0.1:${w.address!.port}${plan.phoneHome.path}`;
    for (const kind of ['start', 'download', 'extract']) expect((await get(`${base}/${kind}?${q('node3', nonce)}`)).status).toBe(200);
    const t0 = Date.now();
    for (let bytes = 100; Date.now() - t0 < 2000; bytes += 100) {
      expect((await get(`${base}/progress?${q('node3', nonce)}&bytes=${bytes}&total=100000&rate=500`)).status).toBe(200);
      await new Promise((r) => setTimeout(r, 200));
    }
    // Moving for 2 s, more than three deadlines: not overdue. The same count again is a stall.
    expect(events.filter((e) => e.source === 'timer')).toEqual([]);
    const stalledAt = Date.now();
    for (let i = 0; i < 4; i++) await get(`${base}/progress?${q('node3', nonce)}&bytes=100&total=100000&rate=0`);
    const e = await next((x) => x.source === 'timer');
    expect(e).toMatchObject({ node: 'node3', state: 'failed', phase: 'extract', detail: expect.stringMatching(/^timeout in extract: missed the extract deadline \(0\.01 min\); no power control here/) });
    console.log(`stall seen ${Date.now() - stalledAt} ms after the stream stopped moving (deadline 600 ms)`);
  });

  it('a node that stops reporting is power-cycled `retries` times (a real command), then parked in rescue and marked failed with its phase', async () => {
    plan.phoneHome.park = 'rescue';
    const nonce = (await request(['node1'])).get('node1')!;
    const { w, next } = await watcher({ timeoutMs: 700, power: watchPower(plan) });
    const base = `http://127.0.0.1:${w.address!.port}${plan.phoneHome.path}`;
    const boot = async () => {
      for (const kind of ['start', 'download']) expect((await get(`${base}/${kind}?${q('node1', nonce)}`)).status).toBe(200);
    };
    await boot();
    const retry1 = await next((e) => e.source === 'timer' && e.tries === 2);
    expect(retry1).toMatchObject({ state: 'requested', prev: 'installing', detail: expect.stringMatching(/^missed the download deadline \(0\.01 min\): power-cycled into the installer again, try 2 of 3$/) });
    expect(await readFile(evidence, 'utf8')).toBe('cycle node1\n');
    await boot();
    await next((e) => e.source === 'timer' && e.tries === 3);
    await boot();
    const parked = await next((e) => e.source === 'timer' && e.state === 'failed');
    expect(parked).toMatchObject({ phase: 'download', detail: 'timeout in download after 3 tries', parked: 'linked to rescue and power-cycled into it', tries: 3 });
    // Two retries and the cycle into rescue, each a run of the spec's reboot command.
    expect(await readFile(evidence, 'utf8')).toBe('cycle node1\ncycle node1\ncycle node1\n');
    expect(await pxe('node1')).toBe('rescue');
    const s = (await readState(stateFile)).nodes.node1!;
    expect(s).toMatchObject({ state: 'failed', phase: 'download', tries: 3, parked: 'linked to rescue and power-cycled into it' });
    expect(s.runs!.at(-1)).toMatchObject({ result: 'failed', phases: { download: expect.any(Number) } });
    expect(s.deadline).toBeUndefined();
    // The run is over: its installer can no longer report into it.
    expect((await get(`${base}/done?${q('node1', nonce)}`)).status).toBe(403);
    expect(await w.finished).toBe(false);
  });

  it('retries 0 and park off: the first miss powers the node off through the injected power (a real command)', async () => {
    plan.phoneHome.retries = 0;
    const script = join(ws.dir, 'power.sh');
    await request(['node2']);
    const { next } = await watcher({ timeoutMs: 400, power: async (n, action) => void (await run([script, action, n.name])) });
    const e = await next((x) => x.source === 'timer');
    expect(e).toMatchObject({ node: 'node2', state: 'failed', phase: 'requested', detail: 'timeout in requested after 1 try', parked: 'powered off' });
    expect(await readFile(evidence, 'utf8')).toBe('off node2\n');
  });
});
