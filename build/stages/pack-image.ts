/**
 * Stage: pack a root tree into the golden tarball — faithful (owners, modes, links, hard links, device
 * nodes, xattrs incl. file capabilities, ACLs) and deterministic (same tree, same bytes).
 *
 * tar's output goes straight into zstd through an OS pipe, and zstd writes the file itself; Node hashes
 * the file behind it as it grows, from the page cache. Passing zstd's output through Node to hash it on the
 * way cost more (bench/pack.ts, 703 MB tree, quiet: 2.21 s against 1.80 s for `tar | zstd -T0`, 0.82×), and
 * so did hashing the finished file (0.15 s more). This is the one stage that does not use run(): run()
 * collects output into strings and cannot stream a pipeline.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { constants, copyFile, mkdir, open, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { cachedBuild } from '../image/cache.ts';
import type { BootstrappedImage, PackedImage } from '../image/types.ts';
import { CommandError, HostToolError, StageError, tail } from '../lib/errors.ts';
import { insideDir } from '../lib/inside-dir.ts';
import type { Logger } from '../lib/log.ts';
import { capture, commandLine } from '../lib/run.ts';
import { hashInputs, sha256Appended } from '../lib/hash.ts';
import { REQUIREMENTS, type Requirement, type StageNeeds } from '../lib/host.ts';
import { atomicWrite, replaceAtomically, tempPathFor } from '../lib/atomic.ts';

/** The host tools this stage runs. */
export const needs: StageNeeds[] = [{ stage: 'pack-image', needs: ['tar', 'zstd'] }];

export interface PackOptions {
  outDir: string;
  name: string;
  sourceDateEpoch: number;
  /** zstd level: the plan's image.zstdLevel (its default is the schema's). */
  zstdLevel: number;
  log: Logger;
}

export function tarArgv(rootDir: string, sourceDateEpoch: number): string[] {
  return [
    'tar',
    '--create',
    '--file=-',
    `--directory=${rootDir}`,
    // pax: the only format that carries xattrs, ACLs, long names and large ids without loss.
    '--format=pax',
    // Entries in byte order of their names, not in readdir order (which differs between filesystems).
    '--sort=name',
    // Owners as numbers only: the build host's user names mean nothing in the image.
    '--numeric-owner',
    // File capabilities (security.capability, e.g. cap_net_raw on ping) and every other xattr.
    '--xattrs',
    '--xattrs-include=*',
    '--acls',
    // Nothing newer than SOURCE_DATE_EPOCH: files made during the build get the same mtime every time.
    `--mtime=@${sourceDateEpoch}`,
    '--clamp-mtime',
    // atime/ctime change by merely reading; PaxHeaders.%p would put tar's pid in every header name.
    '--pax-option=exthdr.name=%d/PaxHeaders/%f,globexthdr.name=/tmp/GlobalHead.0,delete=atime,delete=ctime',
    // A /proc or /dev left mounted in the tree must not end up in the image.
    '--one-file-system',
    '.',
  ];
}

export function zstdArgv(level: number): string[] {
  // -T0: one worker per core; zstd's multi-threaded output does not depend on the number of workers.
  return ['zstd', '-T0', `-${level}`, '--quiet', '--stdout'];
}

export function checkZstdLevel(stage: string, level: number): number {
  // zstd silently clamps a level out of range: the caller would not get what they asked for.
  if (!Number.isInteger(level) || level < 1 || level > 19) {
    throw new StageError(stage, `zstd level must be an integer from 1 to 19 (got ${level})`);
  }
  return level;
}

/** Moves a finished temp file to outDir/fileName, its `.sha256` first: a file under its final name always has its digest beside it. */
export async function publishHashed(tmp: string, outDir: string, fileName: string, sha256: string): Promise<string> {
  const path = insideDir(outDir, fileName, 'publish');
  await atomicWrite(`${path}.sha256`, `${sha256}  ${fileName}\n`);
  await rename(tmp, path);
  return path;
}

export function imageFileName(name: string, sha256: string): string {
  return `${name}-${sha256.slice(0, 16)}.tar.zst`;
}

function collectStderr(p: ChildProcess): () => string {
  let err = '';
  p.stderr?.on('data', (d: Buffer) => {
    err = (err + d.toString()).slice(-8192);
  });
  return () => err;
}

function missingTool(command: string): string {
  const req = (REQUIREMENTS as Record<string, Requirement>)[command];
  return `could not find '${command}', which pack-image needs to pack the golden image: install the Debian package '${req?.debian ?? command}' (Arch: '${req?.arch ?? command}')`;
}

function exited(p: ChildProcess, command: string): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  return new Promise((res, rej) => {
    p.once('error', (e: NodeJS.ErrnoException) =>
      rej(
        e.code === 'ENOENT'
          ? new HostToolError(missingTool(command))
          : e,
      ),
    );
    p.once('close', (code, signal) => res({ code, signal }));
  });
}

export async function packImage(rootDir: string, opts: PackOptions): Promise<PackedImage> {
  const st = await stat(rootDir).catch(() => null);
  if (!st?.isDirectory()) throw new StageError('pack-image', `${rootDir} is not a directory`);
  const level = checkZstdLevel('pack-image', opts.zstdLevel);
  await mkdir(opts.outDir, { recursive: true });
  // The final name is checked before minutes of packing, not after.
  insideDir(opts.outDir, imageFileName(opts.name, '0'.repeat(64)), 'pack-image');
  const tmp = tempPathFor(insideDir(opts.outDir, `${opts.name}.tar.zst`, 'pack-image'));
  const tarCmd = tarArgv(rootDir, opts.sourceDateEpoch);
  const zstdCmd = zstdArgv(level);
  const env = { ...process.env, LC_ALL: 'C' };

  const out = await open(tmp, 'w');
  const tar = spawn(tarCmd[0]!, tarCmd.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], env });
  const zstd = spawn(zstdCmd[0]!, zstdCmd.slice(1), { stdio: [tar.stdout!, out.fd, 'pipe'], env });
  // zstd holds its own copies of the pipe's read end and of the file; ours would keep tar's stdout open.
  tar.stdout!.destroy();
  const tarErr = collectStderr(tar);
  const zstdErr = collectStderr(zstd);
  const tarExit = exited(tar, 'tar');
  const zstdExit = exited(zstd, 'zstd');
  // Hashed behind zstd as it writes (sha256Appended), and progress from the same reads.
  const ended = Promise.allSettled([tarExit, zstdExit]);
  const hashing = sha256Appended(tmp, ended, (n) => opts.log.progress('pack', n));
  // Awaited below; until then a failure to read must not count as an unhandled rejection.
  hashing.catch(() => undefined);
  try {
    // allSettled, not all: a missing tar rejects at once, while zstd may still be running.
    const [te, ze] = await ended;
    await out.close();
    for (const r of [te, ze]) if (r.status === 'rejected') throw r.reason;
    const t = (te as PromiseFulfilledResult<Awaited<typeof tarExit>>).value;
    const z = (ze as PromiseFulfilledResult<Awaited<typeof zstdExit>>).value;
    const line = `${commandLine(tarCmd)} | ${commandLine(zstdCmd)}`;
    if (t.code !== 0 || t.signal) throw new CommandError(line, t.code, tail(tarErr()), t.signal);
    if (z.code !== 0 || z.signal) throw new CommandError(line, z.code, tail(zstdErr()), z.signal);
    const { sha256, size } = await hashing;
    const fileName = imageFileName(opts.name, sha256);
    const path = await publishHashed(tmp, opts.outDir, fileName, sha256);
    return { path, fileName, sha256, size };
  } catch (e) {
    await out.close().catch(() => undefined);
    await hashing.catch(() => undefined);
    tar.kill();
    zstd.kill();
    await rm(tmp, { force: true });
    await rm(`${tmp}.sha256`, { force: true });
    throw e;
  }
}

export interface PackCachedOptions extends PackOptions {
  cacheDir: string;
  force?: boolean;
}

/** Everything that decides the tarball's bytes, given the tree's own cache key. */
export async function packCacheKey(image: BootstrappedImage, opts: Pick<PackOptions, 'name' | 'sourceDateEpoch' | 'zstdLevel'>): Promise<string> {
  const inputs = {
    tree: image.cacheKey,
    name: opts.name,
    epoch: opts.sourceDateEpoch,
    level: opts.zstdLevel,
    argv: tarArgv('.', opts.sourceDateEpoch),
    tar: (await capture(['tar', '--version'])).split('\n')[0],
    zstd: await capture(['zstd', '--version']),
  };
  return `packed-${hashInputs(inputs).slice(0, 32)}`;
}

/**
 * packImage behind the content-hash cache: an unchanged tree (same cacheKey) with the same tar, zstd
 * and options is not packed again; the cached tarball is copied into outDir (a reflink where the
 * filesystem can: not a hard link, so that nothing done to dist/ can reach into the cache).
 */
export async function packImageCached(image: BootstrappedImage, opts: PackCachedOptions): Promise<PackedImage & { fromCache: boolean }> {
  const key = await packCacheKey(image, opts);
  return packedFromCache({ ...opts, key }, async (tmp) => {
    const { path: _path, ...meta } = await packImage(image.rootDir, { ...opts, outDir: tmp });
    return meta;
  });
}

/**
 * A packed artifact (file + .sha256) behind the content-hash cache: made into a cache entry by `pack`
 * once, its metadata kept beside it as packed.json, then copied into outDir on every build.
 */
export async function packedFromCache<M extends { fileName: string }>(
  o: { cacheDir: string; key: string; force?: boolean; log: Logger; outDir: string },
  pack: (tmp: string) => Promise<M>,
): Promise<M & { path: string; fromCache: boolean }> {
  const entry = await cachedBuild({
    area: join(o.cacheDir, 'packed'),
    key: o.key,
    force: Boolean(o.force),
    log: o.log,
    build: async (tmp) => {
      const meta = await pack(tmp);
      await writeFile(join(tmp, 'packed.json'), JSON.stringify(meta) + '\n');
    },
  });
  const meta = JSON.parse(await readFile(join(entry.dir, 'packed.json'), 'utf8')) as M;
  await mkdir(o.outDir, { recursive: true });
  await copyFromCache(entry.dir, o.outDir, meta.fileName);
  return { ...meta, path: insideDir(o.outDir, meta.fileName, 'pack-image'), fromCache: entry.fromCache };
}

/**
 * A cached artifact and its .sha256 into outDir, each through a temp name (a reader never sees half a
 * file) and as a reflink where the filesystem can: not a hard link, so nothing done to dist/ reaches the cache.
 */
export async function copyFromCache(entryDir: string, outDir: string, fileName: string): Promise<void> {
  for (const f of [fileName, `${fileName}.sha256`]) {
    await replaceAtomically(join(outDir, f), (tmp) => copyFile(join(entryDir, f), tmp, constants.COPYFILE_FICLONE));
  }
}
