/**
 * Download throughput of download() vs `curl -o` for the same file from the same loopback server.
 * The server runs in its own process (this file with --serve) so neither client shares an event loop
 * with it. Rounds alternate the two clients; the median of each is compared. Goal: ratio ≥ 0.9.
 *
 *   node --import tsx bench/download.ts [--mib 200] [--rounds 5]
 */
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdtemp, open, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { download } from '../build/fetch/download.ts';
import { memoryLogger } from '../build/lib/log.ts';
import { startFileServer } from '../test/helpers/file-server.ts';

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}

async function serveMode(file: string): Promise<void> {
  const { size } = await stat(file);
  const server = await startFileServer({ path: file, size });
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
  const dir = await mkdtemp(join(tmpdir(), 'pc-bench-download-'));
  const file = join(dir, 'source.iso');
  const sha256 = await makeFile(file, mib);
  // Started once the file exists: it reads the size once.
  const server = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), '--serve', file], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    const url = await new Promise<string>((resolve, reject) => {
      createInterface({ input: server.stdout! }).once('line', resolve);
      server.once('exit', (code) => reject(new Error(`server exited with ${code}`)));
    });
    const curlTimes: number[] = [];
    const ourTimes: number[] = [];
    for (let r = 0; r < rounds; r++) {
      const curlOut = join(dir, 'curl.out');
      let t = performance.now();
      const c = spawnSync('curl', ['--silent', '--show-error', '--fail', '--output', curlOut, url]);
      if (c.status !== 0) throw new Error(`curl failed: ${c.stderr}`);
      curlTimes.push(performance.now() - t);
      await rm(curlOut);

      const cacheDir = join(dir, `cache-${r}`);
      t = performance.now();
      const res = await download({ url }, { sha256 }, { cacheDir, log: memoryLogger() });
      ourTimes.push(performance.now() - t);
      if (res.size !== mib << 20) throw new Error(`download() returned ${res.size} bytes`);
      await rm(cacheDir, { recursive: true });
    }
    const rate = (ms: number) => (mib / (ms / 1000)).toFixed(0);
    const ratio = median(curlTimes) / median(ourTimes);
    console.log(`file: ${mib} MiB from ${url}, ${rounds} rounds (median)`);
    console.log(`curl -o:     ${median(curlTimes).toFixed(0)} ms  (${rate(median(curlTimes))} MiB/s)  all: ${curlTimes.map((x) => x.toFixed(0)).join(', ')}`);
    console.log(`download():  ${median(ourTimes).toFixed(0)} ms  (${rate(median(ourTimes))} MiB/s, sha256 verified while streaming)  all: ${ourTimes.map((x) => x.toFixed(0)).join(', ')}`);
    console.log(`throughput ratio download()/curl: ${ratio.toFixed(2)}x  (goal >= 0.90x) ${ratio >= 0.9 ? 'OK' : 'BELOW GOAL'}`);
  } finally {
    server.kill('SIGTERM');
    await rm(dir, { recursive: true, force: true });
  }
}

if (process.argv[2] === '--serve') await serveMode(process.argv[3]!);
else await main();
