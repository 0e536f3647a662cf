import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { download, type DownloadOptions } from '../build/fetch/download.ts';
import { memoryLogger } from '../build/lib/log.ts';
import { startFileServer, type Behaviour, type FileServer } from './helpers/file-server.ts';
import { workspace } from './helpers/workspace.ts';

const FILE = randomBytes(3 * 1024 * 1024 + 123);
const SHA256 = createHash('sha256').update(FILE).digest('hex');
const SHA512 = createHash('sha512').update(FILE).digest('hex');

let ws: Awaited<ReturnType<typeof workspace>>;
let server: FileServer | undefined;
let log: ReturnType<typeof memoryLogger>;
let opts: DownloadOptions;

beforeEach(async () => {
  ws = await workspace('pc-download-');
  log = memoryLogger();
  opts = { cacheDir: join(ws.dir, 'cache'), log, retries: 2, backoffMs: 10, fetchTimeoutMs: 2000 };
});
afterEach(async () => {
  await server?.close();
  server = undefined;
  await ws.cleanup();
});

async function serve(behave?: (n: number) => Behaviour): Promise<FileServer> {
  server = await startFileServer(FILE, behave);
  return server;
}

/** The verified store holds nothing, not even a temp file. */
async function cacheStoreIsEmpty(): Promise<boolean> {
  for (const d of ['by-sha256', 'by-sha512']) {
    const dir = join(opts.cacheDir, d);
    if (existsSync(dir) && (await readdir(dir)).length) return false;
  }
  return true;
}

describe('download from a URL', () => {
  it('downloads, verifies and caches by digest; the second call is a cache hit', async () => {
    const s = await serve();
    const r = await download({ url: s.url }, { sha256: SHA256 }, opts);
    expect(r).toEqual({ path: join(opts.cacheDir, 'by-sha256', SHA256), fromCache: false, size: FILE.length, digest: `sha256:${SHA256}` });
    expect((await readFile(r.path)).equals(FILE)).toBe(true);
    expect(await readdir(join(opts.cacheDir, 'partial'))).toEqual([]);

    const again = await download({ url: s.url }, { sha256: SHA256 }, opts);
    expect(again.fromCache).toBe(true);
    expect(s.requests).toHaveLength(1);
  });

  it('caches by sha512 when only sha512 is given, and checks both when both are given', async () => {
    const s = await serve();
    const r = await download({ url: s.url }, { sha512: SHA512.toUpperCase() }, opts);
    expect(r.path).toBe(join(opts.cacheDir, 'by-sha512', SHA512));
    const bad = '0'.repeat(128);
    await expect(download({ url: s.url }, { sha256: SHA256, sha512: bad }, { ...opts, cacheDir: join(ws.dir, 'c2') })).rejects.toThrow(
      `expected sha512: ${bad}`,
    );
  });

  it('resumes a dropped connection with Range and If-Range', async () => {
    const s = await serve((n) => (n === 0 ? { dropAfter: 1_000_000 } : {}));
    const r = await download({ url: s.url }, { sha256: SHA256 }, opts);
    expect((await readFile(r.path)).equals(FILE)).toBe(true);
    expect(s.requests).toHaveLength(2);
    expect(s.requests[1]!.range).toMatch(/^bytes=\d+-$/);
    const from = Number(s.requests[1]!.range!.slice(6, -1));
    expect(from).toBeGreaterThan(0);
    expect(from).toBeLessThanOrEqual(1_000_000);
    expect(s.requests[1]!.ifRange).toBe('"v1"');
    expect(log.lines.join('\n')).toMatch(/resuming at/);
  });

  it('does not count attempts that made progress against the retries', async () => {
    // Drops every 1.1 MB: four attempts for a 3 MB file, with a single retry allowed.
    const s = await serve(() => ({ dropAfter: 1_100_000 }));
    const r = await download({ url: s.url }, { sha256: SHA256 }, { ...opts, retries: 1 });
    expect((await readFile(r.path)).equals(FILE)).toBe(true);
    expect(s.requests.length).toBeGreaterThanOrEqual(3);
    expect(log.lines.join('\n')).toMatch(/it made progress/);
  });

  it('restarts cleanly when the server ignores Range', async () => {
    const s = await serve((n) => (n === 0 ? { dropAfter: 1_000_000 } : { ignoreRange: true }));
    const r = await download({ url: s.url }, { sha256: SHA256 }, opts);
    expect((await readFile(r.path)).equals(FILE)).toBe(true);
    expect(s.requests[1]!.range).toBeDefined();
    expect(log.lines.join('\n')).toMatch(/sent the whole file instead of resuming/);
  });

  it('restarts when the file changed on the server (If-Range no longer matches)', async () => {
    const old = Buffer.from(FILE);
    old.fill(7, 0, 500_000);
    const s = await serve((n) => (n === 0 ? { body: old, etag: '"v0"', dropAfter: 400_000 } : {}));
    const r = await download({ url: s.url }, { sha256: SHA256 }, opts);
    expect((await readFile(r.path)).equals(FILE)).toBe(true);
    expect(s.requests[1]!.ifRange).toBe('"v0"');
  });

  it('resumes across runs from the kept partial file', async () => {
    const first = await serve((n) => (n === 0 ? { dropAfter: 1_500_000 } : { status: 503 }));
    await expect(download({ url: first.url }, { sha256: SHA256 }, { ...opts, retries: 0 })).rejects.toThrow(/kept in .*partial/);
    expect(await cacheStoreIsEmpty()).toBe(true);
    const url = first.url;
    await first.close();
    // Same port is not guaranteed: the partial is tied to the URL, so serve the same URL path on a new port
    // and point the kept metadata at it.
    const s = await serve();
    const metaPath = join(opts.cacheDir, 'partial', `sha256-${SHA256}.part.json`);
    const meta = JSON.parse(await readFile(metaPath, 'utf8'));
    expect(meta.url).toBe(url);
    await writeFile(metaPath, JSON.stringify({ ...meta, url: s.url }));
    const r = await download({ url: s.url }, { sha256: SHA256 }, opts);
    expect((await readFile(r.path)).equals(FILE)).toBe(true);
    expect(s.requests).toHaveLength(1);
    expect(s.requests[0]!.range).toMatch(/^bytes=[1-9]\d*-$/);
  });

  it('follows a mirror redirect, and resumes through it', async () => {
    const s = await serve((n) => (n % 2 === 0 ? { redirectTo: '/mirror/sysrcd.iso' } : n === 1 ? { dropAfter: 1_000_000 } : {}));
    const r = await download({ url: s.url }, { sha256: SHA256 }, opts);
    expect((await readFile(r.path)).equals(FILE)).toBe(true);
    expect(s.requests).toHaveLength(4);
    expect(s.requests[3]!.range).toMatch(/^bytes=[1-9]\d*-$/);
  });

  it('catches an early close of a chunked body (no Content-Length) and resumes it', async () => {
    const s = await serve((n) => (n === 0 ? { noLength: true, truncateAt: 2_000_000 } : n === 1 ? { status: 503 } : { noLength: true }));
    await expect(download({ url: s.url }, { sha256: SHA256 }, { ...opts, retries: 0 })).rejects.toThrow(/HTTP 503 .*\n  1\.9 MiB kept/);
    expect(log.lines.join('\n')).toMatch(/connection lost after 1\.9 MiB \(other side closed/);
    const r = await download({ url: s.url }, { sha256: SHA256 }, opts);
    expect((await readFile(r.path)).equals(FILE)).toBe(true);
    expect(s.requests[2]!.range).toBe('bytes=2000000-');
  });

  it('is byte-exact through many reused write batches, across a resume', async () => {
    // 40 MiB: more than the sink's 16 x 1 MiB batches, so batches are reused while others are in flight.
    const big = randomBytes(40 << 20);
    const sha = createHash('sha256').update(big).digest('hex');
    server = await startFileServer(big, (n) => (n === 0 ? { dropAfter: (17 << 20) + 12345 } : {}));
    const r = await download({ url: server.url }, { sha256: sha }, opts);
    expect(r.size).toBe(big.length);
    expect((await readFile(r.path)).equals(big)).toBe(true);
    expect(server.requests[1]!.range).toMatch(/^bytes=[1-9]\d*-$/);
  });

  it('retries a 503 with backoff', async () => {
    const s = await serve((n) => (n < 2 ? { status: 503 } : {}));
    const r = await download({ url: s.url }, { sha256: SHA256 }, opts);
    expect(r.size).toBe(FILE.length);
    expect(s.requests).toHaveLength(3);
    expect(log.lines.filter((l) => l.includes('HTTP 503'))).toHaveLength(2);
  });

  it('fails clearly on a wrong checksum, deleting the bad file', async () => {
    const s = await serve();
    const wrong = 'ab'.repeat(32);
    const err = await download({ url: s.url }, { sha256: wrong }, opts).catch((e: Error) => e);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toContain(`checksum mismatch for ${s.url}`);
    expect((err as Error).message).toContain(`expected sha256: ${wrong}`);
    expect((err as Error).message).toContain(`actual   sha256: ${SHA256}`);
    expect(await cacheStoreIsEmpty()).toBe(true);
    expect(await readdir(join(opts.cacheDir, 'partial'))).toEqual([]);
    expect(s.requests).toHaveLength(1);
  });

  it('fails at once on a 404, naming status and URL', async () => {
    const s = await serve(() => ({ status: 404 }));
    await expect(download({ url: s.url }, { sha256: SHA256 }, opts)).rejects.toThrow(`HTTP 404 Not Found for ${s.url}`);
    expect(s.requests).toHaveLength(1);
    expect(await cacheStoreIsEmpty()).toBe(true);
  });

  it('gives up on a connection that always drops, after the retries', async () => {
    // Ignoring Range makes every attempt start over, so no attempt makes it to the end.
    const s = await serve(() => ({ resetAfter: 100_000, ignoreRange: true }));
    const err = (await download({ url: s.url }, { sha256: SHA256 }, opts).catch((e: Error) => e)) as Error;
    expect(err.message).toMatch(/failed after 3 attempts: connection lost after 0\.\d of 3\.0 MiB \((read )?ECONNRESET\)/);
    expect(s.requests).toHaveLength(3);
    expect(await cacheStoreIsEmpty()).toBe(true);
  });

  it('reports a truncated body (short of Content-Length)', async () => {
    const s = await serve(() => ({ truncateAt: 2_000_000, ignoreRange: true }));
    const err = (await download({ url: s.url }, { sha256: SHA256 }, { ...opts, retries: 0 }).catch((e: Error) => e)) as Error;
    expect(err.message).toMatch(/truncated body: got \d+ of 3145851 bytes/);
    expect(await cacheStoreIsEmpty()).toBe(true);
  });

  it('times out a stalled server and says so', async () => {
    const s = await serve(() => ({ stall: true }));
    const err = (await download({ url: s.url }, { sha256: SHA256 }, { ...opts, retries: 1, fetchTimeoutMs: 200 }).catch((e: Error) => e)) as Error;
    expect(err.message).toMatch(/failed after 2 attempts: .*(timeout|Timeout)/);
    expect(await cacheStoreIsEmpty()).toBe(true);
  });

  it('refuses to share a partial file with a live download, and takes over a dead one', async () => {
    const s = await serve();
    const partial = join(opts.cacheDir, 'partial');
    await mkdir(partial, { recursive: true });
    const lock = join(partial, `sha256-${SHA256}.part.lock`);
    await writeFile(lock, String(process.pid));
    await expect(download({ url: s.url }, { sha256: SHA256 }, opts)).rejects.toThrow(`another process (pid ${process.pid}) is downloading the same file`);
    expect(s.requests).toHaveLength(0);
    // A pid from a run that died: pid_max is at most 2^22, so this one cannot be alive.
    await writeFile(lock, String(2 ** 22 + 1));
    expect((await download({ url: s.url }, { sha256: SHA256 }, opts)).size).toBe(FILE.length);
    expect(existsSync(lock)).toBe(false);
  });

  it('re-fetches a cache entry that no longer matches its digest', async () => {
    const s = await serve();
    const r = await download({ url: s.url }, { sha256: SHA256 }, opts);
    await writeFile(r.path, 'tampered');
    const again = await download({ url: s.url }, { sha256: SHA256 }, opts);
    expect(again.fromCache).toBe(false);
    expect((await readFile(again.path)).equals(FILE)).toBe(true);
    expect(log.lines.join('\n')).toMatch(/no longer matches its digest/);
  });
});

describe('download from a local path', () => {
  it('hashes and caches a local file (hard link when possible)', async () => {
    const src = join(ws.dir, 'systemrescue.iso');
    await writeFile(src, FILE);
    const r = await download({ path: src }, { sha256: SHA256 }, opts);
    expect(r).toMatchObject({ path: join(opts.cacheDir, 'by-sha256', SHA256), fromCache: false, size: FILE.length });
    expect((await stat(r.path)).ino).toBe((await stat(src)).ino);
    expect((await download({ path: src }, { sha256: SHA256 }, opts)).fromCache).toBe(true);
  });

  it('refuses a local file with the wrong checksum and leaves it alone', async () => {
    const src = join(ws.dir, 'systemrescue.iso');
    await writeFile(src, FILE);
    await expect(download({ path: src }, { sha512: 'c'.repeat(128) }, opts)).rejects.toThrow(`actual   sha512: ${SHA512}`);
    expect(await cacheStoreIsEmpty()).toBe(true);
    expect((await readFile(src)).equals(FILE)).toBe(true);
  });

  it('names a missing local file', async () => {
    await expect(download({ path: join(ws.dir, 'nope.iso') }, { sha256: SHA256 }, opts)).rejects.toThrow(/ISO not found: .*nope\.iso/);
  });
});

describe('download refuses a bad request before any I/O', () => {
  it('requires a checksum', async () => {
    await expect(download({ url: 'http://127.0.0.1:9/x.iso' }, {}, opts)).rejects.toThrow(/no sha256 or sha512 given .*never boots unverified bytes/);
  });
  it('requires a well-formed digest', async () => {
    await expect(download({ url: 'http://127.0.0.1:9/x.iso' }, { sha256: 'abc' }, opts)).rejects.toThrow(/sha256 .* is not a sha256 hex digest/);
  });
  it('requires exactly one source', async () => {
    await expect(download({ url: 'http://127.0.0.1:9/x.iso', path: '/x.iso' }, { sha256: SHA256 }, opts)).rejects.toThrow(/exactly one of url or path .*both/);
    await expect(download({}, { sha256: SHA256 }, opts)).rejects.toThrow(/exactly one of url or path .*neither/);
    expect(existsSync(opts.cacheDir)).toBe(false);
  });
});
