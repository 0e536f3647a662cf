/**
 * A boot server's nginx (build/render/nginx-bootserver.ts) against node0's nginx as generated, both real,
 * inside a network namespace this test makes (node0's admin IP and the boot server's address on its lo):
 * small files from the server's own copy, one origin fetch for many concurrent clients, and an origin that
 * dies midway (or sends no length and closes early) never leaving a truncated file served as complete.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IMAGES_DIR, RUNS_DIR, autorunPath, imagePath, runPath, urlFor } from '../build/layout.ts';
import { run } from '../build/lib/run.ts';
import { planCluster, type Plan } from '../build/plan/plan.ts';
import { bootServerSite, renderBootServerNginxConf, type BootServerRuntime, type BootServerSite } from '../build/render/nginx-bootserver.ts';
import { renderNginxConf } from '../build/render/nginx.ts';
import { validateSpec } from '../build/spec/validate.ts';
import { baseSpec, withServers } from './fixtures/specs.ts';
import { expectGolden } from './helpers/golden.ts';
import { startNginx, type RunningNginx } from './helpers/nginx.ts';

const NS = `pc-bootsrv-${process.pid}`;
// The two-rack fixture: rack1-boot at 10.100.1.1 (backbone 192.168.10.21) serves node3 at 10.100.1.13.
const SERVER = '10.100.1.1';
const NODE3 = { mac: 'c0:3f:d5:60:e5:a3', ip: '10.100.1.13' };
// Another machine on rack 1's subnet, not node3.
const STRANGER = '10.100.1.14';
// A lab stand-in for an origin that answers without a Content-Length: a boot server's address for it
// (rack2-boot's backbone address, so node0 would believe its X-Forwarded-For).
const SERVER_NOLEN = '10.99.1.2';
const NOLEN_PORT = 8082;
const MIB = 1 << 20;

let plan: Plan;
let dir: string;
let origin: RunningNginx | null = null;
let server: RunningNginx;
let serverNolen: RunningNginx;
const children: ChildProcess[] = [];
const ns = (argv: string[]) => ['ip', 'netns', 'exec', NS, ...argv];
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

async function image(name: string, mib: number): Promise<{ path: string; bytes: Buffer; sha256: string }> {
  const bytes = randomBytes(mib * MIB);
  const sha256 = sha(bytes);
  // Named as the build names them: content-addressed.
  const path = imagePath(`${name}-${sha256.slice(0, 16)}.tar.zst`);
  await writeFile(join(dir, 'origin', path), bytes);
  return { path, bytes, sha256 };
}

/** node0's nginx as generated, with its paths in the temp dir; paced so a test can kill it midway (lab only). */
async function startOrigin(): Promise<RunningNginx> {
  const p = join(dir, 'origin-nginx');
  await mkdir(join(p, 'logs'), { recursive: true });
  const rt = { root: join(dir, 'origin'), pid: join(p, 'nginx.pid'), errorLog: join(p, 'logs/error.log'), accessLog: join(p, 'logs/access.log') };
  const conf = renderNginxConf(plan, rt).replace('autoindex on;', 'autoindex on;\n            limit_rate 4m;');
  await writeFile(join(p, 'nginx.conf'), conf);
  return startNginx({ prefix: p, conf: join(p, 'nginx.conf'), pidFile: rt.pid, netns: NS });
}

function serverRuntime(name: string): BootServerRuntime {
  const p = join(dir, name);
  return { root: join(dir, 'server'), pid: join(p, 'nginx.pid'), errorLog: join(p, 'error.log'), accessLog: join(p, 'access.log'), cacheDir: join(p, 'cache'), cacheMaxSize: '1g' };
}

async function startServer(site: BootServerSite, name: string): Promise<RunningNginx> {
  const rt = serverRuntime(name);
  await mkdir(join(dir, name), { recursive: true });
  await writeFile(join(dir, name, 'nginx.conf'), renderBootServerNginxConf(plan, site, rt));
  return startNginx({ prefix: join(dir, name), conf: join(dir, name, 'nginx.conf'), pidFile: rt.pid, netns: NS });
}

interface Fetched {
  code: number;
  status: string;
  sha256: string;
  size: number;
  cache: string;
}

/** What the installer does: curl -f, then the digest of what arrived; curl's exit code tells a short read (18). */
async function fetchVia(host: string, path: string, out: string, extra: string[] = []): Promise<Fetched> {
  const file = join(dir, 'out', out);
  const r = await run(ns(['curl', '-fsS', '-D', `${file}.headers`, '-o', file, '-w', '%{http_code}', ...extra, '--', urlFor(`http://${host}`, path)]), { nothrow: true });
  const body = await readFile(file).catch(() => Buffer.alloc(0));
  const headers = await readFile(`${file}.headers`, 'utf8').catch(() => '');
  return { code: r.exitCode ?? -1, status: r.stdout.trim(), sha256: sha(body), size: body.length, cache: /x-cache-status: (\S+)/i.exec(headers)?.[1] ?? '' };
}

async function originGets(path: string): Promise<number> {
  const log = await readFile(join(dir, 'origin-nginx/logs/access.log'), 'utf8').catch(() => '');
  return log.split('\n').filter((l) => l.includes(`"GET /${path} `)).length;
}

beforeAll(async () => {
  plan = planCluster(validateSpec(withServers(baseSpec())));
  dir = await mkdtemp(join(tmpdir(), 'pc-bootsrv-'));
  for (const d of ['origin/installer', `origin/${IMAGES_DIR}`, `origin/${RUNS_DIR}`, 'server/installer', 'out']) await mkdir(join(dir, d), { recursive: true });
  // nginx's workers run as nobody: the trees and the cache's parent must be reachable.
  await chmod(dir, 0o755);
  await writeFile(join(dir, 'origin', autorunPath('installer')), 'echo from node0\n');
  await writeFile(join(dir, 'server', autorunPath('installer')), 'echo from the boot server copy\n');
  await run(['ip', 'netns', 'add', NS]);
  await run(['ip', '-n', NS, 'link', 'set', 'lo', 'up']);
  const [rack1, rack2] = plan.bootServers;
  for (const a of [plan.admin.ip, SERVER, SERVER_NOLEN, rack1!.backboneIp, rack2!.backboneIp, NODE3.ip, STRANGER]) await run(['ip', '-n', NS, 'addr', 'add', `${a}/32`, 'dev', 'lo']);
  origin = await startOrigin();
  server = await startServer(bootServerSite(plan, rack1!), 'server-nginx');
  serverNolen = await startServer({ ...bootServerSite(plan, rack2!), listen: SERVER_NOLEN, origin: `${plan.admin.ip}:${NOLEN_PORT}` }, 'server-nolen');
}, 30_000);

afterAll(async () => {
  for (const c of children) c.kill('SIGKILL');
  for (const n of [server, serverNolen, origin]) await n?.stop();
  await run(['ip', 'netns', 'del', NS], { nothrow: true });
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe("a boot server's nginx", () => {
  it('matches the golden file and passes nginx -t', async () => {
    await expectGolden('bootservers/rack1-boot/etc/nginx.conf', renderBootServerNginxConf(plan, bootServerSite(plan, plan.bootServers[0]!)));
    await expectGolden('bootservers/node0-nginx.conf', renderNginxConf(plan));
    const r = await run(ns(['nginx', '-t', '-p', join(dir, 'server-nginx'), '-c', join(dir, 'server-nginx/nginx.conf')]));
    expect(r.stderr).toMatch(/test is successful/);
  });

  it("refuses a value that is not one nginx word", () => {
    expect(() => renderBootServerNginxConf(plan, { ...bootServerSite(plan, plan.bootServers[0]!), origin: '10.0.0.1;\n' })).toThrow(/bootServers\[\]\.origin must be one nginx word/);
  });

  it("serves small files from its own copy, denies etc/, and passes reports on to node0's watcher", async () => {
    const watcherPort = plan.phoneHome.watcherPort;
    // A stand-in for the watcher: echoes what reached it and who nginx said asked.
    const echo = `require('http').createServer((q,s)=>s.end(q.method+' '+q.url+' '+q.headers['x-real-ip'])).listen(${watcherPort},'127.0.0.1',()=>console.log('up'))`;
    const w = spawn('ip', ['netns', 'exec', NS, process.execPath, '-e', echo], { stdio: ['ignore', 'pipe', 'inherit'] });
    children.push(w);
    await new Promise((r) => w.stdout!.once('data', r));
    expect((await run(ns(['curl', '-fsS', urlFor(`http://${SERVER}`, autorunPath('installer'))]))).stdout).toBe('echo from the boot server copy\n');
    expect(await originGets(autorunPath('installer'))).toBe(0);
    expect((await run(ns(['curl', '-sS', '-o', '/dev/null', '-w', '%{http_code}', `http://${SERVER}/etc/portacluster.json`]))).stdout).toBe('403');
    // A node that writes its own X-Forwarded-For: the server overwrites it with the address it sees.
    const report = await run(ns(['curl', '-fsS', '--interface', NODE3.ip, '-H', `X-Forwarded-For: ${STRANGER}`, '-X', 'POST', `http://${SERVER}${plan.phoneHome.path}/start?mac=${NODE3.mac}`]));
    // node0's nginx heard from the server's backbone address and believed its X-Forwarded-For: the watcher's
    // X-Real-IP is node3's own address, as if node3 had reported to node0 directly.
    expect(report.stdout).toBe(`POST ${plan.phoneHome.path}/start?mac=${NODE3.mac} ${NODE3.ip}`);
    // Anyone else on node0's network is not believed.
    const direct = await run(ns(['curl', '-fsS', '--interface', plan.admin.ip, '-H', `X-Forwarded-For: ${NODE3.ip}`, '-X', 'POST', `http://${plan.admin.ip}${plan.phoneHome.path}/start?mac=${NODE3.mac}`]));
    expect(direct.stdout).toBe(`POST ${plan.phoneHome.path}/start?mac=${NODE3.mac} ${plan.admin.ip}`);
    w.kill('SIGKILL');
  });

  it("passes a run file on to node0 for its own node only, which node0 then sees as the node", async () => {
    await writeFile(join(dir, 'origin', runPath(NODE3.mac)), 'run=r1 nonce=n1\n');
    const get = async (from: string, host: string, headers: string[] = []) =>
      (await run(ns(['curl', '-sS', '--interface', from, ...headers.flatMap((h) => ['-H', h]), '-o', '/dev/null', '-w', '%{http_code}', urlFor(`http://${host}`, runPath(NODE3.mac))]))).stdout;
    expect(await get(NODE3.ip, SERVER)).toBe('200');
    expect((await run(ns(['curl', '-fsS', '--interface', NODE3.ip, urlFor(`http://${SERVER}`, runPath(NODE3.mac))]))).stdout).toBe('run=r1 nonce=n1\n');
    // The server refuses another machine of the rack, whatever it claims to be.
    expect(await get(STRANGER, SERVER, [`X-Forwarded-For: ${NODE3.ip}`])).toBe('403');
    // node0 refuses the server's own address, and believes X-Forwarded-For from the servers only.
    expect(await get(plan.bootServers[0]!.backboneIp, plan.admin.ip)).toBe('403');
    expect(await get(plan.admin.ip, plan.admin.ip, [`X-Forwarded-For: ${NODE3.ip}`])).toBe('403');
    // node0's log names the node, not its server.
    const log = await readFile(join(dir, 'origin-nginx/logs/access.log'), 'utf8');
    expect(log.split('\n').filter((l) => l.includes(`GET /${runPath(NODE3.mac)} `)).map((l) => l.split(' ')[0])).toContain(NODE3.ip);
  });

  it('fetches a big file from node0 once however many nodes ask at once, and serves every node the same bytes', async () => {
    const img = await image('many', 24); // 6 s at the origin's pace: past nginx's default 5 s lock age
    const fetched = await Promise.all(Array.from({ length: 6 }, (_, i) => fetchVia(SERVER, img.path, `many-${i}`)));
    for (const f of fetched) expect(f).toMatchObject({ code: 0, status: '200', sha256: img.sha256, size: img.bytes.length });
    expect(await originGets(img.path)).toBe(1);
    expect(fetched.map((f) => f.cache).sort()).toEqual(['HIT', 'HIT', 'HIT', 'HIT', 'HIT', 'MISS']);
    // A query string does not make a second copy; a resumed download (Range) is served from the cache.
    expect(await fetchVia(SERVER, `${img.path}?again`, 'many-q')).toMatchObject({ code: 0, sha256: img.sha256, cache: 'HIT' });
    const part = await fetchVia(SERVER, img.path, 'many-range', ['-r', '1000000-1999999']);
    expect(part).toMatchObject({ code: 0, status: '206', sha256: sha(img.bytes.subarray(1_000_000, 2_000_000)) });
    expect(await originGets(img.path)).toBe(1);
  }, 60_000);

  it('an origin that dies midway: every node sees a failure, nothing is cached, and the next fetch is whole', async () => {
    const img = await image('cut', 16); // 4 s at the origin's pace
    const all = Promise.all(Array.from({ length: 3 }, (_, i) => fetchVia(SERVER, img.path, `cut-${i}`)));
    await new Promise((r) => setTimeout(r, 1500));
    await origin!.kill();
    origin = null;
    const cut = await all;
    for (const f of cut) {
      // curl 18: the body ended short of the Content-Length (56 if the close came as a reset); 22: the
      // waiters' retry found node0 gone (502).
      expect([18, 22, 56], JSON.stringify(f)).toContain(f.code);
      expect(f.sha256).not.toBe(img.sha256);
    }
    expect(cut.some((f) => f.code === 18 && f.size > 0 && f.size < img.bytes.length)).toBe(true);
    // Nothing of it was kept: with node0 still gone the server has nothing to serve.
    expect(await fetchVia(SERVER, img.path, 'cut-down')).toMatchObject({ code: 22, status: '502' });
    origin = await startOrigin();
    expect(await fetchVia(SERVER, img.path, 'cut-again')).toMatchObject({ code: 0, status: '200', sha256: img.sha256, size: img.bytes.length, cache: 'MISS' });
    expect(await fetchVia(SERVER, img.path, 'cut-hit')).toMatchObject({ code: 0, sha256: img.sha256, cache: 'HIT' });
  }, 60_000);

  it('does not cache a response without a Content-Length that the origin closed early', async () => {
    let count = 0;
    // A lab stand-in origin: HTTP/1.0, no length, half the bytes, then the connection closes.
    const script = `let n=0;require('net').createServer((c)=>{c.once('data',()=>{console.log(++n);c.end('HTTP/1.0 200 OK\\r\\nContent-Type: application/octet-stream\\r\\n\\r\\n'+'x'.repeat(50000))})}).listen(${NOLEN_PORT},'${plan.admin.ip}',()=>console.log('up'))`;
    const o = spawn('ip', ['netns', 'exec', NS, process.execPath, '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    children.push(o);
    o.stdout!.on('data', (d: Buffer) => (count = Math.max(count, ...d.toString().split('\n').filter((l) => /^\d+$/.test(l)).map(Number))));
    await new Promise((r) => o.stdout!.once('data', r));
    const path = imagePath('nolen-0123456789abcdef.tar.zst');
    expect(await fetchVia(SERVER_NOLEN, path, 'nolen-1')).toMatchObject({ status: '200', size: 50000, cache: 'MISS' });
    expect(await fetchVia(SERVER_NOLEN, path, 'nolen-2')).toMatchObject({ status: '200', size: 50000, cache: 'MISS' });
    expect(count).toBe(2);
    o.kill('SIGKILL');
  });
});
