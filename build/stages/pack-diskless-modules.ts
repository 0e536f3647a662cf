/**
 * Stage: the golden kernel's own modules as a second initrd for the diskless boot. The diskless node boots
 * the golden image's kernel with the built-in environment's initramfs; the kernel unpacks this one on top,
 * so the environment's udev and modprobe find modules matching `uname -r` (NICs, loop, squashfs,
 * overlay). Pruned with the environment's own list (prune-modules.ts) and packed like it (pack-initramfs.ts).
 *
 * The golden root is never written: an overlay over it takes the pruning and the image's own depmod
 * (chroot), and only usr/lib/modules/<kver> is copied out of it. Cached by content hash: zstd -19 over
 * ~40 MB of modules takes a minute here.
 */
import { constants, copyFile, mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cachedBuild, removeTree } from '../image/cache.ts';
import { registerTemp } from '../lib/cleanup.ts';
import type { BootstrappedImage } from '../image/types.ts';
import { packInitramfs, ZSTD_LEVEL } from '../installer-env/pack-initramfs.ts';
import { EXCLUDED_MODULES, KEPT_MODULES, pruneModules } from '../installer-env/prune-modules.ts';
import { StageError } from '../lib/errors.ts';
import { insideDir } from '../lib/inside-dir.ts';
import type { Logger } from '../lib/log.ts';
import { run } from '../lib/run.ts';
import { hashInputs } from '../lib/hash.ts';
import { replaceAtomically, tempPathFor } from '../lib/atomic.ts';

export interface PackDisklessModulesOptions {
  /** The pxe/ directory of dist/ (the TFTP root). */
  pxeDir: string;
  /** File name under pxeDir, plan.diskless.modules. */
  fileName: string;
  kernelVersion: string;
  workDir: string;
  sourceDateEpoch: number;
  log: Logger;
}

export interface DisklessModules {
  path: string;
  kernelVersion: string;
  modulesKept: number;
  bytes: number;
}

// overlayfs splits its options at commas and lowerdir lists at colons.
const OVERLAY_SAFE = /^[^,:\\\s]+$/;

export async function packDisklessModules(rootDir: string, o: PackDisklessModulesOptions): Promise<DisklessModules> {
  if (process.getuid?.() !== 0) throw new StageError('pack-diskless-modules', 'must run as root (an overlay mount and chroot for depmod)');
  const modDir = join(rootDir, 'usr/lib/modules', o.kernelVersion);
  if (!(await stat(modDir).catch(() => null))?.isDirectory()) throw new StageError('pack-diskless-modules', `the image has no ${modDir}`);
  const work = join(o.workDir, `diskless-modules-${process.pid}`);
  for (const p of [rootDir, work]) if (!OVERLAY_SAFE.test(p)) throw new StageError('pack-diskless-modules', `cannot overlay a path with a comma, colon, backslash or space: ${p}`);
  await removeTree(work).catch(() => {});
  const merged = join(work, 'merged');
  const out = join(work, 'out');
  for (const d of ['upper', 'ovl-work', 'merged', 'out/usr/lib/modules']) await mkdir(join(work, d), { recursive: true });
  const tmp = tempPathFor(insideDir(o.pxeDir, o.fileName, 'pack-diskless-modules'));
  const unregister = registerTemp(work);
  try {
    await run(['mount', '-t', 'overlay', 'pc-diskless-modules', '-o', `lowerdir=${rootDir},upperdir=${join(work, 'upper')},workdir=${join(work, 'ovl-work')}`, merged]);
    let kept: number;
    try {
      kept = (await pruneModules(merged, o.kernelVersion)).kept;
      await run(['cp', '--archive', '--', join(merged, 'usr/lib/modules', o.kernelVersion), join(out, 'usr/lib/modules')]);
    } finally {
      await run(['umount', merged], { nothrow: true });
    }
    await mkdir(o.pxeDir, { recursive: true });
    await packInitramfs(out, tmp, o.sourceDateEpoch);
    const path = insideDir(o.pxeDir, o.fileName, 'pack-diskless-modules');
    await rename(tmp, path);
    return { path, kernelVersion: o.kernelVersion, modulesKept: kept, bytes: (await stat(path)).size };
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  } finally {
    await removeTree(work).catch(() => {});
    unregister();
  }
}

/** Everything that decides the initrd's bytes, given the golden tree's own cache key. */
async function modulesCacheKey(image: BootstrappedImage, o: PackDisklessModulesOptions): Promise<string> {
  const sources: Record<string, string> = {};
  for (const f of ['../installer-env/prune-modules.ts', '../installer-env/pack-initramfs.ts', './pack-diskless-modules.ts']) {
    sources[f] = await readFile(fileURLToPath(new URL(f, import.meta.url)), 'utf8');
  }
  const inputs = { tree: image.cacheKey, kver: o.kernelVersion, kept: KEPT_MODULES, excluded: EXCLUDED_MODULES, zstd: ZSTD_LEVEL, epoch: o.sourceDateEpoch, sources };
  return `diskless-modules-${hashInputs(inputs).slice(0, 32)}`;
}

/** packDisklessModules behind the content-hash cache; the cached file is copied into pxeDir. */
export async function packDisklessModulesCached(image: BootstrappedImage, o: PackDisklessModulesOptions & { cacheDir: string; force: boolean }): Promise<DisklessModules & { fromCache: boolean }> {
  const FILE = 'modules.initrd';
  const entry = await cachedBuild({
    area: join(o.cacheDir, 'diskless-modules'),
    key: await modulesCacheKey(image, o),
    force: o.force,
    log: o.log,
    build: async (tmp) => {
      const r = await packDisklessModules(image.rootDir, { ...o, pxeDir: tmp, fileName: FILE });
      await writeFile(join(tmp, 'meta.json'), JSON.stringify({ kernelVersion: r.kernelVersion, modulesKept: r.modulesKept, bytes: r.bytes }) + '\n');
    },
  });
  const meta = JSON.parse(await readFile(join(entry.dir, 'meta.json'), 'utf8')) as Omit<DisklessModules, 'path'>;
  await mkdir(o.pxeDir, { recursive: true });
  const path = insideDir(o.pxeDir, o.fileName, 'pack-diskless-modules');
  await replaceAtomically(path, (tmp) => copyFile(join(entry.dir, FILE), tmp, constants.COPYFILE_FICLONE));
  return { ...meta, path, fromCache: entry.fromCache };
}
