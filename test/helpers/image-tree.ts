/**
 * Helpers for the golden-image tests: a comparable snapshot of a root tree (what a faithful tarball must
 * restore), a fake bzImage, extraction of a packed image with the flags a node's installer uses, and a
 * small sample tree holding everything a faithful image must carry.
 */
import { createHash } from 'node:crypto';
import { chmod, chown, link, lchown, lstat, mkdir, readFile, readlink, readdir, symlink, utimes, writeFile } from 'node:fs/promises';
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

export const OLD = 1_600_000_000; // before FIXED_EPOCH: kept as is; anything newer is clamped

/** A small root tree with everything a faithful tarball must carry. `reverse` creates it in another order. */
export async function buildTree(root: string, reverse = false): Promise<void> {
  const steps: Array<() => Promise<unknown>> = [
    async () => {
      await mkdir(join(root, 'bin'), { recursive: true });
      await writeFile(join(root, 'bin/ping'), 'ping binary\n', { mode: 0o755 });
      await run(['setcap', 'cap_net_raw+ep', join(root, 'bin/ping')]);
      await writeFile(join(root, 'bin/su'), 'su binary\n');
      await chmod(join(root, 'bin/su'), 0o4755);
    },
    async () => {
      await mkdir(join(root, 'etc'), { recursive: true });
      await writeFile(join(root, 'etc/shadow'), 'root:*:19000::::::\n');
      await chown(join(root, 'etc/shadow'), 0, 42);
      await chmod(join(root, 'etc/shadow'), 0o640);
      await writeFile(join(root, 'etc/old-config'), 'kept mtime\n');
      await utimes(join(root, 'etc/old-config'), OLD, OLD);
    },
    async () => {
      await mkdir(join(root, 'home/u1234'), { recursive: true, mode: 0o700 });
      await writeFile(join(root, 'home/u1234/notes'), 'odd owner\n');
      await chown(join(root, 'home/u1234/notes'), 1234, 5678);
      await chown(join(root, 'home/u1234'), 1234, 1234);
      // Beyond ustar's 8-digit octal field: needs a pax header.
      await writeFile(join(root, 'home/bigid'), 'big uid\n');
      await chown(join(root, 'home/bigid'), 4_000_000, 4_000_001);
    },
    async () => {
      await mkdir(join(root, 'var/shared'), { recursive: true });
      await run(['setfacl', '-m', 'u:1234:rwx,g:5678:rx', join(root, 'var/shared')]);
      await run(['setfacl', '-d', '-m', 'u:1234:rwx', join(root, 'var/shared')]);
      await writeFile(join(root, 'var/tagged'), 'user xattr\n');
      await run(['setfattr', '-n', 'user.portacluster', '-v', 'golden', join(root, 'var/tagged')]);
    },
    async () => {
      await mkdir(join(root, 'usr/lib'), { recursive: true });
      await writeFile(join(root, 'usr/lib/libfoo.so.1.0'), Buffer.alloc(70_000, 7));
      await link(join(root, 'usr/lib/libfoo.so.1.0'), join(root, 'usr/lib/libfoo-hard'));
      await symlink('libfoo.so.1.0', join(root, 'usr/lib/libfoo.so.1'));
      await symlink('/usr/lib/libfoo.so.1.0', join(root, 'usr/lib/abs-link'));
      await symlink('does-not-exist', join(root, 'usr/lib/dangling'));
      await lchown(join(root, 'usr/lib/dangling'), 1234, 1234);
      await writeFile(join(root, 'usr/lib/' + 'x'.repeat(150) + '-long-name-ünïcode'), 'long\n');
    },
    async () => {
      await mkdir(join(root, 'dev'), { recursive: true });
      await run(['mknod', '--mode=0666', join(root, 'dev/null'), 'c', '1', '3']);
      await run(['mknod', '--mode=0660', join(root, 'dev/loop0'), 'b', '7', '0']);
      await chown(join(root, 'dev/loop0'), 0, 6);
      await run(['mkfifo', '--mode=0600', join(root, 'dev/initctl')]);
    },
  ];
  for (const step of reverse ? [...steps].reverse() : steps) await step();
}
