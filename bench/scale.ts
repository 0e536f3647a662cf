/**
 * Image delivery past one admin node (issue 17): N installers fetch and verify one image, first from node0
 * alone (the flat network: every byte through node0's NIC), then through S boot servers (each image
 * crosses the backbone once per server, then every rack pulls from its own server), side by side in one
 * run on the network of bench/lib/scale-net.ts with tc-shaped links. node0 and the servers run nginx as
 * generated (render/nginx.ts, render/nginx-bootserver.ts); each installer is what the installer does:
 * `curl -fsS | sha256sum`, the digest compared with the image's.
 *
 * Reports each run's time against its line-rate floor (bytes / link rate) and node0's egress (wire bytes
 * from its NIC's counter, body bytes from its access log), and the issue's two goal ratios:
 *   node0 egress with S servers ÷ (S × image size)                       goal ≤ 1 (+ small files)
 *   time through the servers ÷ the line-rate floor of their rack links   goal ≤ 1.2
 *
 *   npm run bench scale
 *   node --import tsx bench/scale.ts [--servers 3] [--clients 24] [--mib 32] [--backbone 200] [--rack 100]
 */
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { autorunPath, imagePath, urlFor } from '../build/layout.ts';
import { planCluster } from '../build/plan/plan.ts';
import { renderBootServerNginxConf } from '../build/render/nginx-bootserver.ts';
import { renderNginxConf } from '../build/render/nginx.ts';
import { validateSpec } from '../build/spec/validate.ts';
import { baseSpec } from '../test/fixtures/specs.ts';
import { startNginx, type RunningNginx } from '../test/helpers/nginx.ts';
import { recordRatio } from './lib/ratios.ts';
import { createScaleNet, type ScaleNet } from './lib/scale-net.ts';

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  const v = i >= 0 ? Number(process.argv[i + 1]) : fallback;
  if (!Number.isInteger(v) || v <= 0) throw new Error(`--${name} must be a positive integer (got ${process.argv[i + 1]})`);
  return v;
}

const o = { servers: arg('servers', 3), clients: arg('clients', 24), mib: arg('mib', 32), backbone: arg('backbone', 200), rack: arg('rack', 100) };
if (o.servers > 4 || o.clients > 64 || o.mib > 256) throw new Error('bounded: at most 4 servers, 64 clients and 256 MiB (the bench must stay a few minutes on a shared machine)');
// One fetch may not take longer than this; the whole run is bounded by it.
const CLIENT_TIMEOUT_S = 600;

interface Client {
  rack: number;
  ms: number;
  ok: boolean;
  detail: string;
}

/** One installer: curl into sha256sum, as common/lib/15-fetch.sh does on its fast path. */
function install(net: ScaleNet, rack: number, url: string, sha256: string, t0: number): Promise<Client> {
  const script = 'set -o pipefail; curl -fsS --max-time "$2" -- "$1" | sha256sum';
  const argv = net.exec(net.racks[rack - 1]!.rackNs, ['bash', '-c', script, 'installer', url, String(CLIENT_TIMEOUT_S)]);
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  return new Promise((resolve) =>
    child.once('close', (code) => {
      const got = out.split(' ')[0]!;
      resolve({ rack, ms: performance.now() - t0, ok: code === 0 && got === sha256, detail: code === 0 ? `sha256 ${got.slice(0, 16)}…` : `exit ${code}: ${out.trim()}` });
    }),
  );
}

interface Wave {
  ms: number;
  rackMs: number[];
  node0Wire: number;
  node0Body: number;
  node0Gets: number;
}

async function wave(net: ScaleNet, accessLog: string, urlOf: (rack: number) => string, sha256: string): Promise<Wave> {
  const tx0 = await net.txBytes(net.node0Ns, net.node0Dev);
  const log0 = (await readFile(accessLog, 'utf8').catch(() => '')).length;
  const t0 = performance.now();
  // Client i sits in rack (i mod S) + 1: the racks hold equal shares (±1).
  const clients = await Promise.all(Array.from({ length: o.clients }, (_, i) => install(net, (i % o.servers) + 1, urlOf((i % o.servers) + 1), sha256, t0)));
  const ms = performance.now() - t0;
  const failed = clients.filter((c) => !c.ok);
  if (failed.length) throw new Error(`${failed.length} of ${clients.length} installers failed: ${failed.map((c) => `rack${c.rack}: ${c.detail}`).join('; ')}`);
  const node0Wire = (await net.txBytes(net.node0Ns, net.node0Dev)) - tx0;
  // nginx writes the log line when the response is done: every client has its bytes by now.
  const lines = (await readFile(accessLog, 'utf8')).slice(log0).split('\n');
  let node0Body = 0;
  let node0Gets = 0;
  for (const l of lines) {
    const m = /"GET \S+ [^"]*" \d{3} (\d+)/.exec(l);
    if (m) {
      node0Gets++;
      node0Body += Number(m[1]);
    }
  }
  const rackMs = net.racks.map((r) => Math.max(...clients.filter((c) => c.rack === r.index).map((c) => c.ms)));
  return { ms, rackMs, node0Wire, node0Body, node0Gets };
}

const MB = (b: number) => `${(b / 1e6).toFixed(1)} MB`;
const s = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

async function main(): Promise<void> {
  const plan = planCluster(validateSpec(baseSpec()));
  const dir = await mkdtemp(join(tmpdir(), 'pc-bench-scale-'));
  // nginx's workers run as nobody: the trees must be reachable.
  await chmod(dir, 0o755);
  const started: RunningNginx[] = [];
  let net: ScaleNet | null = null;
  const cleanup = async () => {
    for (const n of started.reverse()) await n.stop();
    await net?.destroy();
    await rm(dir, { recursive: true, force: true });
  };
  process.once('SIGINT', () => void cleanup().then(() => process.exit(130)));
  try {
    // Random bytes: nothing along the way can compress them. Named as the build names images.
    const bytes = randomBytes(o.mib << 20);
    const size = bytes.length;
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    const image = imagePath(`bench-${sha256.slice(0, 16)}.tar.zst`);
    for (const d of ['origin/images', 'copy/installer', 'node0']) await mkdir(join(dir, d), { recursive: true });
    await writeFile(join(dir, 'origin', image), bytes);
    await writeFile(join(dir, 'copy', autorunPath('installer')), 'echo installer\n');

    net = await createScaleNet({ prefix: `pcsc${process.pid}`, node0Cidr: `${plan.admin.ip}/24`, servers: o.servers, backboneMbit: o.backbone, rackMbit: o.rack });
    const n0 = { root: join(dir, 'origin'), pid: join(dir, 'node0/nginx.pid'), errorLog: join(dir, 'node0/error.log'), accessLog: join(dir, 'node0/access.log') };
    await writeFile(join(dir, 'node0/nginx.conf'), renderNginxConf(plan, n0));
    started.push(await startNginx({ prefix: join(dir, 'node0'), conf: join(dir, 'node0/nginx.conf'), pidFile: n0.pid, netns: net.node0Ns }));
    for (const r of net.racks) {
      const p = join(dir, `server${r.index}`);
      await mkdir(p, { recursive: true });
      const rt = { root: join(dir, 'copy'), pid: join(p, 'nginx.pid'), errorLog: join(p, 'error.log'), accessLog: join(p, 'access.log'), cacheDir: join(p, 'cache'), cacheMaxSize: '2g' };
      await writeFile(join(p, 'nginx.conf'), renderBootServerNginxConf(plan, { name: `rack${r.index}`, listen: r.serverRack, origin: plan.admin.ip, backbone: r.serverBackbone, nodes: [] }, rt));
      started.push(await startNginx({ prefix: p, conf: join(p, 'nginx.conf'), pidFile: rt.pid, netns: r.serverNs }));
    }

    console.log(`${o.clients} installers in ${o.servers} racks, one ${o.mib} MiB image; node0's NIC ${o.backbone} Mbit/s, each rack link ${o.rack} Mbit/s (tbf)`);
    const perRack = net.racks.map((r) => Math.ceil((o.clients - r.index + 1) / o.servers));
    const bits = (b: number, mbit: number) => ((b * 8) / (mbit * 1e6)) * 1000;
    // Floors: the slowest link the bytes must cross, at line rate.
    const rackFloor = Math.max(...perRack.map((n) => bits(n * size, o.rack)));
    const directFloor = Math.max(bits(o.clients * size, o.backbone), rackFloor);

    console.log(`wave 1: every installer from node0 (floor ${s(directFloor)})…`);
    const direct = await wave(net, n0.accessLog, () => urlFor(`http://${plan.admin.ip}`, image), sha256);
    console.log(`wave 2: every installer from its rack's boot server, caches cold (floor ${s(rackFloor)})…`);
    const tiered = await wave(net, n0.accessLog, (k) => urlFor(`http://${net!.racks[k - 1]!.serverRack}`, image), sha256);
    // One installer alone from its server's cache: what a rack link delivers here, against its rate.
    const t0 = performance.now();
    const calib = await install(net, 1, urlFor(`http://${net.racks[0]!.serverRack}`, image), sha256, t0);
    const achieved = (size * 8) / (calib.ms / 1000) / 1e6;

    console.log('');
    console.log('| | time | line-rate floor | time ÷ floor | node0 egress (NIC counter) | node0 egress (HTTP body) | origin GETs |');
    console.log('|---|---|---|---|---|---|---|');
    console.log(`| node0 alone | ${s(direct.ms)} | ${s(directFloor)} | ${(direct.ms / directFloor).toFixed(2)} | ${MB(direct.node0Wire)} | ${MB(direct.node0Body)} | ${direct.node0Gets} |`);
    console.log(`| ${o.servers} boot servers | ${s(tiered.ms)} | ${s(rackFloor)} | ${(tiered.ms / rackFloor).toFixed(2)} | ${MB(tiered.node0Wire)} | ${MB(tiered.node0Body)} | ${tiered.node0Gets} |`);
    console.log('');
    console.log(`per rack through its server: ${tiered.rackMs.map((ms, i) => `rack${i + 1} ${perRack[i]} installers ${s(ms)}`).join(', ')}`);
    console.log(`one installer alone from a warm server: ${s(calib.ms)}, ${achieved.toFixed(1)} Mbit/s of image bytes on a ${o.rack} Mbit/s link (${((achieved / o.rack) * 100).toFixed(1)}%: TCP/IP and Ethernet headers)`);
    console.log(`speed-up through the servers: ${(direct.ms / tiered.ms).toFixed(2)}× (node0 alone ÷ boot servers)`);
    console.log('');
    const egressBody = tiered.node0Body / (o.servers * size);
    const egressWire = tiered.node0Wire / (o.servers * size);
    const timeRatio = tiered.ms / rackFloor;
    // Into run.ts's closing table with the other goals. "+ small files": this wave fetches the image only,
    // so 1% covers a retry's headers, never a second copy (which would be 1 + 1/S at least).
    recordRatio({ figure: 'boot servers: node0 egress ÷ (servers × image)', value: egressBody, goal: { op: '<=', value: 1.01 }, detail: `${MB(tiered.node0Body)} HTTP body (${egressWire.toFixed(3)}× by the NIC counter) / ${o.servers} × ${MB(size)}, ${o.clients} installers` });
    recordRatio({ figure: "boot servers: time ÷ their rack links' line-rate floor", value: timeRatio, goal: { op: '<=', value: 1.2 }, detail: `${s(tiered.ms)} / floor ${s(rackFloor)}, ${o.clients} installers in ${o.servers} racks` });
  } finally {
    await cleanup();
  }
}

await main().catch((e: unknown) => {
  console.error(`bench scale: ${e instanceof Error ? e.message : String(e)}`);
  process.exit(1);
});
