/**
 * Stage: the golden root as an ext4 filesystem image, for image-mode installs (the node writes it onto
 * its root partition, gives it a fresh UUID and grows it) — faithful (`mke2fs -d` copies owners, modes,
 * links, hard links, device nodes and xattrs incl. capabilities and ACLs) and deterministic: the same
 * tree gives the same bytes.
 *
 * mke2fs 1.47.0 copies each inode's atime and ctime from the tree (they change by reading or copying
 * it) and mtimes newer than SOURCE_DATE_EPOCH as they are; one debugfs pass sets them afterwards, as
 * the tarball's --clamp-mtime does. Everything else is pinned: our own mke2fs.conf (not the host's),
 * the UUID and directory hash seed derived from the content, E2FSPROGS_FAKE_TIME and E2FSCK_TIME for
 * the rest.
 */
import { createHash } from 'node:crypto';
import { lstat, mkdir, open, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { CommandError, StageError, tail } from '../lib/errors.ts';
import { insideDir } from '../lib/inside-dir.ts';
import type { Logger } from '../lib/log.ts';
import { commandLine, run } from '../lib/run.ts';
import { hashInputs, sha256File } from '../lib/hash.ts';
import { checkZstdLevel, packedFromCache, publishHashed } from './pack-image.ts';
import type { StageNeeds } from '../lib/host.ts';
import { tempPathFor } from '../lib/atomic.ts';

const STAGE = 'pack-fsimage';
/** The host tools this stage runs. */
export const needs: StageNeeds[] = [{ stage: STAGE, needs: ['mke2fs', 'e2fsck', 'debugfs', 'dumpe2fs', 'zstd'] }];
const BLOCK = 4096;
const INODE_SIZE = 256;
const INODE_RATIO = 16384;
const MiB = 1024 ** 2;

export interface FsImageOptions {
  outDir: string;
  name: string;
  /** Filesystem label: the plan's root label (nodes boot with root=LABEL=…). */
  label: string;
  /** A digest of the tree's content (the tarball's sha256): the UUID and hash seed derive from it. */
  contentKey: string;
  sourceDateEpoch: number;
  zstdLevel: number;
  log: Logger;
}

/** fileName = `${name}-${first 16 hex of sha256}.ext4.zst`; imageBytes: the raw filesystem, what a node writes. */
export interface PackedFsImage {
  path: string;
  fileName: string;
  sha256: string;
  size: number;
  imageBytes: number;
}

export function fsImageFileName(name: string, sha256: string): string {
  return `${name}-${sha256.slice(0, 16)}.ext4.zst`;
}

// Features pinned here rather than taken from the host's /etc/mke2fs.conf, so every build host makes
// the same filesystem. metadata_csum_seed: `tune2fs -U` on the node then changes the UUID without
// rewriting every metadata checksum. No orphan_file: e2fsprogs before 1.47 (installer environments)
// cannot check it.
const MKE2FS_CONF = `[defaults]
	base_features = sparse_super,large_file,filetype,resize_inode,dir_index,ext_attr
	default_mntopts = acl,user_xattr
	enable_periodic_fsck = 0
	blocksize = ${BLOCK}
	inode_size = ${INODE_SIZE}
	inode_ratio = ${INODE_RATIO}

[fs_types]
	ext4 = {
		features = has_journal,extent,huge_file,flex_bg,metadata_csum,metadata_csum_seed,64bit,dir_nlink,extra_isize
	}
`;

/** A UUID (version 4 layout) derived from the content key, so the same tree gets the same one. */
export function derivedUuid(contentKey: string, purpose: string): string {
  const h = createHash('sha256').update(`portacluster:${purpose}:${contentKey}`).digest();
  h[6] = (h[6]! & 0x0f) | 0x40;
  h[8] = (h[8]! & 0x3f) | 0x80;
  const x = h.subarray(0, 16).toString('hex');
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}

interface TreeStats {
  dataBytes: number;
  inodes: number;
  /** Paths (from the root, with a leading /) whose mtime is newer than the epoch. */
  newer: string[];
  /** Paths of sockets: tar leaves them out of the tarball, mke2fs -d copies them. */
  sockets: string[];
}

const blocks = (n: number) => Math.ceil(n / BLOCK) * BLOCK;

/** What the tree needs on ext4 with 4 KiB blocks, counting each hard-linked inode once. */
async function measureTree(root: string, epoch: number): Promise<TreeStats> {
  const rootDev = (await stat(root)).dev;
  const seen = new Set<number>();
  const stats: TreeStats = { dataBytes: BLOCK, inodes: 0, newer: [], sockets: [] };
  async function walk(rel: string): Promise<void> {
    const names = await readdir(join(root, rel));
    stats.dataBytes += blocks(names.reduce((sum, n) => sum + 16 + n.length, 24));
    for (const name of names) {
      const p = `${rel}/${name}`;
      const st = await lstat(join(root, p));
      // mke2fs -d would copy a mounted /proc or /dev into the image (tar has --one-file-system).
      if (st.dev !== rootDev) throw new StageError(STAGE, `${join(root, p)} is a mount point inside the tree`);
      if (st.mtimeMs / 1000 > epoch) stats.newer.push(p);
      if (st.isSocket()) stats.sockets.push(p);
      if (st.nlink > 1 && !st.isDirectory()) {
        if (seen.has(st.ino)) continue;
        seen.add(st.ino);
      }
      stats.inodes++;
      if (st.isFile()) stats.dataBytes += blocks(st.size);
      else if (st.isSymbolicLink() && st.size >= 60) stats.dataBytes += BLOCK;
      else if (st.isDirectory()) await walk(p);
    }
  }
  await walk('');
  return stats;
}

/** Image size and inode count: the tree, its inode table, 10% and 64 MiB (journal, group metadata). */
export function fsGeometry(t: Pick<TreeStats, 'dataBytes' | 'inodes'>): { bytes: number; inodes: number } {
  const minInodes = Math.ceil(t.inodes * 1.25) + 1024;
  const need = t.dataBytes + minInodes * INODE_SIZE;
  const bytes = Math.ceil((need * 1.1 + 64 * MiB) / (4 * MiB)) * 4 * MiB;
  // Never below the usual ratio: resize2fs keeps inodes per group, so the grown filesystem has it too.
  return { bytes, inodes: Math.max(minInodes, Math.floor(bytes / INODE_RATIO)) };
}

/** Inode numbers in use, from dumpe2fs's per-group "Free inodes:" ranges. */
export function usedInodes(dumpe2fs: string): number[] {
  const perGroup = Number(/^Inodes per group:\s+(\d+)$/m.exec(dumpe2fs)?.[1]);
  const groups = [...dumpe2fs.matchAll(/^\s+Free inodes: ?(.*)$/gm)].map((m) => m[1]!.trim());
  if (!perGroup || groups.length === 0) throw new StageError(STAGE, 'could not read the inode bitmap summary from dumpe2fs');
  const used: number[] = [];
  groups.forEach((ranges, g) => {
    const free = new Set<number>();
    for (const r of ranges.split(',').map((x) => x.trim()).filter(Boolean)) {
      const [a, b = a] = r.split('-').map(Number) as [number, number?];
      for (let i = a; i <= b; i++) free.add(i);
    }
    for (let i = g * perGroup + 1; i <= (g + 1) * perGroup; i++) if (!free.has(i)) used.push(i);
  });
  return used;
}

/**
 * debugfs commands that pin atime and ctime of every used inode, clamp mtimes to the epoch and remove
 * sockets, so the image holds what the tarball holds.
 */
export function debugfsCommands(inodes: number[], tree: Pick<TreeStats, 'newer' | 'sockets'>, epoch: number, log: Logger): string {
  const lines: string[] = [];
  // Inodes 1 and 3–10 are reserved (bad blocks, journal, resize): mke2fs dates them from FAKE_TIME.
  for (const i of inodes.filter((n) => n === 2 || n >= 11)) lines.push(`sif <${i}> atime @${epoch}`, `sif <${i}> ctime @${epoch}`);
  // debugfs reads one command per line and doubles a quote inside quotes.
  const quoted = (p: string) => (p.includes('\n') ? null : `"${p.replace(/"/g, '""')}"`);
  for (const p of tree.newer) {
    if (quoted(p) === null) log.warn(`${STAGE}: ${JSON.stringify(p)} has a newline in its name: its mtime is kept`);
    else lines.push(`sif ${quoted(p)} mtime @${epoch}`);
  }
  for (const p of tree.sockets) {
    if (quoted(p) === null) log.warn(`${STAGE}: ${JSON.stringify(p)} has a newline in its name: the socket is kept`);
    else lines.push(`rm ${quoted(p)}`);
  }
  return lines.join('\n') + '\n';
}

export async function packFsImage(rootDir: string, opts: FsImageOptions): Promise<PackedFsImage> {
  const st = await stat(rootDir).catch(() => null);
  if (!st?.isDirectory()) throw new StageError(STAGE, `${rootDir} is not a directory`);
  const level = checkZstdLevel(STAGE, opts.zstdLevel);
  if (!/^[A-Za-z0-9_-]{1,16}$/.test(opts.label)) throw new StageError(STAGE, `not an ext4 label (got ${JSON.stringify(opts.label)})`);
  const epoch = opts.sourceDateEpoch;
  const tree = await measureTree(rootDir, epoch);
  const geo = fsGeometry(tree);

  await mkdir(opts.outDir, { recursive: true });
  // The final name is checked before minutes of packing, not after.
  insideDir(opts.outDir, fsImageFileName(opts.name, '0'.repeat(64)), STAGE);
  const tmp = tempPathFor(insideDir(opts.outDir, `${opts.name}.fsimage`, STAGE));
  await mkdir(tmp);
  try {
    const raw = join(tmp, 'root.ext4');
    const conf = join(tmp, 'mke2fs.conf');
    await writeFile(conf, MKE2FS_CONF);
    const fh = await open(raw, 'wx');
    await fh.truncate(geo.bytes);
    await fh.close();
    const env = { ...process.env, LC_ALL: 'C', MKE2FS_CONFIG: conf, E2FSPROGS_FAKE_TIME: String(epoch), E2FSCK_TIME: String(epoch) };
    const uuid = derivedUuid(opts.contentKey, 'fs-uuid');
    opts.log.info(`${STAGE}: ${tree.inodes} inodes, ${(tree.dataBytes / MiB).toFixed(0)} MiB of data → ${geo.bytes / MiB} MiB ext4`);
    await run(
      [
        'mke2fs', '-q', '-F', '-t', 'ext4', '-T', 'default',
        `-L`, opts.label, '-U', uuid, '-N', String(geo.inodes), '-m', '5',
        // hash_seed: htree directory hashes would differ per run; lazy_*_init=0: the image carries zeroed
        // inode tables and journal, so no node zeroes them in the background after its first boot.
        '-E', `hash_seed=${derivedUuid(opts.contentKey, 'hash-seed')},lazy_itable_init=0,lazy_journal_init=0,nodiscard`,
        '-d', rootDir, '--', raw,
      ],
      { env },
    );
    // mke2fs -d leaves large directories unindexed: e2fsck indexes them (its pass 3A) here, once, rather
    // than on every node. Exit 1: it changed something, which is the point.
    const fix = await run(['e2fsck', '-f', '-y', '--', raw], { env, nothrow: true });
    if (fix.exitCode !== 0 && fix.exitCode !== 1) throw new CommandError(commandLine(['e2fsck', '-f', '-y', '--', raw]), fix.exitCode, tail(fix.stdout + fix.stderr));
    const used = usedInodes(await run(['dumpe2fs', '--', raw], { env }).then((r) => r.stdout));
    const cmds = join(tmp, 'normalize.debugfs');
    await writeFile(cmds, debugfsCommands(used, tree, epoch, opts.log));
    const dbg = await run(['debugfs', '-w', '-f', cmds, '--', raw], { env });
    // debugfs exits 0 whatever its commands did: anything on stderr but its banner is a failure.
    const complaints = dbg.stderr.split('\n').filter((l) => l.trim() && !/^debugfs \d/.test(l));
    if (complaints.length) throw new CommandError(commandLine(['debugfs', '-w', '-f', cmds, '--', raw]), 0, tail(complaints.join('\n')));
    const fsck = await run(['e2fsck', '-fn', '--', raw], { env, nothrow: true });
    if (fsck.exitCode !== 0) throw new CommandError(commandLine(['e2fsck', '-fn', '--', raw]), fsck.exitCode, tail(fsck.stdout + fsck.stderr));

    const zst = join(tmp, 'root.ext4.zst');
    // -T0: one worker per core; multi-threaded output does not depend on the number of workers.
    await run(['zstd', '-T0', `-${level}`, '--quiet', '-o', zst, '--', raw]);
    await rm(raw);
    const sha256 = await sha256File(zst);
    const size = (await stat(zst)).size;
    const fileName = fsImageFileName(opts.name, sha256);
    const path = await publishHashed(zst, opts.outDir, fileName, sha256);
    return { path, fileName, sha256, size, imageBytes: geo.bytes };
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

export interface FsImageCachedOptions extends FsImageOptions {
  cacheDir: string;
  force?: boolean;
}

/**
 * packFsImage behind the content-hash cache, like the tarball: the same tree (its tarball's sha256), label,
 * epoch, zstd level, e2fsprogs and this stage's own source give the same image, so an unchanged rebuild
 * copies it (a reflink where possible) instead of making it again.
 */
export async function packFsImageCached(rootDir: string, opts: FsImageCachedOptions): Promise<PackedFsImage & { fromCache: boolean }> {
  const key = `fsimage-${hashInputs({
    content: opts.contentKey,
    name: opts.name,
    label: opts.label,
    epoch: opts.sourceDateEpoch,
    level: opts.zstdLevel,
    stage: await readFile(fileURLToPath(import.meta.url), 'utf8'),
    mke2fs: (await run(['mke2fs', '-V'], { nothrow: true })).stderr.split('\n')[0] ?? '',
    zstd: (await run(['zstd', '--version'])).stdout.trim(),
  }).slice(0, 32)}`;
  const packed = await packedFromCache({ ...opts, key }, async (tmp) => {
    const { path: _path, ...meta } = await packFsImage(rootDir, { ...opts, outDir: tmp });
    return meta;
  });
  if (packed.fromCache) opts.log.info(`filesystem image reused from cache: ${packed.fileName}`);
  return packed;
}
