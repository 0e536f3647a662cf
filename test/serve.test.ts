/**
 * `portacluster serve` for real: dnsmasq, nginx and the watcher started from a served tree inside a
 * network namespace this test makes (a bridge holding node0's address), asked over HTTP and TFTP from
 * inside it, then stopped by a dying child and by SIGTERM; every PID it started must be gone.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pidAlive } from '../build/lib/process.ts';
import { run } from '../build/lib/run.ts';
import { PXELINUX_DIR } from '../build/layout.ts';
import { readRunRecord, startRuns } from '../build/lifecycle/runs.ts';
import { createNetns, type Netns } from './e2e/harness/netns.ts';
import { baseSpec } from './fixtures/specs.ts';

const REPO = join(import.meta.dirname, '..');
const ADMIN = '192.168.10.10';

interface Served {
  child: ChildProcess;
  events: Record<string, any>[];
  stderr: () => string;
  exit: Promise<number | null>;
  waitFor(pred: (e: Record<string, any>) => boolean, ms?: number): Promise<Record<string, any>>;
}

let dir: string;
let ns: Netns;

async function makeTree(root: string): Promise<void> {
  const spec = baseSpec();
  for (const d of ['etc', 'pxe', 'installer']) await mkdir(join(root, d), { recursive: true });
  await writeFile(join(root, 'etc/portacluster.json'), JSON.stringify(spec, null, 2));
  await writeFile(join(root, 'pxe/pxelinux.0'), 'loader bytes\n');
  await writeFile(join(root, 'installer/autorun'), '#!/bin/bash\necho installer\n');
  // dnsmasq's TFTP and nginx's workers run as nobody: the served path must be searchable.
  for (const d of [dir, root, join(root, 'pxe'), join(root, 'installer')]) await chmod(d, 0o755);
}

function startServe(args: string[]): Served {
  const argv = ns.exec(['node', '--import', 'tsx', join(REPO, 'build/cli/main.ts'), 'serve', ...args]);
  const child = spawn(argv[0]!, argv.slice(1), { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
  const events: Record<string, any>[] = [];
  const waiters = new Set<() => void>();
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  createInterface({ input: child.stdout! }).on('line', (line) => {
    try {
      events.push(JSON.parse(line));
    } catch {
      events.push({ event: 'text', line });
    }
    for (const w of waiters) w();
  });
  const exit = new Promise<number | null>((r) => child.once('close', (c) => r(c)));
  return {
    child,
    events,
    stderr: () => err,
    exit,
    waitFor(pred, ms = 20_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const hit = events.find(pred);
          if (hit) {
            waiters.delete(check);
            clearTimeout(timer);
            resolve(hit);
          }
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`timed out; events so far:\n${events.map((e) => JSON.stringify(e)).join('\n')}\nstderr:\n${err}`));
        }, ms);
        waiters.add(check);
        void exit.then(() => setTimeout(check, 50));
        check();
      });
    },
  };
}

const common = (name: string) => ['--root', join(dir, 'tree'), '--state', join(dir, name, 'state.json'), '--run-dir', join(dir, name, 'run'), '--log-dir', join(dir, name, 'log'), '--json'];

async function noProcessUnder(path: string): Promise<string> {
  const r = await run(['pgrep', '-af', path], { nothrow: true });
  return r.stdout.split('\n').filter((l) => l && !l.includes('pgrep')).join('\n');
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pc-serve-'));
  await makeTree(join(dir, 'tree'));
  ns = await createNetns(`pc-serve-${process.pid}`, `${ADMIN}/24`);
}, 30_000);

afterAll(async () => {
  await ns?.stop();
  await rm(dir, { recursive: true, force: true });
});

describe('portacluster serve', () => {
  it('runs dnsmasq, nginx and the watcher from the tree; a child that dies stops the group with its exit shown', async () => {
    const s = startServe([...common('a'), '--interface', ns.bridge]);
    await s.waitFor((e) => e.event === 'up' && e.service === 'nginx');
    const up = s.events.filter((e) => e.event === 'up').map((e) => e.service);
    expect(up).toEqual(['watcher', 'dnsmasq', 'nginx']);
    const pids = s.events.filter((e) => e.event === 'up' && e.service !== 'watcher').map((e) => e.pid as number);

    // HTTP and TFTP from the served tree, from inside the cluster network.
    expect((await run(ns.exec(['curl', '-fsS', `http://${ADMIN}/installer/autorun`]))).stdout).toContain('echo installer');
    expect((await run(ns.exec(['curl', '-fsS', `tftp://${ADMIN}/pxelinux.0`]))).stdout).toBe('loader bytes\n');
    // A report through nginx's proxy reaches the watcher in the same group, with the address nginx saw:
    // from node0's own address it does not count for node1 (192.168.10.11), from node1's it does.
    await mkdir(join(dir, 'tree', PXELINUX_DIR), { recursive: true });
    await startRuns({ stateFile: join(dir, 'a/state.json'), root: join(dir, 'tree'), nodes: [{ name: 'node1', mac: 'c0:3f:d5:60:e5:a1' }], action: 'reimage', profile: 'installer', requestedMinutes: 30 });
    const nonce = (await readRunRecord(join(dir, 'a/state.json'), 'node1'))!.nonce;
    const url = `http://${ADMIN}/portacluster/report/start?host=node1&mac=c0:3f:d5:60:e5:a1&nonce=${nonce}`;
    expect((await run(ns.exec(['curl', '-sS', '-o', '/dev/null', '-w', '%{http_code}', '-X', 'POST', url]))).stdout).toBe('409');
    const ignored = await s.waitFor((e) => e.event === 'report');
    expect(ignored.report).toMatchObject({ node: 'node1', phase: 'start', state: 'ignored', from: ADMIN, detail: `ignored start: sent from ${ADMIN}, not from node1's address 192.168.10.11` });
    await run(ns.exec(['ip', 'addr', 'add', '192.168.10.11/24', 'dev', ns.bridge]));
    await run(ns.exec(['curl', '-fsS', '--interface', '192.168.10.11', '-X', 'POST', url]));
    const report = await s.waitFor((e) => e.event === 'report' && e.report.state !== 'ignored');
    expect(report.report).toMatchObject({ node: 'node1', phase: 'start', state: 'installing', from: '192.168.10.11' });
    await run(ns.exec(['ip', 'addr', 'del', '192.168.10.11/24', 'dev', ns.bridge]));
    expect(await readFile(join(dir, 'a/log/access.log'), 'utf8')).toContain('GET /installer/autorun');

    const dnsmasq = s.events.find((e) => e.event === 'up' && e.service === 'dnsmasq')!.pid as number;
    process.kill(dnsmasq, 'SIGKILL');
    expect(await s.exit).toBe(1);
    expect(s.events.find((e) => e.event === 'exit')).toMatchObject({ service: 'dnsmasq', signal: 'SIGKILL' });
    expect(s.events.at(-1)).toMatchObject({ event: 'stopped', code: 1 });
    expect(pids.filter(pidAlive)).toEqual([]);
    expect(await noProcessUnder(join(dir, 'a/run'))).toBe('');
  }, 60_000);

  it('stops every service on SIGTERM and exits 0', async () => {
    const s = startServe([...common('b'), '--interface', ns.bridge]);
    await s.waitFor((e) => e.event === 'up' && e.service === 'nginx');
    const pids = s.events.filter((e) => e.event === 'up' && e.service !== 'watcher').map((e) => e.pid as number);
    expect((await noProcessUnder(join(dir, 'b/run'))).split('\n').length).toBeGreaterThanOrEqual(2);
    s.child.kill('SIGTERM');
    expect(await s.exit).toBe(0);
    expect(s.events.at(-1)).toMatchObject({ event: 'stopped', code: 0 });
    expect(pids.filter(pidAlive)).toEqual([]);
    expect(await noProcessUnder(join(dir, 'b/run'))).toBe('');
  }, 60_000);

  it('without --json: one up: line per service, their output prefixed with the service, a killed child named with its signal and the group stopped', async () => {
    const args = common('t').filter((a) => a !== '--json');
    const s = startServe([...args, '--interface', ns.bridge]);
    const line = (re: RegExp) => s.waitFor((e) => e.event === 'text' && re.test(e.line));
    await line(/^up: nginx \(pid \d+\)/);
    const text = () => s.events.filter((e) => e.event === 'text').map((e) => e.line as string);
    expect(text().filter((l) => l.startsWith('up: ')).map((l) => l.split(/[ (]/)[1])).toEqual(['watcher', 'dnsmasq', 'nginx']);
    // dnsmasq's own start-up lines, under its name.
    expect(text().some((l) => /^dnsmasq +\| .*started, version/.test(l))).toBe(true);
    // nginx's master killed: its workers outlive it and hold its output open, so the master's end must be
    // seen by itself, and the workers stopped with the group.
    const pid = Number(/^up: nginx \(pid (\d+)\)/.exec(text().find((l) => l.startsWith('up: nginx'))!)![1]);
    const workers = (await run(['pgrep', '-P', String(pid)], { nothrow: true })).stdout.split('\n').filter(Boolean).map(Number);
    expect(workers.length).toBeGreaterThan(0);
    process.kill(pid, 'SIGKILL');
    expect(await Promise.race([s.exit, new Promise((r) => setTimeout(() => r('serve still running 20 s after nginx was killed'), 20_000))])).toBe(1);
    expect(text().filter((l) => l.startsWith('nginx was killed by SIGKILL'))).toHaveLength(1);
    expect(text().at(-1)).toBe('stopped: a service ended, so the group stopped (see above); no service left running');
    expect(workers.filter(pidAlive)).toEqual([]);
    expect(await noProcessUnder(join(dir, 't/run'))).toBe('');
  }, 60_000);

  it('refuses before starting anything: a missing interface, one without the admin IP, a config nginx rejects', async () => {
    const missing = startServe([...common('c'), '--interface', 'nosuch0']);
    expect(await missing.exit).toBe(1);
    expect(missing.stderr()).toMatch(/the cluster interface nosuch0 does not exist on this host/);

    const noIp = startServe([...common('c'), '--interface', 'lo']);
    expect(await noIp.exit).toBe(1);
    expect(noIp.stderr()).toMatch(/lo does not hold the admin IP 192\.168\.10\.10\/24 \(it has 127\.0\.0\.1\/8\)/);

    // A tree behind a directory the unprivileged workers cannot pass: nginx would answer 403 to every node.
    await mkdir(join(dir, 'private'), { mode: 0o700 });
    await makeTree(join(dir, 'private/tree'));
    await chmod(join(dir, 'private'), 0o700);
    const hidden = startServe(['--root', join(dir, 'private/tree'), '--state', join(dir, 'c/state.json'), '--run-dir', join(dir, 'c/run'), '--log-dir', join(dir, 'c/log'), '--interface', ns.bridge]);
    expect(await hidden.exit).toBe(1);
    expect(hidden.stderr()).toMatch(/private is mode 700: nginx's workers and dnsmasq's TFTP \(unprivileged\) cannot reach .*\n\s+hint: chmod o\+x/);

    // A log directory that is a file: said plainly, no stack trace.
    await mkdir(join(dir, 'd'), { recursive: true });
    await writeFile(join(dir, 'd/logfile'), '');
    const file = startServe(['--root', join(dir, 'tree'), '--state', join(dir, 'd/state.json'), '--run-dir', join(dir, 'd/run'), '--log-dir', join(dir, 'd/logfile'), '--interface', ns.bridge]);
    expect(await file.exit).toBe(1);
    expect(file.stderr()).toMatch(/cannot create the directory .*d\/logfile \(EEXIST\); nothing was started/);
    expect(file.stderr()).not.toMatch(/\n\s+at /);

    // An access log nginx cannot open: nginx -t refuses in its own words, and nothing runs.
    await mkdir(join(dir, 'd/log/access.log'), { recursive: true });
    const broken = startServe(['--root', join(dir, 'tree'), '--state', join(dir, 'd/state.json'), '--run-dir', join(dir, 'd/run'), '--log-dir', join(dir, 'd/log'), '--interface', ns.bridge]);
    expect(await broken.exit).toBe(1);
    expect(broken.stderr()).toMatch(/nginx refuses its config .*nothing was started/s);
    expect(broken.stderr()).toMatch(/access\.log" failed \(21: Is a directory\)/);
    expect(await noProcessUnder(join(dir, 'd/run'))).toBe('');
    expect(broken.events.filter((e) => e.event === 'up')).toEqual([]);
  }, 60_000);
});
