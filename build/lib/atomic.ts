/**
 * Files appear whole or not at all: each is made under a temp name beside its final one and renamed over
 * it (rename is atomic within a filesystem), so a reader — a node fetching over TFTP/HTTP, a concurrent
 * build, the watcher — sees the old file or the new one, never half of one.
 */
import { randomBytes } from 'node:crypto';
import { open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/**
 * `.<name>.tmp-<pid>-<random>` beside `path`: hidden from globs and listings, unique among processes and
 * among calls in one process, and it names the process that owns it.
 */
export function tempPathFor(path: string): string {
  return join(dirname(path), `.${basename(path)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
}

/** `fill` makes the temp file (write, copy, link, symlink…); one rename then puts it at `path`. The temp is gone on failure. */
export async function replaceAtomically(path: string, fill: (tmp: string) => Promise<void>): Promise<void> {
  const tmp = tempPathFor(path);
  try {
    await fill(tmp);
    await rename(tmp, path);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
}

/** Writes `data` to `path` atomically; `durable` also syncs the file and its directory (state that must survive a crash). */
export async function atomicWrite(path: string, data: string | Uint8Array, o: { mode?: number; durable?: boolean } = {}): Promise<void> {
  await replaceAtomically(path, async (tmp) => {
    const fh = await open(tmp, 'wx', o.mode ?? 0o644);
    try {
      await fh.writeFile(data);
      if (o.mode !== undefined) await fh.chmod(o.mode);
      if (o.durable) await fh.sync();
    } finally {
      await fh.close();
    }
  });
  if (o.durable) {
    // The rename is durable only once the directory is synced.
    const dir = await open(dirname(path), 'r');
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
  }
}
