/**
 * A content-addressed cache of expensive results (bootstrapped trees, packed tarballs).
 *
 * An entry is a directory named by its key and exists only once complete: it is built in a temp dir
 * beside it and renamed in. A failed build removes its temp dir; a killed one leaves a temp dir named
 * with its pid, swept by the next run once that pid is gone. Nothing half-made is ever an entry.
 */
import { registerTemp } from '../lib/cleanup.ts';
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, readlink, rename, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { Logger } from '../lib/log.ts';
import { run } from '../lib/run.ts';
import { pidAlive } from '../lib/process.ts';

const TMP_PREFIX = '.tmp-';

/** Mount points at or below `dir`, deepest first (mountinfo field 5, octal escapes decoded). */
async function mountsBelow(dir: string): Promise<string[]> {
  const info = await readFile('/proc/self/mountinfo', 'utf8');
  const base = resolve(dir);
  return info
    .split('\n')
    .map((l) => l.split(' ')[4])
    .filter((m): m is string => Boolean(m))
    .map((m) => m.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))))
    .filter((m) => m === base || m.startsWith(base + '/'))
    .sort((a, b) => b.length - a.length);
}

/**
 * Removes a tree that a killed bootstrap may have left with /proc, /sys or the host's /dev still
 * mounted inside: unmount first, then `rm --one-file-system` so that a mount we could not detach is
 * skipped rather than emptied.
 */
export async function removeTree(dir: string): Promise<void> {
  for (const m of await mountsBelow(dir)) {
    // --lazy: a busy mount is detached from the tree now and freed when its last user goes.
    await run(['umount', '--recursive', '--lazy', '--', m], { nothrow: true });
  }
  const left = await mountsBelow(dir);
  if (left.length) throw new Error(`refusing to remove ${dir}: still mounted below it: ${left.join(', ')}`);
  await run(['rm', '--recursive', '--force', '--one-file-system', '--', dir]);
}

/**
 * Whether some process still works on `dir`: its command line names it (mmdebstrap and pacstrap take the
 * target as an argument) or its root or cwd is inside it (dpkg, pacman scriptlets in the chroot). When
 * our process is killed alone, its bootstrap tool runs on as an orphan: its dir must not be swept yet.
 */
async function inUse(dir: string): Promise<boolean> {
  const base = resolve(dir);
  const inside = (p: string) => p === base || p.startsWith(base + '/');
  for (const pid of await readdir('/proc').catch(() => [] as string[])) {
    if (!/^\d+$/.test(pid) || Number(pid) === process.pid) continue;
    try {
      const cmdline = (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0');
      if (cmdline.some((a) => a.includes(base))) return true;
      for (const link of ['root', 'cwd']) if (inside(await readlink(`/proc/${pid}/${link}`).catch(() => '/'))) return true;
    } catch {
      /* gone meanwhile */
    }
  }
  return false;
}

/** Removes temp dirs of builds whose process is gone (killed, power loss). */
export async function sweepStale(area: string, log?: Logger): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(area);
  } catch {
    return [];
  }
  const swept: string[] = [];
  for (const n of names) {
    if (!n.startsWith(TMP_PREFIX) && !n.startsWith('.old-')) continue;
    const pid = Number(n.split('-')[1]);
    if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && pidAlive(pid)) continue;
    if (await inUse(join(area, n))) {
      log?.warn(`leaving ${join(area, n)}: a process of an interrupted build still works on it`);
      continue;
    }
    log?.info(`removing leftover of an interrupted build: ${join(area, n)}`);
    await removeTree(join(area, n));
    swept.push(n);
  }
  return swept;
}

export async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

export interface CachedBuildOptions {
  /** The directory holding entries of one kind (e.g. `<cacheDir>/rootfs`). */
  area: string;
  key: string;
  force: boolean;
  log: Logger;
  /** Fills `tmpDir` (exists, empty). Throwing discards it. */
  build: (tmpDir: string) => Promise<void>;
}

export interface CacheEntry {
  dir: string;
  fromCache: boolean;
}

export async function cachedBuild(opts: CachedBuildOptions): Promise<CacheEntry> {
  const { area, key, log } = opts;
  const dir = join(area, key);
  await mkdir(area, { recursive: true });
  await sweepStale(area, log);
  if (!opts.force && (await exists(dir))) return { dir, fromCache: true };

  const tmp = join(area, `${TMP_PREFIX}${process.pid}-${randomBytes(4).toString('hex')}-${key}`);
  await mkdir(tmp);
  const unregister = registerTemp(tmp);
  try {
    await opts.build(tmp);
  } catch (e) {
    await removeTree(tmp);
    unregister();
    throw e;
  }
  if (await exists(dir)) {
    if (!opts.force) {
      // Another build of the same key finished first: its result is as good as ours.
      await removeTree(tmp);
      unregister();
      return { dir, fromCache: true };
    }
    const old = join(area, `.old-${process.pid}-${randomBytes(4).toString('hex')}`);
    await rename(dir, old);
    await rename(tmp, dir);
    await removeTree(old);
  } else {
    await rename(tmp, dir);
  }
  unregister();
  return { dir, fromCache: false };
}
