/**
 * Stage: pack the golden root as a squashfs for the diskless profile — faithful (owners, modes, links,
 * hard links, device nodes, xattrs incl. file capabilities) and deterministic (same tree, same bytes).
 * Named, checksummed and cached like the golden tarball (pack-image.ts): images/<name>-<sha256[:16]>.sfs
 * and a .sha256 beside it, published by publishHashed (digest file first) and kept in the content-hash
 * cache by packedFromCache, so an unchanged diskless build copies the squashfs instead of packing it again.
 */
import { mkdir, readFile, rm, stat } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import type { BootstrappedImage, PackedImage } from '../image/types.ts';
import { StageError } from '../lib/errors.ts';
import { insideDir } from '../lib/inside-dir.ts';
import type { Logger } from '../lib/log.ts';
import { run } from '../lib/run.ts';
import { hashInputs, sha256File } from '../lib/hash.ts';
import { packedFromCache, publishHashed } from './pack-image.ts';
import type { StageNeeds } from '../lib/host.ts';
import { tempPathFor } from '../lib/atomic.ts';

/** The host tools this stage runs. */
export const needs: StageNeeds[] = [{ stage: 'pack-squashfs', needs: ['mksquashfs'] }];

export interface PackSquashfsOptions {
  outDir: string;
  name: string;
  sourceDateEpoch: number;
  log: Logger;
}

/**
 * Measured on the lab's Debian root (697 MB, 2 cores): zstd -3 with 1 MiB blocks → 216 MB in 4.4 s;
 * -3 with the default 128 KiB → 234 MB in 2.2 s; -15 with 128 KiB → 208 MB in 113 s. The whole file sits
 * in each node's RAM, so big blocks (random reads cost nothing there) and a fast level.
 */
export const SQUASHFS_ZSTD_LEVEL = 3;
export const SQUASHFS_BLOCK = '1M';

export function mksquashfsArgv(rootDir: string, out: string, sourceDateEpoch: number): string[] {
  return [
    'mksquashfs',
    rootDir,
    out,
    // A leftover file at `out` is replaced, never appended to.
    '-noappend',
    '-comp', 'zstd',
    '-Xcompression-level', String(SQUASHFS_ZSTD_LEVEL),
    '-b', SQUASHFS_BLOCK,
    // Same tree, same bytes, whatever the number of processors (the default since 4.5; explicit here).
    '-reproducible',
    // squashfs-tools 4.5 can set times but not clamp them: every inode and the superblock get the epoch.
    '-mkfs-time', String(sourceDateEpoch),
    '-all-time', String(sourceDateEpoch),
    // File capabilities (security.capability, e.g. cap_net_raw on ping) and the other xattrs squashfs
    // can hold; POSIX ACLs it cannot (mksquashfs warns "Unrecognised xattr prefix system.posix_acl_*").
    '-xattrs',
    // A /proc or /dev left mounted in the tree must not end up in the image.
    '-one-file-system',
    '-no-progress',
    '-quiet',
  ];
}

export function squashfsFileName(name: string, sha256: string): string {
  return `${name}-${sha256.slice(0, 16)}.sfs`;
}

/** mksquashfs into a temp name in outDir, then the digest file, then the squashfs under its final name. */
export async function packSquashfs(rootDir: string, o: PackSquashfsOptions): Promise<PackedImage> {
  const st = await stat(rootDir).catch(() => null);
  if (!st?.isDirectory()) throw new StageError('pack-squashfs', `${rootDir} is not a directory`);
  await mkdir(o.outDir, { recursive: true });
  // The final name is checked before minutes of packing, not after.
  insideDir(o.outDir, squashfsFileName(o.name, '0'.repeat(64)), 'pack-squashfs');
  const tmp = tempPathFor(insideDir(o.outDir, `${o.name}.sfs`, 'pack-squashfs'));
  try {
    // mksquashfs refuses SOURCE_DATE_EPOCH together with the time flags, which say the same explicitly.
    const { SOURCE_DATE_EPOCH: _, ...env } = process.env;
    await run(mksquashfsArgv(rootDir, tmp, o.sourceDateEpoch), { env: { ...env, LC_ALL: 'C' } });
    const sha256 = await sha256File(tmp);
    const size = (await stat(tmp)).size;
    const fileName = squashfsFileName(o.name, sha256);
    insideDir(o.outDir, fileName, 'pack-squashfs');
    const path = await publishHashed(tmp, o.outDir, fileName, sha256);
    return { path, fileName, sha256, size };
  } catch (e) {
    await rm(tmp, { force: true });
    await rm(`${tmp}.sha256`, { force: true });
    throw e;
  }
}

export interface PackSquashfsCachedOptions extends PackSquashfsOptions {
  cacheDir: string;
  force?: boolean;
}

/**
 * packSquashfs behind the content-hash cache: the same tree (its cache key), name, epoch, mksquashfs
 * flags and version and this stage's own source give the same bytes, so they are packed once.
 */
export async function packSquashfsCached(image: BootstrappedImage, o: PackSquashfsCachedOptions): Promise<PackedImage & { fromCache: boolean }> {
  const key = `squashfs-${hashInputs({
    tree: image.cacheKey,
    name: o.name,
    epoch: o.sourceDateEpoch,
    argv: mksquashfsArgv('.', '.', o.sourceDateEpoch),
    stage: await readFile(fileURLToPath(import.meta.url), 'utf8'),
    mksquashfs: (await run(['mksquashfs', '-version'], { nothrow: true })).stdout.split('\n')[0] ?? '',
  }).slice(0, 32)}`;
  const packed = await packedFromCache({ ...o, key }, async (tmp) => {
    const { path: _path, ...meta } = await packSquashfs(image.rootDir, { ...o, outDir: tmp });
    return meta;
  });
  if (packed.fromCache) o.log.info(`diskless root reused from cache: ${packed.fileName}`);
  return packed;
}
