/**
 * A node behind a boot server, from reimage to done, with everything real but the node itself: inside a
 * network namespace this test makes, node0's nginx and watcher (`portacluster watch`), a boot server's nginx
 * and sshd (its disk bind-mounted at the spec's servedRoot in a mount namespace of its own, as on a machine
 * of its own), and curl from the node's address doing what the installer does. reimage switches the node's
 * link on its server and on node0; the installer's run file and reports go through the server's nginx to
 * node0; the watcher, on done, switches the link where the node boots (the server, over ssh) and on node0.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { chmod, mkdir, readFile, readlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PXELINUX_DIR, pxelinuxNodeFile, pxelinuxPath, runPath, urlFor } from '../build/layout.ts';
import { run } from '../build/lib/run.ts';
import { assembleServerTree } from '../build/lifecycle/deploy-servers.ts';
import { switchNodes } from '../build/lifecycle/links.ts';
import { planCluster, type Plan } from '../build/plan/plan.ts';
import { bootServerNginxRuntime, bootServerSite, renderBootServerNginxConf } from '../build/render/nginx-bootserver.ts';
import { renderNginxConf } from '../build/render/nginx.ts';
import { validateSpec } from '../build/spec/validate.ts';
import { baseSpec, withServers } from './fixtures/specs.ts';
import { startNginx, type RunningNginx } from './helpers/nginx.ts';
import { writeBootServerDist } from './helpers/served-tree.ts';
import { REPO_ROOT } from './helpers/installer-env.ts';
import { startSshd, type Sshd } from './helpers/sshd.ts';
import { workspace } from './helpers/workspace.ts';

const NS = `pc-watchsrv-${process.pid}`;
const NODE3 = { name: 'node3', mac: 'c0:3f:d5:60:e5:a3', ip: '10.100.1.13' };
const CLI = join(REPO_ROOT, 'bin/portacluster.js');

let ws: Awaited<ReturnType<typeof workspace>>;
let plan: Plan;
let node0Root: string;
let serverRoot: string;
let specFile: string;
let sshConfig: string;
let sshd: Sshd | null = null;
const nginxes: RunningNginx[] = [];
let watcher: ChildProcess | null = null;
const events: Record<string, any>[] = [];

const ns = (argv: string[]) => ['ip', 'netns', 'exec', NS, ...argv];
const cli = (args: string[]) => run(ns([process.execPath, CLI, ...args, '--config', specFile, '--root', node0Root, '--state', join(ws.dir, 'state.json'), '--ssh-config', sshConfig]), { nothrow: true });
/** What the node's loader gets for its per-MAC file from its server: the profile file the link names. */
const bootsFromServer = async () => (await run(ns(['curl', '-fsS', '--interface', NODE3.ip, urlFor(`http://${plan.bootServers[0]!.ip}`, pxelinuxPath(pxelinuxNodeFile(NODE3.mac)))]))).stdout.split('\n')[0];
const link = (root: string) => readlink(join(root, PXELINUX_DIR, pxelinuxNodeFile(NODE3.mac)));

beforeAll(async () => {
  ws = await workspace('pc-watchsrv-');
  // nginx's workers run as nobody: the trees must be reachable.
  await chmod(ws.dir, 0o755);
  const srv = join(ws.dir, 'srv');
  node0Root = join(srv, 'public');
  const disk = join(ws.dir, 'rack1-disk');
  serverRoot = join(disk, 'public');
  const spec = withServers(baseSpec());
  spec.admin.servedRoot = node0Root;
  spec.bootServers[0].ssh = 'rack1-boot';
  spec.phoneHome = { watcherPort: 18000 + (process.pid % 1000) };
  plan = planCluster(validateSpec(spec));
  // node0's tree as deployed, and rack1's copy of it as deploy assembles it.
  await writeBootServerDist(node0Root, plan, spec, 'v1');
  await assembleServerTree(node0Root, 'rack1-boot', serverRoot);
  specFile = join(ws.dir, 'spec.json');
  await writeFile(specFile, JSON.stringify(spec));

  await run(['ip', 'netns', 'add', NS]);
  await run(['ip', '-n', NS, 'link', 'set', 'lo', 'up']);
  const rack1 = plan.bootServers[0]!;
  for (const a of [plan.admin.ip, rack1.ip, rack1.backboneIp, NODE3.ip]) await run(['ip', '-n', NS, 'addr', 'add', `${a}/32`, 'dev', 'lo']);
  // rack1's sshd sees its own disk where node0 keeps its tree.
  sshd = await startSshd(join(ws.dir, 'ssh'), { alias: 'rack1-boot', bindOver: { src: disk, dst: srv }, netns: NS });
  sshConfig = sshd.sshConfig;

  const n0 = join(ws.dir, 'node0-nginx');
  await mkdir(n0, { recursive: true });
  const n0rt = { root: node0Root, pid: join(n0, 'nginx.pid'), errorLog: join(n0, 'error.log'), accessLog: join(n0, 'access.log') };
  await writeFile(join(n0, 'nginx.conf'), renderNginxConf(plan, n0rt));
  nginxes.push(await startNginx({ prefix: n0, conf: join(n0, 'nginx.conf'), pidFile: n0rt.pid, netns: NS }));
  const s1 = join(ws.dir, 'rack1-nginx');
  await mkdir(s1, { recursive: true });
  // The server's nginx runs in this mount namespace: its root is the disk's path as seen from here.
  const s1rt = { ...bootServerNginxRuntime(plan, join(s1, 'cache')), root: serverRoot, pid: join(s1, 'nginx.pid'), errorLog: join(s1, 'error.log'), accessLog: join(s1, 'access.log'), cacheMaxSize: '64m' };
  await writeFile(join(s1, 'nginx.conf'), renderBootServerNginxConf(plan, bootServerSite(plan, rack1), s1rt));
  nginxes.push(await startNginx({ prefix: s1, conf: join(s1, 'nginx.conf'), pidFile: s1rt.pid, netns: NS }));
}, 60_000);

afterAll(async () => {
  if (watcher && watcher.exitCode === null) watcher.kill('SIGTERM');
  for (const n of nginxes) await n.stop();
  await sshd?.stop();
  await run(['ip', 'netns', 'del', NS], { nothrow: true });
  await ws?.cleanup();
});

describe('a node behind a boot server, reimaged and reported done', () => {
  it('reimage switches its link on its server (where it boots) and on node0, and opens its run on node0', async () => {
    // Installed earlier: both trees link it to the OS.
    await switchNodes(plan.nodes.filter((n) => n.name === NODE3.name), 'arch-linux', { root: node0Root, servers: new Map([['rack1-boot', { target: {}, root: serverRoot }]]) });
    expect(await bootsFromServer()).toBe('# portacluster: profile arch-linux — generated; do not edit');
    const r = await cli(['reimage', NODE3.name]);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(await link(serverRoot)).toBe('installer');
    expect(await link(node0Root)).toBe('installer');
    expect(await bootsFromServer()).toBe('# portacluster: profile installer — generated; do not edit');
  }, 60_000);

  it("the installer's run file and reports reach node0's watcher through the server; done switches the link on the server", async () => {
    watcher = spawn('ip', ns([process.execPath, CLI, 'watch', '--config', specFile, '--root', node0Root, '--state', join(ws.dir, 'state.json'), '--ssh-config', sshConfig, '--until-done', '--json']).slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    watcher.stderr!.on('data', (d) => (stderr += d));
    let buf = '';
    const listening = new Promise<void>((resolve) =>
      watcher!.stdout!.on('data', (d: Buffer) => {
        buf += d.toString();
        let i;
        while ((i = buf.indexOf('\n')) >= 0) {
          const e = JSON.parse(buf.slice(0, i)) as Record<string, any>;
          buf = buf.slice(i + 1);
          events.push(e);
          if (e.event === 'listening') resolve();
        }
      }),
    );
    const exited = new Promise<number>((r) => watcher!.once('exit', (c) => r(c ?? -1)));
    await Promise.race([listening, exited.then((c) => Promise.reject(new Error(`watch exited ${c}: ${stderr}`)))]);

    const server = `http://${plan.bootServers[0]!.ip}`;
    // fetch_run: the run file, from its server, which asks node0 for it with the node's address.
    const runFile = (await run(ns(['curl', '-fsS', '--interface', NODE3.ip, urlFor(server, runPath(NODE3.mac))]))).stdout;
    const nonce = /^nonce=([0-9a-f]{32})$/m.exec(runFile)?.[1];
    expect(nonce).toBeDefined();
    const report = async (phase: string) => (await run(ns(['curl', '-sS', '--interface', NODE3.ip, '-o', '/dev/null', '-w', '%{http_code}', `${server}${plan.phoneHome.path}/${phase}?host=${NODE3.name}&mac=${NODE3.mac}&nonce=${nonce}`]))).stdout;
    expect(await report('start')).toBe('200');
    expect(await report('done')).toBe('200');
    expect(await exited, stderr).toBe(0);

    const done = events.find((e) => e.phase === 'done');
    expect(done).toMatchObject({ node: NODE3.name, state: 'done' });
    expect(done!.switched).toMatchObject({ from: 'installer', to: 'arch-linux' });
    expect(await link(serverRoot)).toBe('arch-linux');
    expect(await link(node0Root)).toBe('arch-linux');
    expect(await bootsFromServer()).toBe('# portacluster: profile arch-linux — generated; do not edit');
    // node0's nginx saw the node's own address for both, though the server made the requests.
    const log = await readFile(join(ws.dir, 'node0-nginx/access.log'), 'utf8');
    expect(log.split('\n').filter((l) => l.includes(`${plan.phoneHome.path}/done?`)).map((l) => l.split(' ')[0])).toEqual([NODE3.ip]);
  }, 90_000);

  it('reimage with its server unreachable fails, names the server, and leaves node0 as it was', async () => {
    await sshd!.stop();
    sshd = null;
    const r = await cli(['reimage', NODE3.name]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/on boot server rack1-boot: switching links in .* on rack1-boot failed .*; node0's links were not switched/);
    expect(await link(node0Root)).toBe('arch-linux');
  }, 60_000);
});
