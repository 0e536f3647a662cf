import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readdir, rm, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { HostToolError, StageError } from '../build/lib/errors.ts';
import { memoryLogger } from '../build/lib/log.ts';
import { capture, run } from '../build/lib/run.ts';
import { sweepStale } from '../build/image/cache.ts';
import { makeGeneric } from '../build/image/generic.ts';
import { bootstrapImage } from '../build/stages/bootstrap-image.ts';
import { packImage, packImageCached } from '../build/stages/pack-image.ts';
import { buildTree, diffSnapshots, extractImage, OLD, snapshotTree } from './helpers/image-tree.ts';
import { FIXED_EPOCH, workspace } from './helpers/workspace.ts';

describe('packImage', () => {
  let ws: { dir: string; cleanup: () => Promise<void> };
  beforeEach(async () => {
    ws = await workspace('pc-pack-');
  });
  afterEach(async () => ws.cleanup());

  it('restores owners, modes, links, hard links, device nodes, capabilities, ACLs and xattrs', async () => {
    const root = join(ws.dir, 'root');
    await buildTree(root);
    const packed = await packImage(root, { outDir: join(ws.dir, 'out'), name: 'test', sourceDateEpoch: FIXED_EPOCH, zstdLevel: 3, log: memoryLogger() });

    expect(packed.fileName).toMatch(/^test-[0-9a-f]{16}\.tar\.zst$/);
    expect(packed.fileName).toBe(`test-${packed.sha256.slice(0, 16)}.tar.zst`);
    const bytes = await readFile(packed.path);
    expect(createHash('sha256').update(bytes).digest('hex')).toBe(packed.sha256);
    expect(bytes.length).toBe(packed.size);
    await run(['sha256sum', '--check', '--strict', `${packed.fileName}.sha256`], { cwd: join(ws.dir, 'out') });

    const dest = join(ws.dir, 'extracted');
    await mkdir(dest);
    await extractImage(packed.path, dest);
    const want = await snapshotTree(root, { epoch: FIXED_EPOCH });
    const got = await snapshotTree(dest, { epoch: FIXED_EPOCH });
    expect(diffSnapshots(want, got)).toEqual([]);

    // The snapshot compares raw xattrs; say the important ones in words too.
    expect(await capture(['getcap', join(dest, 'bin/ping')])).toMatch(/cap_net_raw[=+]ep/);
    expect(await capture(['getfacl', '--omit-header', '--numeric', join(dest, 'var/shared')])).toContain('user:1234:rwx');
    expect(got.get('usr/lib/libfoo.so.1.0')?.hardlinkOf ?? got.get('usr/lib/libfoo-hard')?.hardlinkOf).toBeDefined();
    expect(got.get('dev/loop0')).toMatchObject({ type: 'block', gid: 6, mode: '660' });
    expect(got.get('home/bigid')).toMatchObject({ uid: 4_000_000, gid: 4_000_001 });
    expect((await stat(join(dest, 'etc/old-config'))).mtimeMs / 1000).toBe(OLD);
    expect((await stat(join(dest, 'bin/ping'))).mtimeMs / 1000).toBe(FIXED_EPOCH);
  });

  it('gives the same bytes for the same tree, however and whenever it was made', async () => {
    const a = join(ws.dir, 'a');
    // On tmpfs readdir lists newest first, on ext4 in hash order: only --sort=name makes them agree.
    const shm = await mkdtemp('/dev/shm/pc-pack-').catch(() => null);
    const b = join(shm ?? ws.dir, 'b');
    await buildTree(a);
    await buildTree(b, true).catch(async (e) => {
      if (shm) await rm(shm, { recursive: true, force: true });
      throw e;
    });
    const log = memoryLogger();
    const p1 = await packImage(a, { outDir: join(ws.dir, 'o1'), name: 'img', sourceDateEpoch: FIXED_EPOCH, zstdLevel: 3, log });
    const p2 = await packImage(a, { outDir: join(ws.dir, 'o2'), name: 'img', sourceDateEpoch: FIXED_EPOCH, zstdLevel: 3, log });
    const p3 = await packImage(b, { outDir: join(ws.dir, 'o3'), name: 'img', sourceDateEpoch: FIXED_EPOCH, zstdLevel: 3, log });
    if (shm) await rm(shm, { recursive: true, force: true });
    expect(p2.sha256).toBe(p1.sha256);
    expect(p3.sha256).toBe(p1.sha256);
    expect(Buffer.compare(await readFile(p1.path), await readFile(p3.path))).toBe(0);

    // No pid in pax header names, no atime/ctime records.
    const raw = await capture(['sh', '-c', 'zstd -dc "$1" | strings', 'sh', p1.path]);
    expect(raw).not.toMatch(/PaxHeaders\.\d/);
    expect(raw).not.toMatch(/\d+ (atime|ctime)=/);

    const p4 = await packImage(a, { outDir: join(ws.dir, 'o4'), name: 'img', sourceDateEpoch: FIXED_EPOCH + 1, zstdLevel: 3, log });
    expect(p4.sha256).not.toBe(p1.sha256);
  });

  it('fails cleanly: a missing tree, a bad zstd level, and nothing left in outDir', async () => {
    const log = memoryLogger();
    const out = join(ws.dir, 'out');
    await expect(packImage(join(ws.dir, 'nope'), { outDir: out, name: 'x', sourceDateEpoch: FIXED_EPOCH, zstdLevel: 3, log })).rejects.toThrow(StageError);
    const root = join(ws.dir, 'root');
    await mkdir(join(root, 'etc'), { recursive: true });
    await expect(packImage(root, { outDir: out, name: 'x', sourceDateEpoch: FIXED_EPOCH, zstdLevel: 99, log })).rejects.toThrow(/zstd level must be .* \(got 99\)/);
    await packImage(root, { outDir: out, name: 'x', sourceDateEpoch: FIXED_EPOCH, zstdLevel: 19, log });
    expect((await readdir(out)).filter((n) => n.startsWith('.'))).toEqual([]);
  });

  it('names a missing tar or zstd', async () => {
    const root = join(ws.dir, 'root');
    await mkdir(root);
    const path = process.env.PATH;
    process.env.PATH = '/nonexistent';
    try {
      const e = await packImage(root, { outDir: join(ws.dir, 'out'), name: 'x', sourceDateEpoch: FIXED_EPOCH, zstdLevel: 3, log: memoryLogger() }).catch((x: unknown) => x);
      expect(e).toBeInstanceOf(HostToolError);
      expect((e as Error).message).toMatch(/could not find '(tar|zstd)', which pack-image needs/);
    } finally {
      process.env.PATH = path;
    }
    expect((await readdir(join(ws.dir, 'out'))).filter((n) => n.startsWith('.'))).toEqual([]);
  });

  it('a prepared rootfs is used as is, under a key that follows its content', async () => {
    const root = join(ws.dir, 'root');
    await buildTree(root);
    const ctx = { cacheDir: join(ws.dir, 'cache'), workDir: join(ws.dir, 'work'), force: false, sourceDateEpoch: FIXED_EPOCH, log: memoryLogger() };
    const spec = { name: 'byo', distro: 'debian' as const, release: 'bookworm', packages: [], mirror: null, components: ['main'], rootfs: root };
    const a = await bootstrapImage(spec, ctx);
    expect(a.rootDir).toBe(root);
    expect((await bootstrapImage(spec, ctx)).cacheKey).toBe(a.cacheKey);
    await writeFile(join(root, 'etc/shadow'), 'changed\n');
    expect((await bootstrapImage(spec, ctx)).cacheKey).not.toBe(a.cacheKey);
    await expect(readdir(ctx.cacheDir)).rejects.toThrow(); // nothing bootstrapped, nothing cached
  });

  it('packImageCached packs once per tree key and copies from the cache after', async () => {
    const root = join(ws.dir, 'root');
    await buildTree(root);
    const log = memoryLogger();
    const opts = { cacheDir: join(ws.dir, 'cache'), name: 'img', sourceDateEpoch: FIXED_EPOCH, zstdLevel: 3, log };
    const image = { rootDir: root, cacheKey: 'tree-a', fromCache: true };
    const first = await packImageCached(image, { ...opts, outDir: join(ws.dir, 'd1') });
    const second = await packImageCached(image, { ...opts, outDir: join(ws.dir, 'd2') });
    expect(first.fromCache).toBe(false);
    expect(second.fromCache).toBe(true);
    expect(second.sha256).toBe(first.sha256);
    expect(createHash('sha256').update(await readFile(second.path)).digest('hex')).toBe(first.sha256);
    await run(['sha256sum', '--check', '--strict', `${second.fileName}.sha256`], { cwd: join(ws.dir, 'd2') });

    const other = await packImageCached({ ...image, cacheKey: 'tree-b' }, { ...opts, outDir: join(ws.dir, 'd3') });
    expect(other.fromCache).toBe(false);
    expect((await readdir(join(ws.dir, 'cache/packed'))).filter((n) => n.startsWith('.'))).toEqual([]);
  });
});

describe('cache sweeping', () => {
  it('removes what a dead build left, but not while an orphaned tool still works on it', async () => {
    const ws = await workspace('pc-sweep-');
    try {
      const area = join(ws.dir, 'rootfs');
      const left = join(area, '.tmp-999999999-abcd-debian-key');
      await mkdir(join(left, 'rootfs/etc'), { recursive: true });
      // Stands for an orphaned mmdebstrap: a live process naming the dir on its command line.
      const orphan = spawn('sh', ['-c', 'sleep 30', left], { stdio: 'ignore' });
      const gone = new Promise((r) => orphan.once('exit', r));
      await new Promise((r) => orphan.once('spawn', r));
      try {
        expect(await sweepStale(area)).toEqual([]);
      } finally {
        orphan.kill();
        await gone;
      }
      expect(await sweepStale(area)).toEqual(['.tmp-999999999-abcd-debian-key']);
      expect(await readdir(area)).toEqual([]);
    } finally {
      await ws.cleanup();
    }
  });
});

describe('makeGeneric', () => {
  it('strips per-node identity, keeps directory layout', async () => {
    const ws = await workspace('pc-generic-');
    try {
      const r = ws.dir;
      for (const d of ['etc/ssh', 'var/log/journal/abc', 'var/cache/apt/archives/partial', 'var/lib/apt/lists/partial', 'var/cache/pacman/pkg', 'tmp', 'usr/lib/systemd/system', 'var/lib/dbus']) {
        await mkdir(join(r, d), { recursive: true });
      }
      const files: Record<string, string> = {
        'etc/machine-id': '0123456789abcdef0123456789abcdef\n',
        'var/lib/dbus/machine-id': '0123456789abcdef0123456789abcdef\n',
        'etc/hostname': 'buildhost\n',
        'etc/ssh/ssh_host_ed25519_key': 'secret',
        'etc/ssh/ssh_host_ed25519_key.pub': 'public',
        'etc/ssh/sshd_config': 'PermitRootLogin no\n',
        'var/log/journal/abc/system.journal': 'x',
        'var/log/dpkg.log': 'x',
        'var/cache/apt/archives/foo.deb': 'x',
        'var/cache/apt/pkgcache.bin': 'x',
        'var/lib/apt/lists/deb.debian.org_Packages': 'x',
        'var/cache/pacman/pkg/foo.pkg.tar.zst': 'x',
        'tmp/leftover': 'x',
        'usr/lib/systemd/system/ssh.service': '[Service]\n',
      };
      for (const [p, c] of Object.entries(files)) await writeFile(join(r, p), c);

      await makeGeneric(r);
      expect(await readFile(join(r, 'etc/machine-id'), 'utf8')).toBe('');
      expect((await stat(join(r, 'etc/machine-id'))).mode & 0o777).toBe(0o444);
      for (const gone of ['var/lib/dbus/machine-id', 'etc/hostname', 'etc/ssh/ssh_host_ed25519_key', 'etc/ssh/ssh_host_ed25519_key.pub', 'var/log/dpkg.log', 'var/log/journal/abc/system.journal', 'var/cache/apt/archives/foo.deb', 'var/cache/apt/pkgcache.bin', 'var/lib/apt/lists/deb.debian.org_Packages', 'var/cache/pacman/pkg/foo.pkg.tar.zst', 'tmp/leftover']) {
        await expect(stat(join(r, gone)), gone).rejects.toThrow();
      }
      expect(await readFile(join(r, 'etc/ssh/sshd_config'), 'utf8')).toContain('PermitRootLogin');
      for (const kept of ['var/log/journal/abc', 'var/cache/apt/archives/partial', 'var/lib/apt/lists/partial', 'tmp']) {
        expect((await stat(join(r, kept))).isDirectory(), kept).toBe(true);
      }
      expect(await readFile(join(r, 'etc/systemd/system/ssh.service.d/regenerate-host-keys.conf'), 'utf8')).toContain('ssh-keygen -A');
    } finally {
      await ws.cleanup();
    }
  });
});
