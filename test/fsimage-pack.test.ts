/**
 * packFsImage with the real e2fsprogs and zstd: the same tree gives the same bytes, and the image, mounted
 * through a loop device, holds the tree as it was (owners, modes, links, devices, capabilities, ACLs).
 */
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CommandError, StageError } from '../build/lib/errors.ts';
import { memoryLogger } from '../build/lib/log.ts';
import { capture, run } from '../build/lib/run.ts';
import { derivedUuid, fsGeometry, packFsImage, packFsImageCached, usedInodes } from '../build/stages/pack-fsimage.ts';
import { buildTree, diffSnapshots, OLD, snapshotTree } from './helpers/image-tree.ts';
import { FIXED_EPOCH, workspace } from './helpers/workspace.ts';

const KEY = 'ab'.repeat(32);
const opts = (outDir: string, epoch = FIXED_EPOCH) => ({ outDir, name: 'img', label: 'root', contentKey: KEY, sourceDateEpoch: epoch, zstdLevel: 3, log: memoryLogger() });

describe('packFsImage', () => {
  let ws: { dir: string; cleanup: () => Promise<void> };
  beforeEach(async () => {
    ws = await workspace('pc-fsimage-');
  });
  afterEach(async () => ws.cleanup());

  it('an unchanged tree is not packed again: the cache hands back the same image; another label misses', async () => {
    const a = join(ws.dir, 'a');
    await buildTree(a);
    const cacheDir = join(ws.dir, 'cache');
    const first = await packFsImageCached(a, { ...opts(join(ws.dir, 'c1')), cacheDir });
    const again = await packFsImageCached(a, { ...opts(join(ws.dir, 'c2')), cacheDir });
    expect(first.fromCache).toBe(false);
    expect(again).toMatchObject({ fromCache: true, sha256: first.sha256, fileName: first.fileName, imageBytes: first.imageBytes });
    expect(Buffer.compare(await readFile(first.path), await readFile(again.path))).toBe(0);
    await run(['sha256sum', '--check', '--strict', `${again.fileName}.sha256`], { cwd: join(ws.dir, 'c2') });
    const other = await packFsImageCached(a, { ...opts(join(ws.dir, 'c3')), label: 'other', cacheDir });
    expect(other.fromCache).toBe(false);
    expect(other.sha256).not.toBe(first.sha256);
  });

  it('gives the same bytes for the same tree, however and whenever it was made', async () => {
    const a = join(ws.dir, 'a');
    await buildTree(a);
    // A later file (clamped) and a copy made in the opposite order elsewhere: other ctimes, other readdir order.
    await writeFile(join(a, 'etc/new'), 'made during the build\n');
    await utimes(join(a, 'etc/new'), FIXED_EPOCH + 5000, FIXED_EPOCH + 5000);
    const shm = await mkdtemp('/dev/shm/pc-fsimage-').catch(() => null);
    const b = join(shm ?? ws.dir, 'b');
    try {
      await buildTree(b, true);
      await writeFile(join(b, 'etc/new'), 'made during the build\n');
      await utimes(join(b, 'etc/new'), FIXED_EPOCH + 9000, FIXED_EPOCH + 9000);
      // A socket left behind: tar leaves it out, so must the image (removed after mke2fs -d copied it).
      for (const r of [a, b]) await run([process.execPath, '-e', 'require("net").createServer().listen(process.argv[1], () => process.exit(0))', join(r, 'etc/left.sock')]);
      const p1 = await packFsImage(a, opts(join(ws.dir, 'o1')));
      await new Promise((r) => setTimeout(r, 1100));
      await readFile(join(a, 'etc/shadow')); // atime
      const p2 = await packFsImage(a, opts(join(ws.dir, 'o2')));
      const p3 = await packFsImage(b, opts(join(ws.dir, 'o3')));
      expect(p1.fileName).toBe(`img-${p1.sha256.slice(0, 16)}.ext4.zst`);
      expect(p2.sha256).toBe(p1.sha256);
      expect(p3.sha256).toBe(p1.sha256);
      expect(Buffer.compare(await readFile(p1.path), await readFile(p3.path))).toBe(0);
      expect(createHash('sha256').update(await readFile(p1.path)).digest('hex')).toBe(p1.sha256);
      expect((await stat(p1.path)).size).toBe(p1.size);
      await run(['sha256sum', '--check', '--strict', `${p1.fileName}.sha256`], { cwd: join(ws.dir, 'o1') });
      const raw = join(ws.dir, 'p1.ext4');
      await run(['zstd', '-d', '-q', '-o', raw, '--', p1.path]);
      expect((await run(['debugfs', '-R', 'stat /etc/left.sock', raw])).stderr).toContain('File not found');
      await run(['e2fsck', '-fn', raw]);
      const p4 = await packFsImage(a, opts(join(ws.dir, 'o4'), FIXED_EPOCH + 1));
      expect(p4.sha256).not.toBe(p1.sha256);
    } finally {
      if (shm) await rm(shm, { recursive: true, force: true });
    }
  });

  it('restores the tree: owners, modes, links, hard links, devices, capabilities, ACLs, xattrs', async () => {
    const root = join(ws.dir, 'root');
    await buildTree(root);
    // A directory of several blocks, which mke2fs -d leaves unindexed.
    await mkdir(join(root, 'usr/share/many'), { recursive: true });
    for (let i = 0; i < 400; i++) await writeFile(join(root, 'usr/share/many', `entry-with-a-longish-name-${i}`), '');
    const packed = await packFsImage(root, opts(join(ws.dir, 'out')));
    const raw = join(ws.dir, 'root.ext4');
    await run(['zstd', '-d', '-q', '-o', raw, '--', packed.path]);
    expect((await stat(raw)).size).toBe(packed.imageBytes);
    expect(packed.imageBytes % (4 * 1024 * 1024)).toBe(0);
    // What a node runs: nothing left to fix or optimize (exit 0, no pass 3A).
    const fsck = await run(['e2fsck', '-f', '-y', raw]);
    expect(fsck.stdout).not.toMatch(/Pass 3A|MODIFIED/);
    expect(await capture(['debugfs', '-R', 'stat /usr/share/many', raw])).toMatch(/Flags: 0x\d*1\d{3}\b/);
    const info = await capture(['dumpe2fs', '-h', raw]);
    expect(info).toMatch(/^Filesystem volume name:\s+root$/m);
    expect(info).toMatch(new RegExp(`^Filesystem UUID:\\s+${derivedUuid(KEY, 'fs-uuid')}$`, 'm'));
    expect(info).toMatch(/^Filesystem features:.*\bmetadata_csum_seed\b/m);
    expect(info).toMatch(/^Block size:\s+4096$/m);

    const mnt = join(ws.dir, 'mnt');
    await mkdir(mnt);
    await run(['mount', '-o', 'loop,ro', '--', raw, mnt]);
    try {
      const want = await snapshotTree(root, { epoch: FIXED_EPOCH });
      const got = await snapshotTree(mnt, { epoch: FIXED_EPOCH });
      got.delete('lost+found');
      expect(diffSnapshots(want, got)).toEqual([]);
      expect(await capture(['getcap', join(mnt, 'bin/ping')])).toMatch(/cap_net_raw[=+]ep/);
      expect(await capture(['getfacl', '--omit-header', '--numeric', join(mnt, 'var/shared')])).toContain('user:1234:rwx');
      expect(got.get('usr/lib/libfoo-hard')?.hardlinkOf ?? got.get('usr/lib/libfoo.so.1.0')?.hardlinkOf).toBeDefined();
      expect(got.get('dev/loop0')).toMatchObject({ type: 'block', gid: 6, mode: '660', rdev: '700' });
      expect((await stat(join(mnt, 'etc/old-config'))).mtimeMs / 1000).toBe(OLD);
      const st = await stat(join(mnt, 'bin/ping'));
      expect([st.mtimeMs / 1000, st.atimeMs / 1000, st.ctimeMs / 1000]).toEqual([FIXED_EPOCH, FIXED_EPOCH, FIXED_EPOCH]);
    } finally {
      await run(['umount', '--', mnt]);
    }
  });

  it('fails cleanly: a missing tree, a bad zstd level, a tree that does not fit; nothing left in outDir', async () => {
    const out = join(ws.dir, 'out');
    await expect(packFsImage(join(ws.dir, 'nope'), opts(out))).rejects.toThrow(StageError);
    const root = join(ws.dir, 'root');
    await mkdir(join(root, 'etc'), { recursive: true });
    await expect(packFsImage(root, { ...opts(out), zstdLevel: 0 })).rejects.toThrow(/pack-fsimage: zstd level must be .* \(got 0\)/);
    await expect(packFsImage(root, { ...opts(out), label: 'a label' })).rejects.toThrow(/not an ext4 label/);
    // A mount inside the tree: mke2fs -d would copy it.
    await mkdir(join(root, 'proc'));
    await run(['mount', '-t', 'tmpfs', 'none', join(root, 'proc')]);
    try {
      await expect(packFsImage(root, opts(out))).rejects.toThrow(/pack-fsimage: .*\/proc is a mount point inside the tree/);
    } finally {
      await run(['umount', join(root, 'proc')]);
    }
    // A failing mke2fs (stand-in first on PATH): the command line, exit code and stderr reach the error.
    const bin = join(ws.dir, 'bin');
    await mkdir(bin);
    await writeFile(join(bin, 'mke2fs'), '#!/bin/sh\necho "mke2fs: no space left on device while populating" >&2\nexit 1\n', { mode: 0o755 });
    const path = process.env.PATH;
    process.env.PATH = `${bin}:${path}`;
    try {
      const err = await packFsImage(root, opts(out)).catch((e: Error) => e);
      expect(err).toBeInstanceOf(CommandError);
      expect((err as Error).message).toMatch(/^command failed: mke2fs -q -F -t ext4 .* -d .*\n  exited with code 1\n  stderr \(last lines\):\n    mke2fs: no space left/);
    } finally {
      process.env.PATH = path;
    }
    expect((await readdir(out)).filter((n) => n.startsWith('.'))).toEqual([]);
  });
});

describe('fs image helpers', () => {
  it('sizes the image for the tree with room for metadata and the usual inode ratio', () => {
    const g = fsGeometry({ dataBytes: 697 * 1024 ** 2, inodes: 17_036 });
    expect(g.bytes).toBe(840 * 1024 ** 2);
    expect(g.inodes).toBe(g.bytes / 16384);
    const many = fsGeometry({ dataBytes: 10 * 1024 ** 2, inodes: 100_000 });
    expect(many.inodes).toBe(126_024);
  });

  it('reads the used inodes from dumpe2fs', () => {
    const text = 'Inodes per group:         8\n\nGroup 0: (Blocks 0-32767)\n  Free inodes: 5-6, 8\nGroup 1: (Blocks 32768-65535)\n  Free inodes: 9-10, 12-16\nGroup 2:\n  Free inodes: \n';
    expect(usedInodes(text)).toEqual([1, 2, 3, 4, 7, 11, 17, 18, 19, 20, 21, 22, 23, 24]);
  });

  it('derives a stable version-4 UUID per purpose', () => {
    expect(derivedUuid(KEY, 'fs-uuid')).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(derivedUuid(KEY, 'fs-uuid')).toBe(derivedUuid(KEY, 'fs-uuid'));
    expect(derivedUuid(KEY, 'hash-seed')).not.toBe(derivedUuid(KEY, 'fs-uuid'));
  });
});
