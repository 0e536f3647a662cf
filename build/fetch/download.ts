/**
 * Fetches a large file (the SystemRescue ISO) into a content-addressed cache.
 *
 * Cache layout under cacheDir:
 *   by-sha256/<hex> or by-sha512/<hex>   verified files only, moved in by rename
 *   partial/<algo>-<hex>.part            bytes of an interrupted download, kept for resuming
 *   partial/<algo>-<hex>.part.json       validators of that partial (URL, ETag, Last-Modified, length)
 */
import { copyFile, link, mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Agent, interceptors, request, type Dispatcher } from 'undici';
import { StageError } from '../lib/errors.ts';
import type { Logger } from '../lib/log.ts';
import { hashFile, isHexDigest } from './digest.ts';
import { startHashingSink, SinkError, type HashingSink } from './sink.ts';
import { pidAlive } from '../lib/process.ts';
import { tempPathFor } from '../lib/atomic.ts';

export interface DownloadSource {
  url?: string;
  path?: string;
}
export interface DownloadExpect {
  sha256?: string;
  sha512?: string;
}
export interface DownloadOptions {
  cacheDir: string;
  log: Logger;
  /** Attempts after the first one for transient failures (network, 5xx, truncation). Default 4. */
  retries?: number;
  /** First retry delay; doubles each time. Default 1000. */
  backoffMs?: number;
  /** Connect, response-headers and body-idle timeout. Default 30000. */
  fetchTimeoutMs?: number;
}
export interface DownloadResult {
  /** The verified file inside the cache. */
  path: string;
  fromCache: boolean;
  size: number;
  /** "<algo>:<hex>" of the digest that names the cache entry, e.g. "sha256:9f86…". */
  digest: string;
}

type Algo = 'sha256' | 'sha512';
interface Expected {
  /** Names the cache entry: sha256 when given, else sha512. */
  key: { algo: Algo; hex: string };
  /** Every digest the spec gave; all are checked. */
  all: { algo: Algo; hex: string }[];
}

const STAGE = 'fetch';

export async function download(source: DownloadSource, expect: DownloadExpect, opts: DownloadOptions): Promise<DownloadResult> {
  const want = expectedDigests(expect, source);
  const finalPath = join(opts.cacheDir, `by-${want.key.algo}`, want.key.hex);
  const digest = `${want.key.algo}:${want.key.hex}`;

  const cached = await verifyCached(finalPath, want, opts.log);
  if (cached !== null) return { path: finalPath, fromCache: true, size: cached, digest };

  await mkdir(join(opts.cacheDir, `by-${want.key.algo}`), { recursive: true });
  const size = source.path !== undefined ? await ingestLocal(source.path, finalPath, want, opts.log) : await fetchRemote(source.url!, finalPath, want, opts);
  return { path: finalPath, fromCache: false, size, digest };
}

function expectedDigests(expect: DownloadExpect, source: DownloadSource): Expected {
  const where = source.url ?? source.path ?? '(no source)';
  if ((source.url === undefined) === (source.path === undefined))
    throw new StageError(STAGE, `give exactly one of url or path for the ISO (got ${source.url === undefined ? 'neither' : 'both'})`);
  const all: Expected['all'] = [];
  for (const algo of ['sha256', 'sha512'] as const) {
    const value = expect[algo];
    if (value === undefined) continue;
    const hex = value.trim().toLowerCase().replace(/^sha(256|512):/, '');
    if (!isHexDigest(algo, hex)) throw new StageError(STAGE, `${algo} for ${where} is not a ${algo} hex digest (got "${value}")`);
    all.push({ algo, hex });
  }
  if (all.length === 0)
    throw new StageError(STAGE, `no sha256 or sha512 given for ${where}: portacluster never boots unverified bytes\n  hint: add the checksum published next to the ISO to the spec`);
  return { key: all[0]!, all };
}

function mismatches(want: Expected, actual: Record<Algo, string>): string[] {
  return want.all
    .filter((w) => actual[w.algo] !== w.hex)
    .map((w) => `  expected ${w.algo}: ${w.hex}\n  actual   ${w.algo}: ${actual[w.algo]}`);
}

/** A cache entry is re-hashed before use: a hard-linked local ISO may have been changed in place since. */
async function verifyCached(path: string, want: Expected, log: Logger): Promise<number | null> {
  try {
    await stat(path);
  } catch {
    return null;
  }
  const { size, hex } = await hashFile(path, want.all.map((w) => w.algo), { onBytes: (n) => log.progress('verify cached ISO', n) });
  if (mismatches(want, hex).length === 0) return size;
  log.warn(`cached ${path} no longer matches its digest; fetching it again`);
  await rm(path, { force: true });
  return null;
}

async function ingestLocal(src: string, finalPath: string, want: Expected, log: Logger): Promise<number> {
  try {
    await stat(src);
  } catch {
    throw new StageError(STAGE, `ISO not found: ${src}`);
  }
  const tmp = tempPathFor(finalPath);
  // Hash the cache's own copy (a link shares the inode), so what we verify is what we keep.
  try {
    await link(src, tmp);
  } catch {
    await copyFile(src, tmp);
  }
  try {
    const { size, hex } = await hashFile(tmp, want.all.map((w) => w.algo), { onBytes: (n) => log.progress(`verify ${basename(src)}`, n) });
    const bad = mismatches(want, hex);
    if (bad.length) throw new StageError(STAGE, `checksum mismatch for ${src}\n${bad.join('\n')}`);
    await rename(tmp, finalPath);
    log.info(`cached ${src} as ${finalPath}`);
    return size;
  } finally {
    await rm(tmp, { force: true });
  }
}

interface PartialMeta {
  url: string;
  etag?: string;
  lastModified?: string;
  total?: number;
}

/** Growth of the partial file that makes a failed attempt not count as a retry. */
const PROGRESS_BYTES = 1 << 20;

/** Failures worth another attempt (network, 5xx, truncation); anything else is thrown at once. */
class Transient extends Error {}

async function fetchRemote(url: string, finalPath: string, want: Expected, opts: DownloadOptions): Promise<number> {
  const retries = opts.retries ?? 4;
  const backoffMs = opts.backoffMs ?? 1000;
  const timeout = opts.fetchTimeoutMs ?? 30_000;
  const partDir = join(opts.cacheDir, 'partial');
  await mkdir(partDir, { recursive: true });
  const part = join(partDir, `${want.key.algo}-${want.key.hex}.part`);
  await takeLock(`${part}.lock`);
  const agent = new Agent({ connect: { timeout }, headersTimeout: timeout, bodyTimeout: timeout });
  const dispatcher = agent.compose(interceptors.redirect({ maxRedirections: 5 }));
  let cleanRetryUsed = false;
  // Retries are counted against attempts that did not grow the partial file: a link that drops every
  // few hundred MB still gets the ISO, a server that always fails early does not keep us forever.
  let stalled = 0;
  let best = await partialSize(part);
  try {
    for (let attempt = 0; ; attempt++) {
      try {
        const { resumed, size, hex } = await fetchOnce(url, part, want.all.map((w) => w.algo), dispatcher, opts.log);
        const bad = mismatches(want, hex);
        if (bad.length) {
          await discardPartial(part);
          // Bytes glued from two versions of a file served without validators: one clean try settles it.
          if (resumed && !cleanRetryUsed) {
            cleanRetryUsed = true;
            opts.log.warn(`resumed download of ${url} does not match its checksum; downloading it again from the start`);
            continue;
          }
          throw new StageError(STAGE, `checksum mismatch for ${url}\n${bad.join('\n')}\n  the downloaded file was deleted`);
        }
        await rename(part, finalPath);
        await rm(`${part}.json`, { force: true });
        opts.log.info(`downloaded ${url} (${mib(size)} MiB), verified ${want.all.map((w) => w.algo).join(' + ')}`);
        return size;
      } catch (err) {
        if (!(err instanceof Transient)) throw err;
        const kept = await partialSize(part);
        if (kept >= best + PROGRESS_BYTES) {
          best = kept;
          stalled = 0;
        } else stalled++;
        if (stalled > retries) {
          throw new StageError(
            STAGE,
            `download of ${url} failed after ${attempt + 1} attempt${attempt ? 's' : ''}: ${err.message}` +
              (kept ? `\n  ${mib(kept)} MiB kept in ${part}; the next run resumes from there` : ''),
          );
        }
        const delay = stalled === 0 ? backoffMs : backoffMs * 2 ** (stalled - 1);
        opts.log.warn(`${url}: ${err.message}; retrying in ${(delay / 1000).toFixed(1)} s (${stalled ? `retry ${stalled} of ${retries}` : 'it made progress'})`);
        await sleep(delay);
      }
    }
  } finally {
    await agent.close();
    await rm(`${part}.lock`, { force: true });
  }
}

/** Two builds appending to one partial file would corrupt it: the second one stops and says who holds it. */
async function takeLock(lock: string): Promise<void> {
  for (let tries = 0; ; tries++) {
    try {
      await writeFile(lock, String(process.pid), { flag: 'wx' });
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || tries > 0) throw err;
    }
    const pid = Number((await readFile(lock, 'utf8').catch(() => '')).trim());
    if (Number.isInteger(pid) && pid > 0 && pidAlive(pid))
      throw new StageError(STAGE, `another process (pid ${pid}) is downloading the same file; wait for it, or remove ${lock} if it is gone`);
    await rm(lock, { force: true });
  }
}

interface Fetched {
  resumed: boolean;
  size: number;
  hex: Record<Algo, string>;
}

/** One HTTP request; the digests are computed while the bytes stream in (plus the kept prefix on a resume). */
async function fetchOnce(url: string, part: string, algos: Algo[], dispatcher: Dispatcher, log: Logger): Promise<Fetched> {
  // Booting the worker overlaps the request instead of following it.
  const sink = startHashingSink(algos);
  try {
    return await fetchInto(sink, url, part, algos, dispatcher, log);
  } finally {
    await sink.close();
  }
}

async function fetchInto(sink: HashingSink, url: string, part: string, algos: Algo[], dispatcher: Dispatcher, log: Logger): Promise<Fetched> {
  let meta = await readMeta(part);
  let have = meta?.url === url ? await partialSize(part) : 0;
  if (have === 0 || !meta || meta.url !== url) {
    await discardPartial(part);
    meta = null;
    have = 0;
  }
  // Already complete (a crash between the last byte and the rename): just verify it.
  if (meta?.total !== undefined && have === meta.total) return { resumed: true, ...(await hashFile(part, algos)) };

  const headers: Record<string, string> = { 'accept-encoding': 'identity' };
  if (have > 0 && meta) {
    headers.range = `bytes=${have}-`;
    // If-Range needs a strong validator; without one, Content-Range's total is the only check.
    const validator = meta.etag && !meta.etag.startsWith('W/') ? meta.etag : meta.lastModified;
    if (validator) headers['if-range'] = validator;
  }

  let res: Dispatcher.ResponseData;
  try {
    res = await request(url, { dispatcher, headers });
  } catch (err) {
    throw new Transient(`request failed (${describe(err)})`);
  }
  const status = res.statusCode;
  let offset = 0;
  let total: number | undefined;
  if (status === 206 && have > 0 && meta) {
    const range = parseContentRange(header(res.headers, 'content-range'));
    if (!range || range.start !== have || (meta.total !== undefined && range.total !== meta.total)) {
      dropBody(res);
      await discardPartial(part);
      throw new Transient(`server answered the resume with an unexpected range (${header(res.headers, 'content-range') ?? 'none'}); restarting from 0`);
    }
    offset = have;
    total = range.total ?? meta.total;
  } else if (status === 200) {
    // A server that ignores Range, or an If-Range that no longer matches: the full body follows.
    if (have > 0) log.info(`${url}: server sent the whole file instead of resuming at ${mib(have)} MiB; restarting`);
    const len = header(res.headers, 'content-length');
    total = len !== undefined && /^\d+$/.test(len) ? Number(len) : undefined;
    meta = { url, etag: header(res.headers, 'etag'), lastModified: header(res.headers, 'last-modified'), total };
    await writeFile(`${part}.json`, JSON.stringify(meta));
  } else {
    dropBody(res);
    if (status === 416) {
      await discardPartial(part);
      throw new Transient(`HTTP 416 Range Not Satisfiable for ${url}; restarting from 0`);
    }
    const what = `HTTP ${status}${statusText(status)} for ${url}`;
    if (status >= 500 || status === 408 || status === 429) throw new Transient(what);
    throw new StageError(STAGE, what);
  }

  if (offset > 0) log.info(`${url}: resuming at ${mib(offset)} MiB`);
  try {
    await sink.open(part, { prefixBytes: offset });
  } catch (err) {
    dropBody(res);
    throw new StageError(STAGE, (err as Error).message);
  }
  let done = offset;
  const label = `download ${basename(new URL(url).pathname) || url}`;
  try {
    for await (const chunk of res.body as AsyncIterable<Buffer>) {
      done += chunk.length;
      const wait = sink.write(chunk);
      if (wait) await wait;
      log.progress(label, done, total);
    }
  } catch (err) {
    if (err instanceof SinkError) {
      dropBody(res);
      throw new StageError(STAGE, err.message);
    }
    // Keep what arrived: the next attempt resumes after it.
    await sink.finish().catch(() => {});
    // undici reports a clean close before Content-Length was reached as UND_ERR_SOCKET "other side closed".
    if (total !== undefined && (err as { code?: string }).code === 'UND_ERR_SOCKET')
      throw new Transient(`truncated body: got ${done} of ${total} bytes (Content-Length mismatch: the server closed the connection early)`);
    throw new Transient(`connection lost after ${mib(done)}${total ? ` of ${mib(total)}` : ''} MiB (${describe(err)})`);
  }
  let result: { size: number; hex: Record<Algo, string> };
  try {
    result = await sink.finish();
  } catch (err) {
    throw new StageError(STAGE, (err as Error).message);
  }
  if (total !== undefined && done !== total) throw new Transient(`truncated body: got ${done} of ${total} bytes (Content-Length mismatch)`);
  return { resumed: offset > 0, ...result };
}

/** Destroying an undici body emits an AbortError: swallow it, the body is unwanted. */
function dropBody(res: Dispatcher.ResponseData): void {
  res.body.on('error', () => {});
  res.body.destroy();
}

function parseContentRange(value: string | undefined): { start: number; end: number; total?: number } | null {
  const m = value?.match(/^bytes (\d+)-(\d+)\/(\d+|\*)$/);
  if (!m) return null;
  return { start: Number(m[1]), end: Number(m[2]), total: m[3] === '*' ? undefined : Number(m[3]) };
}

function header(headers: Dispatcher.ResponseData['headers'], name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v[0] : v;
}

async function readMeta(part: string): Promise<PartialMeta | null> {
  try {
    return JSON.parse(await readFile(`${part}.json`, 'utf8')) as PartialMeta;
  } catch {
    return null;
  }
}

async function partialSize(part: string): Promise<number> {
  try {
    return (await stat(part)).size;
  } catch {
    return 0;
  }
}

async function discardPartial(part: string): Promise<void> {
  await rm(part, { force: true });
  await rm(`${part}.json`, { force: true });
}

function describe(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as { code?: string }).code;
    return code && !err.message.includes(code) ? `${err.message}, ${code}` : err.message;
  }
  return String(err);
}

function statusText(status: number): string {
  const known: Record<number, string> = { 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found', 410: 'Gone', 500: 'Internal Server Error', 502: 'Bad Gateway', 503: 'Service Unavailable' };
  return known[status] ? ` ${known[status]}` : '';
}

const mib = (n: number) => (n / 1048576).toFixed(1);

