/**
 * The watcher with real inputs: HTTP reports from a client, a real nginx writing its access log (rotated
 * mid-test), a watcher process killed with -9 between two reports, racing writers, a timeout.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { appendFile, chmod, mkdir, readFile, readlink, rename, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Plan } from '../build/plan/plan.ts';
import { renderNginxConf } from '../build/render/nginx.ts';
import { readState, updateState, withLock } from '../build/lifecycle/state.ts';
import { readRunRecord, startRuns } from '../build/lifecycle/runs.ts';
import { parseAccessLine, tailFile } from '../build/lifecycle/tail.ts';
import { switchNodes } from '../build/lifecycle/links.ts';
import { startWatcher, type WatchEvent, type Watcher } from '../build/lifecycle/watch.ts';
import { adaptNginxConf } from './helpers/nginx.ts';
import { writeServedTree, writeSpec } from './helpers/served-tree.ts';
import { freePort, waitForPort } from './helpers/sshd.ts';
import { workspace } from './helpers/workspace.ts';
import { IPXE_DIR, ipxeNodeFile, PXELINUX_DIR } from '../build/layout.ts';

let ws: Awaited<ReturnType<typeof workspace>>;
let plan: Plan;
let specFile: string;
let root: string;
let stateFile: string;
const cleanups: (() => Promise<unknown> | void)[] = [];

beforeEach(async () => {
  ws = await workspace('pc-watch-');
  nonces.clear();
  ({ plan, file: specFile } = await writeSpec(ws.dir, { count: 3, watcherPort: await freePort() }));
  root = join(ws.dir, 'public');
  stateFile = join(ws.dir, 'state', 'state.json');
  await writeServedTree(root, plan);
});
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  await ws.cleanup();
});

const pxe = (node: string) => readlink(join(root, PXELINUX_DIR, plan.nodes.find((n) => n.name === node)!.pxeFile));
const nonces = new Map<string, string>();
const q = (name: string) => `host=${name}&mac=${plan.nodes.find((n) => n.name === name)!.mac}&nonce=${nonces.get(name) ?? ''}`;
/** What reimage/rescue/diskless do to the state: open a run per node (its nonce is what the node would fetch). */
async function request(names: string[], action: 'reimage' | 'rescue' | 'diskless' = 'reimage', profile = 'installer'): Promise<void> {
  const nodes = names.map((n) => plan.nodes.find((x) => x.name === n)!);
  await startRuns({ stateFile, root, nodes, action, profile, requestedMinutes: plan.phoneHome.deadlines.requested });
  for (const n of nodes) nonces.set(n.name, (await readRunRecord(stateFile, n.name))!.nonce);
}

async function watcher(o: Partial<Parameters<typeof startWatcher>[0]> = {}): Promise<{ w: Watcher; events: WatchEvent[]; next: (pred: (e: WatchEvent) => boolean) => Promise<WatchEvent> }> {
  const events: WatchEvent[] = [];
  const waiters: { pred: (e: WatchEvent) => boolean; resolve: (e: WatchEvent) => void }[] = [];
  const w = await startWatcher({
    plan,
    root,
    stateFile,
    listen: { host: '127.0.0.1', port: 0 },
    timeoutMs: 60_000,
    onEvent: (e) => {
      events.push(e);
      for (const x of [...waiters]) if (x.pred(e)) (waiters.splice(waiters.indexOf(x), 1), x.resolve(e));
    },
    ...o,
  });
  cleanups.push(() => w.close());
  const next = (pred: (e: WatchEvent) => boolean) =>
    new Promise<WatchEvent>((resolve, reject) => {
      const seen = events.find(pred);
      if (seen) return resolve(seen);
      waiters.push({ pred, resolve });
      setTimeout(() => reject(new Error(`no such event; got ${JSON.stringify(events)}`)), 15_000);
    });
  return { w, events, next };
}

describe('watch over HTTP', () => {
  it('follows the phases and switches the node to its OS before answering done', async () => {
    await request(['node1']);
    const { w, events } = await watcher();
    expect([...w.watched]).toEqual(['node1']);
    const base = `http://127.0.0.1:${w.address!.port}${plan.phoneHome.path}`;
    for (const phase of ['start', 'disk', 'partition', 'download', 'extract', 'configure']) {
      const r = await fetch(`${base}/${phase}?${q('node1')}`);
      expect(r.status).toBe(200);
    }
    expect(await pxe('node1')).toBe('installer');
    const log = 'step 1\nstep 2\n';
    expect((await fetch(`${base}/log?${q('node1')}`, { method: 'POST', body: log })).status).toBe(200);
    const t0 = performance.now();
    const done = await fetch(`${base}/done?host=node1&mac=C0-3F-D5-60-00-01&nonce=${nonces.get('node1')}`);
    const ms = performance.now() - t0;
    // The answer comes after the switch: the installer may reboot the moment it sees 200.
    expect(done.status).toBe(200);
    // The words the installer waits for before it kexecs into the OS (phoneHome.afterInstall kexec).
    expect(await done.text()).toBe('ok: switched to arch-linux\n');
    expect(await pxe('node1')).toBe('arch-linux');
    expect(await readlink(join(root, IPXE_DIR, ipxeNodeFile(plan.nodes[0]!.mac)))).toBe('arch-linux.ipxe');
    console.log(`done report → link switched → HTTP 200: ${ms.toFixed(1)} ms`);
    expect(events.map((e) => `${e.phase}:${e.state}`)).toEqual(['start:installing', 'disk:installing', 'partition:installing', 'download:installing', 'extract:installing', 'configure:installing', 'log:log', 'done:done']);
    expect(events.at(-1)!.switched).toMatchObject({ from: 'installer', to: 'arch-linux' });
    const s = (await readState(stateFile)).nodes.node1!;
    expect(s).toMatchObject({ state: 'done', phase: 'done' });
    expect(s.history.map((h) => h.phase)).toEqual(['requested', 'start', 'disk', 'partition', 'download', 'extract', 'configure', 'done']);
    expect(await readFile(s.log!, 'utf8')).toBe(log);
    expect(await Promise.race([w.finished, new Promise((r) => setTimeout(() => r('pending'), 500))])).toBe(true);
  });

  it('diskless-ready is a running state like rescue-ready: done, and the link stays on diskless', async () => {
    await mkdir(join(ws.dir, 'diskless'));
    const d = await writeSpec(join(ws.dir, 'diskless'), { count: 2, diskless: true, watcherPort: plan.phoneHome.watcherPort });
    plan = d.plan;
    root = join(ws.dir, 'public-diskless');
    await writeServedTree(root, plan);
    await request(['node1'], 'diskless', 'diskless');
    await switchNodes([plan.nodes[0]!], 'diskless', { root });
    const { w, events } = await watcher();
    const base = `http://127.0.0.1:${w.address!.port}${plan.phoneHome.path}`;
    for (const phase of ['start', 'download', 'configure', 'diskless-ready']) expect((await fetch(`${base}/${phase}?${q('node1')}`)).status).toBe(200);
    expect(events.map((e) => `${e.phase}:${e.state}`)).toEqual(['start:installing', 'download:installing', 'configure:installing', 'diskless-ready:done']);
    expect(events.at(-1)!.switched).toBeUndefined();
    expect(await pxe('node1')).toBe('diskless');
    expect((await readState(stateFile)).nodes.node1).toMatchObject({ state: 'done', phase: 'diskless-ready' });
    expect(await Promise.race([w.finished, new Promise((r) => setTimeout(() => r('pending'), 500))])).toBe(true);
  });

  it('failed keeps the node on the installer and stores the last lines; unknown nodes get 404', async () => {
    await request(['node2']);
    const { w, events } = await watcher();
    const base = `http://127.0.0.1:${w.address!.port}${plan.phoneHome.path}`;
    await fetch(`${base}/start?${q('node2')}`);
    const body = Array.from({ length: 30 }, (_, i) => `line ${i}`).join('\n');
    expect((await fetch(`${base}/failed?${q('node2')}&phase=partition`, { method: 'POST', body })).status).toBe(200);
    expect(await pxe('node2')).toBe('installer');
    const s = (await readState(stateFile)).nodes.node2!;
    expect(s).toMatchObject({ state: 'failed', phase: 'partition' });
    expect(s.detail!.split('\n')).toEqual(Array.from({ length: 10 }, (_, i) => `line ${i + 20}`));
    expect((await fetch(`${base}/done?host=node9&mac=aa:bb:cc:dd:ee:ff`)).status).toBe(404);
    expect((await fetch(`${base}/reboot?${q('node1')}`)).status).toBe(400);
    expect((await fetch(`http://127.0.0.1:${w.address!.port}/other/done?${q('node1')}`)).status).toBe(404);
    expect(events.map((e) => e.state)).toEqual(['installing', 'failed', 'unknown']);
    expect(await w.finished).toBe(false);
  });

  it('a missed deadline without power ends the run (failed, no retry) and --until-done exits 1', async () => {
    await request(['node3']);
    const { w, next } = await watcher({ timeoutMs: 400 });
    const e = await next((x) => x.source === 'timer');
    expect(e).toMatchObject({ node: 'node3', state: 'failed', phase: 'requested', prev: 'requested' });
    expect(e.detail).toMatch(/^timeout in requested: missed the requested deadline .*no power control here, so no retry$/);
    expect(await pxe('node3')).toBe('installer');
    expect(await w.finished).toBe(false);
    await w.close();
    // The CLI: node1 requested, nobody reports → timed out → exit 1.
    await request(['node1']);
    const r = await cli(['watch', '--config', specFile, '--root', root, '--state', stateFile, '--listen', 'off', '--access-log', join(ws.dir, 'none.log'), '--until-done', '--timeout', '0.5', '--json']);
    expect(r.code).toBe(1);
    // The CLI powers through the legacy path (ssh node1 systemctl reboot), which cannot reach a test node.
    expect(r.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l)).find((x) => x.state === 'failed')).toMatchObject({ node: 'node1', source: 'timer', detail: expect.stringMatching(/^timeout in requested: .*power-cycling it for try 2 failed: (power: )?node1: ssh reboot failed/) });
  });
});

describe('state file', () => {
  it('survives kill -9 of the watcher between two reports', async () => {
    const port = plan.phoneHome.watcherPort;
    const base = `http://127.0.0.1:${port}${plan.phoneHome.path}`;
    const start = () => {
      const c = spawn(process.execPath, ['--import', 'tsx', resolve('build/cli/main.ts'), 'watch', '--config', specFile, '--root', root, '--state', stateFile, '--json'], { stdio: 'ignore' });
      cleanups.push(() => void c.kill('SIGKILL'));
      return c;
    };
    await request(['node2']);
    const first = start();
    await waitForPort(port, 20_000);
    expect((await fetch(`${base}/start?${q('node2')}`)).status).toBe(200);
    await killed(first);
    const second = start();
    await waitForPort(port, 20_000);
    expect((await fetch(`${base}/disk?${q('node2')}`)).status).toBe(200);
    await killed(second);
    const s = (await readState(stateFile)).nodes.node2!;
    expect(s.history.map((h) => h.phase)).toEqual(['requested', 'start', 'disk']);
  });

  it('two racing writers lose no update, and a dead holder’s lock is taken over', async () => {
    await updateState(stateFile, (d) => void (d.nodes.counter = { name: 'counter', mac: '', phase: '', state: 'done', since: '', updated: '', history: [], detail: '0' }));
    const script = join(ws.dir, 'bump.mts');
    await writeFile(
      script,
      `import { updateState } from ${JSON.stringify(resolve('build/lifecycle/state.ts'))};\nfor (let i = 0; i < 100; i++) await updateState(process.argv[2], (d) => { d.nodes.counter.detail = String(Number(d.nodes.counter.detail) + 1); });\n`,
    );
    const runs = [0, 1, 2].map(() => new Promise((done) => spawn(process.execPath, ['--import', 'tsx', script, stateFile], { stdio: 'inherit' }).on('close', done)));
    expect(await Promise.all(runs)).toEqual([0, 0, 0]);
    expect((await readState(stateFile)).nodes.counter!.detail).toBe('300');
    // A lock left by a process that died holding it (kill -9 inside updateState).
    const dead = spawn('true');
    await new Promise((r) => dead.on('close', r));
    await writeFile(`${stateFile}.lock`, `${dead.pid}\n`);
    const t0 = performance.now();
    await withLock(stateFile, async () => {}, 2000);
    expect(performance.now() - t0).toBeLessThan(1000);
  });
});

describe('watch from nginx access log', () => {
  it('parses combined and the portacluster format', () => {
    expect(parseAccessLine('10.0.0.3 - - [25/Nov/2026:13:14:51 +0000] "GET /portacluster/report/done?host=node3&mac=c0:3f HTTP/1.1" 502 157 "-" "Wget/1.21" 0.000')).toMatchObject({ method: 'GET', url: '/portacluster/report/done?host=node3&mac=c0:3f', status: 502 });
    expect(parseAccessLine('garbage')).toBeNull();
  });

  it('follows a file across truncation and rotation', async () => {
    const file = join(ws.dir, 'a.log');
    await writeFile(file, 'old\n');
    const lines: string[] = [];
    const t = tailFile(file, (l) => lines.push(l), { pollMs: 20 });
    await t.ready;
    await appendFile(file, 'one\ntw');
    await sleep(100);
    await appendFile(file, 'o\n');
    await sleep(100);
    await writeFile(file, 'three\n'); // truncate + write (copytruncate)
    await sleep(100);
    await appendFile(file, 'four\n');
    await rename(file, file + '.1');
    await writeFile(file, 'five\n');
    await sleep(150);
    await t.stop();
    expect(lines).toEqual(['one', 'two', 'three', 'four', 'five']);
  });

  it('a real nginx logs the reports and the watcher switches the node', async () => {
    const prefix = join(ws.dir, 'nginx');
    // nginx's workers (user nobody) reopen the log by path after rotation: they need to reach it.
    await chmod(ws.dir, 0o755);
    const port = await freePort();
    const conf = await adaptNginxConf(renderNginxConf(plan), { prefix, listen: `127.0.0.1:${port}`, root });
    const nginx: ChildProcess = spawn('nginx', ['-p', prefix, '-c', conf, '-g', 'daemon off;'], { stdio: ['ignore', 'ignore', 'pipe'] });
    // SIGTERM, not SIGKILL: the master takes its workers down with it.
    cleanups.push(() => killed(nginx, 'SIGTERM'));
    await waitForPort(port);
    const accessLog = join(prefix, 'logs/access.log');
    await request(['node3']);
    // No HTTP listener: nginx answers 502 for the proxied path (nothing on watcherPort) and logs the request.
    const { events, next } = await watcher({ listen: null, accessLog });
    const base = `http://127.0.0.1:${port}${plan.phoneHome.path}`;
    expect((await fetch(`${base}/start?${q('node3')}`)).status).toBe(502);
    await next((e) => e.phase === 'start');
    // logrotate's way: move the log, tell nginx to reopen.
    await rename(accessLog, accessLog + '.1');
    nginx.kill('SIGUSR1');
    await sleep(300);
    await fetch(`${base}/configure?${q('node3')}`);
    const t0 = performance.now();
    await fetch(`${base}/done?${q('node3')}`);
    const e = await next((x) => x.phase === 'done');
    console.log(`access log: request → switch: ${(performance.now() - t0).toFixed(0)} ms (200 ms poll)`);
    expect(e).toMatchObject({ source: 'access-log', node: 'node3', state: 'done', switched: { from: 'installer', to: 'arch-linux' } });
    expect(await pxe('node3')).toBe('arch-linux');
    expect(events.map((x) => x.phase)).toEqual(['start', 'configure', 'done']);
  });
});

describe('watch behind nginx (node0 as generated)', () => {
  it("the generated nginx.conf proxies the installer's reports to the watcher, which switches before nginx answers", async () => {
    const prefix = join(ws.dir, 'nginx');
    await chmod(ws.dir, 0o755);
    const port = await freePort();
    const conf = await adaptNginxConf(renderNginxConf(plan), { prefix, listen: `127.0.0.1:${port}`, root });
    expect(await readFile(conf, 'utf8')).toContain(`proxy_pass http://127.0.0.1:${plan.phoneHome.watcherPort};`);
    const nginx: ChildProcess = spawn('nginx', ['-p', prefix, '-c', conf, '-g', 'daemon off;'], { stdio: ['ignore', 'ignore', 'pipe'] });
    cleanups.push(() => killed(nginx, 'SIGTERM'));
    await waitForPort(port);
    await request(['node2']);
    // The watcher listens where the generated nginx.conf sends the phone-home path.
    const { events } = await watcher({ listen: { host: '127.0.0.1', port: plan.phoneHome.watcherPort } });
    const base = `http://127.0.0.1:${port}${plan.phoneHome.path}`;
    for (const phase of ['start', 'download', 'configure']) expect((await fetch(`${base}/${phase}?${q('node2')}`)).status).toBe(200);
    expect((await fetch(`${base}/log?${q('node2')}`, { method: 'POST', body: 'through nginx\n' })).status).toBe(200);
    const done = await fetch(`${base}/done?${q('node2')}`);
    expect(done.status).toBe(200);
    expect(await pxe('node2')).toBe('arch-linux');
    expect(events.map((e) => `${e.source}:${e.phase}:${e.state}`)).toEqual(['http:start:installing', 'http:download:installing', 'http:configure:installing', 'http:log:log', 'http:done:done']);
    expect((await readState(stateFile)).nodes.node2).toMatchObject({ state: 'done', phase: 'done' });
  });
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function killed(c: ChildProcess, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
  return new Promise((r) => {
    if (c.exitCode !== null || c.signalCode !== null) return r();
    c.once('exit', () => r());
    c.kill(signal);
  });
}

function cli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((done) => {
    const c = spawn(process.execPath, ['--import', 'tsx', resolve('build/cli/main.ts'), ...args]);
    cleanups.push(() => killed(c));
    let stdout = '';
    let stderr = '';
    c.stdout.on('data', (b) => (stdout += b));
    c.stderr.on('data', (b) => (stderr += b));
    c.on('close', (code) => done({ code, stdout, stderr }));
  });
}
