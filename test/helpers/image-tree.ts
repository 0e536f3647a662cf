/**
 * Helpers for the golden-image tests: a comparable snapshot of a root tree (what a faithful tarball must
 * restore), a fake bzImage, and extraction of a packed image with the flags a node's installer uses.
 */
import { createHash } from 'node:crypto';
import { lstat, readFile, readlink, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { capture, run } from '../../build/lib/run.ts';

export interface EntrySnapshot {
  type: string;
  mode: string;
  uid: number;
  gid: number;
  size?: number;
  sha256?: string;
  target?: string;
  rdev?: string;
  /** For the 2nd… name of a hard-linked inode: the first name in sorted order. */
  hardlinkOf?: string;
  /** mtime in seconds, clamped to the epoch the way the packer does. */
  mtime?: number;
  xattrs?: Record<string, string>;
}

function typeOf(st: Awaited<ReturnType<typeof lstat>>): string {
  if (st.isFile()) return 'file';
  if (st.isDirectory()) return 'dir';
  if (st.isSymbolicLink()) return 'symlink';
  if (st.isCharacterDevice()) return 'char';
  if (st.isBlockDevice()) return 'block';
  if (st.isFIFO()) return 'fifo';
  if (st.isSocket()) return 'socket';
  return 'other';
}

/** Every xattr (ACLs are system.posix_acl_*, capabilities security.capability), by path, hex values. */
async function allXattrs(root: string): Promise<Map<string, Record<string, string>>> {
  const out = await capture(['getfattr', '--recursive', '--dump', '--match=-', '--no-dereference', '--encoding=hex', '--absolute-names', '.'], { cwd: root });
  const map = new Map<string, Record<string, string>>();
  let current: Record<string, string> | null = null;
  for (const line of out.split('\n')) {
    const file = line.match(/^# file: \.\/?(.*)$/);
    if (file) {
      current = {};
      map.set(file[1] ?? '', current);
    } else if (current && line.includes('=')) {
      const i = line.indexOf('=');
      current[line.slice(0, i)] = line.slice(i + 1);
    }
  }
  return map;
}

export async function snapshotTree(root: string, opts: { epoch?: number; hash?: boolean } = {}): Promise<Map<string, EntrySnapshot>> {
  const snap = new Map<string, EntrySnapshot>();
  const inodes = new Map<bigint, string>();
  const xattrs = await allXattrs(root);
  async function walk(rel: string): Promise<void> {
    for (const name of (await readdir(join(root, rel))).sort()) {
      const p = rel ? `${rel}/${name}` : name;
      const abs = join(root, p);
      const st = await lstat(abs, { bigint: true });
      const type = typeOf(await lstat(abs));
      const e: EntrySnapshot = { type, mode: (Number(st.mode) & 0o7777).toString(8), uid: Number(st.uid), gid: Number(st.gid) };
      if (type === 'file') {
        e.size = Number(st.size);
        if (st.nlink > 1n) {
          const first = inodes.get(st.ino);
          if (first) e.hardlinkOf = first;
          else inodes.set(st.ino, p);
        }
        if (opts.hash !== false && !e.hardlinkOf) e.sha256 = createHash('sha256').update(await readFile(abs)).digest('hex');
      }
      if (type === 'symlink') e.target = await readlink(abs);
      if (type === 'char' || type === 'block') e.rdev = st.rdev.toString(16);
      if (opts.epoch !== undefined && type !== 'symlink' && type !== 'dir') e.mtime = Math.min(Number(st.mtimeMs / 1000n), opts.epoch);
      const x = xattrs.get(p);
      if (x && Object.keys(x).length) e.xattrs = x;
      snap.set(p, e);
      if (type === 'dir') await walk(p);
    }
  }
  await walk('');
  return snap;
}

/** Differences between two snapshots, one line each (empty when they match). */
export function diffSnapshots(a: Map<string, EntrySnapshot>, b: Map<string, EntrySnapshot>): string[] {
  const diffs: string[] = [];
  for (const [p, ea] of a) {
    const eb = b.get(p);
    if (!eb) diffs.push(`${p}: missing`);
    else if (JSON.stringify(ea) !== JSON.stringify(eb)) diffs.push(`${p}: ${JSON.stringify(ea)} != ${JSON.stringify(eb)}`);
  }
  for (const p of b.keys()) if (!a.has(p)) diffs.push(`${p}: unexpected`);
  return diffs;
}

/** Extracts like the installer must: numeric owners, modes, every xattr (capabilities) and ACLs. */
export async function extractImage(tarball: string, dest: string): Promise<void> {
  await run([
    'tar', '--extract', `--file=${tarball}`, '--zstd', `--directory=${dest}`,
    '--numeric-owner', '--same-permissions', '--same-owner', '--xattrs', '--xattrs-include=*', '--acls',
  ]);
}

/** A file with a bzImage setup header whose kernel_version field points at `version`. */
export function fakeBzImage(version: string, size = 0x4000): Buffer {
  const buf = Buffer.alloc(size);
  buf.write('HdrS', 0x202, 'latin1');
  buf.writeUInt16LE(0x020f, 0x206); // boot protocol 2.15
  const at = 0x1000;
  buf.writeUInt16LE(at - 0x200, 0x20e);
  buf.write(`${version} (builder@example) #1 SMP PREEMPT_DYNAMIC`, at, 'latin1');
  return buf;
}
