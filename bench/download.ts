/**
 * Download throughput of download() vs `curl | tee file | sha256sum` (the honest floor: it also writes the
 * file and hashes every byte, as download() does) for the same file from the same loopback server, with
 * bare `curl -o` beside them for reference. The server runs in its own process (this file with --serve)
 * so no client shares an event loop with it. Rounds alternate the clients; the medians are compared.
 * Goal: download() ≥ 0.9 × the floor's throughput.
 *
 *   node --import tsx bench/download.ts [--mib 200] [--rounds 5] [--rate MiB/s]
 */
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdtemp, open, rm, stat } from 'node:fs/promises';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { download } from '../build/fetch/download.ts';
import { memoryLogger } from '../build/lib/log.ts';
import { startFileServer } from '../test/helpers/file-server.ts';
import { recordRatio } from './lib/ratios.ts';

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}

async function serveMode(file: string, rateMiB: number): Promise<void> {
  const { size } = await stat(file);
  const server = await startFileServer({ path: file, size }, () => (rateMiB > 0 ? { rate: rateMiB * 1048576 } : {}));
  console.log(server.url);
  process.on('SIGTERM', () => void server.close().then(() => process.exit(0)));
}

async function makeFile(path: string, mib: number): Promise<string> {
  // Pseudo-random so nothing along the way can compress or dedupe it; one 1 MiB block written repeatedly
  // with its index stamped in, so it is fast to make.
  const block = Buffer.alloc(1 << 20);
  for (let i = 0; i < block.length; i += 4) block.writeUInt32LE((Math.imul(i, 2654435761) ^ 0x9e3779b9) >>> 0, i);
  const fh = await open(path, 'w');
  for (let i = 0; i < mib; i++) {
    block.writeUInt32LE(i, 0);
    await fh.write(block);
  }
  await fh.close();
  const h = createHash('sha256');
  for await (const c of createReadStream(path, { highWaterMark: 1 << 20 })) h.update(c as Buffer);
  return h.digest('hex');
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function main(): Promise<void> {
  const mib = arg('mib', 200);
  const rounds = arg('rounds', 5);
  // 0: as fast as loopback goes (CPU-bound); e.g. 112 paces the server like a 1 GbE link.
  const rateMiB = arg('rate', 0);
  const dir = await mkdtemp(join(tmpdir(), 'pc-bench-download-'));
  const file = join(dir, 'source.iso');
  const sha256 = await makeFile(file, mib);
  // Started once the file exists: it reads the size once.
  const server = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), '--serve', file, String(rateMiB)], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    const url = await new Promise<string>((resolve, reject) => {
      createInterface({ input: server.stdout! }).once('line', resolve);
      server.once('exit', (code) => reject(new Error(`server exited with ${code}`)));
    });
    const curl = { ms: [] as number[], cpu: [] as number[] };
    const ours = { ms: [] as number[], cpu: [] as number[] };
    const floor = { ms: [] as number[] };
    // A warm-up round of each: undici compiles its WASM parser on first use, the page cache fills.
    for (let r = -1; r < rounds; r++) {
      const curlOut = join(dir, 'curl.out');
      let t = performance.now();
      // /usr/bin/time reports curl's own CPU seconds (user + system) on stderr.
      const c = spawnSync('/usr/bin/time', ['-f', '%U %S', 'curl', '--silent', '--show-error', '--fail', '--output', curlOut, url], { encoding: 'utf8' });
      if (c.status !== 0) throw new Error(`curl failed: ${c.stderr}`);
      const curlMs = performance.now() - t;
      const [u, sy] = c.stderr.trim().split('\n').pop()!.split(' ').map(Number);
      await rm(curlOut);

      const teeOut = join(dir, 'tee.out');
      t = performance.now();
      const f = spawnSync('bash', ['-c', 'set -o pipefail; curl --silent --show-error --fail -- "$1" | tee -- "$2" | sha256sum', 'floor', url, teeOut], { encoding: 'utf8' });
      if (f.status !== 0) throw new Error(`curl | tee | sha256sum failed: ${f.stderr}`);
      const floorMs = performance.now() - t;
      if (f.stdout.split(' ')[0] !== sha256) throw new Error(`curl | tee | sha256sum computed ${f.stdout.trim()}, the file is ${sha256}`);
      await rm(teeOut);

      const cacheDir = join(dir, `cache-${r + 1}`);
      const cpu0 = process.cpuUsage();
      t = performance.now();
      const res = await download({ url }, { sha256 }, { cacheDir, log: memoryLogger() });
      const ourMs = performance.now() - t;
      const cpu = process.cpuUsage(cpu0);
      if (res.size !== mib << 20) throw new Error(`download() returned ${res.size} bytes`);
      await rm(cacheDir, { recursive: true });
      if (r < 0) continue;
      curl.ms.push(curlMs);
      floor.ms.push(floorMs);
      curl.cpu.push((u! + sy!) * 1000);
      ours.ms.push(ourMs);
      ours.cpu.push((cpu.user + cpu.system) / 1000);
    }
    const rate = (ms: number) => (mib / (ms / 1000)).toFixed(0);
    const list = (xs: number[]) => xs.map((x) => x.toFixed(0)).join(', ');
    const ratio = median(curl.ms) / median(ours.ms);
    const best = Math.min(...curl.ms) / Math.min(...ours.ms);
    console.log(`file: ${mib} MiB from ${url}${rateMiB ? ` paced at ${rateMiB} MiB/s` : ''}, ${rounds} rounds after a warm-up; load average ${loadavg()[0]!.toFixed(1)} on ${availableParallelism()} CPUs`);
    console.log(`curl -o:     median ${median(curl.ms).toFixed(0)} ms (${rate(median(curl.ms))} MiB/s), best ${Math.min(...curl.ms).toFixed(0)} ms; CPU median ${median(curl.cpu).toFixed(0)} ms  all: ${list(curl.ms)}`);
    console.log(`download():  median ${median(ours.ms).toFixed(0)} ms (${rate(median(ours.ms))} MiB/s), best ${Math.min(...ours.ms).toFixed(0)} ms; CPU median ${median(ours.cpu).toFixed(0)} ms (sha256 while streaming)  all: ${list(ours.ms)}`);
    console.log(`curl | tee | sha256sum: median ${median(floor.ms).toFixed(0)} ms (${rate(median(floor.ms))} MiB/s), best ${Math.min(...floor.ms).toFixed(0)} ms  all: ${list(floor.ms)}`);
    console.log(`throughput ratio download()/bare curl: median ${ratio.toFixed(2)}x, best ${best.toFixed(2)}x (for reference: bare curl neither hashes nor is told the digest)`);
    recordRatio({
      figure: 'download() vs curl | tee file | sha256sum (throughput)',
      value: median(floor.ms) / median(ours.ms),
      goal: { op: '>=', value: 0.9 },
      detail: `download() ${median(ours.ms).toFixed(0)} ms / floor ${median(floor.ms).toFixed(0)} ms for ${mib} MiB over loopback, median of ${rounds}`,
    });
  } finally {
    server.kill('SIGTERM');
    await rm(dir, { recursive: true, force: true });
  }
}

if (process.argv[2] === '--serve') await serveMode(process.argv[3]!, Number(process.argv[4] ?? 0));
else await main();
