/**
 * The Debian path, for real: mmdebstrap from deb.debian.org → generic tree → tarball, extracted into a
 * fresh dir and compared entry by entry with the tree it came from.
 */
import { mkdir, readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StageError } from '../../build/lib/errors.ts';
import { memoryLogger } from '../../build/lib/log.ts';
import { capture } from '../../build/lib/run.ts';
import type { BootstrappedImage, ImageBuildContext } from '../../build/image/types.ts';
import type { ImageSpec } from '../../build/plan/plan.ts';
import { bootstrapImage, imageCacheKey } from '../../build/stages/bootstrap-image.ts';
import { extractBootFiles } from '../../build/stages/extract-bootfiles.ts';
import { packImage } from '../../build/stages/pack-image.ts';
import { diffSnapshots, extractImage, snapshotTree } from '../helpers/image-tree.ts';
import { FIXED_EPOCH, workspace } from '../helpers/workspace.ts';

const MIRROR = process.env.PORTACLUSTER_DEBIAN_MIRROR ?? 'http://deb.debian.org/debian';

describe('debian image with mmdebstrap', () => {
  let ws: { dir: string; cleanup: () => Promise<void> };
  let ctx: ImageBuildContext;
  let img: BootstrappedImage;
  let bootstrapMs = 0;
  // libcap2-bin before iputils-ping's postinst: ping then gets cap_net_raw instead of setuid.
  const spec: ImageSpec = { name: 'debian', distro: 'debian', release: 'bookworm', packages: ['libcap2-bin', 'iputils-ping'], mirror: MIRROR, components: ['main'] };

  beforeAll(async () => {
    ws = await workspace('pc-debian-');
    ctx = { cacheDir: join(ws.dir, 'cache'), workDir: join(ws.dir, 'work'), force: false, sourceDateEpoch: FIXED_EPOCH, log: memoryLogger() };
    const t0 = Date.now();
    img = await bootstrapImage(spec, ctx);
    bootstrapMs = Date.now() - t0;
  });
  afterAll(async () => ws?.cleanup());

  it('bootstraps a generic node OS with its own kernel, initramfs and modules', async () => {
    expect(img.fromCache).toBe(false);
    const r = img.rootDir;
    expect(await readFile(join(r, 'etc/machine-id'), 'utf8')).toBe('');
    expect((await readdir(join(r, 'etc/ssh'))).filter((n) => n.startsWith('ssh_host_'))).toEqual([]);
    await expect(stat(join(r, 'etc/hostname'))).rejects.toThrow();
    expect((await readdir(join(r, 'var/cache/apt/archives'))).filter((n) => n.endsWith('.deb'))).toEqual([]);
    await expect(stat(join(r, 'etc/apt/apt.conf.d/99mmdebstrap'))).rejects.toThrow();
    expect(await readFile(join(r, 'etc/systemd/system/ssh.service.d/regenerate-host-keys.conf'), 'utf8')).toContain('ssh-keygen -A');
    for (const p of ['usr/sbin/sshd', 'usr/bin/sudo', 'usr/lib/systemd/systemd-networkd', 'sbin/init']) {
      expect((await stat(join(r, p)).catch(() => null)) !== null, p).toBe(true);
    }

    const boot = await extractBootFiles(r, { distro: 'debian', outDir: join(ws.dir, 'dist/pxe'), osName: 'debian' });
    expect(boot.kernelVersion).toMatch(/^\d+\.\d+\.\d+-\d+-amd64$/);
    expect((await stat(join(r, 'lib/modules', boot.kernelVersion))).isDirectory()).toBe(true);
    expect((await stat(boot.kernel)).size).toBeGreaterThan(4_000_000);
    expect((await stat(boot.initramfs)).size).toBeGreaterThan(4_000_000);
  });

  it('packs a tarball that restores the tree exactly (owners, modes, links, devices, capabilities, ACLs)', async () => {
    const t0 = Date.now();
    const packed = await packImage(img.rootDir, { outDir: join(ws.dir, 'dist/images'), name: 'debian', sourceDateEpoch: FIXED_EPOCH, zstdLevel: 3, log: ctx.log });
    const packMs = Date.now() - t0;
    const dest = join(ws.dir, 'extracted');
    await mkdir(dest);
    await extractImage(packed.path, dest);
    const want = await snapshotTree(img.rootDir, { epoch: FIXED_EPOCH });
    const got = await snapshotTree(dest, { epoch: FIXED_EPOCH });
    expect(diffSnapshots(want, got)).toEqual([]);

    // What the comparison covered, in the real image.
    const entries = [...want.values()];
    expect(entries.filter((e) => e.hardlinkOf).length).toBeGreaterThan(0);
    expect(entries.filter((e) => e.type === 'char').length).toBeGreaterThan(0);
    expect(entries.filter((e) => e.type === 'symlink').length).toBeGreaterThan(100);
    expect(entries.filter((e) => e.uid !== 0 || e.gid !== 0).length).toBeGreaterThan(0);
    expect(await capture(['getcap', join(dest, 'usr/bin/ping')])).toMatch(/cap_net_raw[=+]e?p/);
    expect(got.get('var/log/journal')?.xattrs?.['system.posix_acl_default']).toBeDefined();

    const again = await packImage(img.rootDir, { outDir: join(ws.dir, 'again'), name: 'debian', sourceDateEpoch: FIXED_EPOCH, zstdLevel: 3, log: ctx.log });
    expect(again.sha256).toBe(packed.sha256);

    const treeBytes = Number((await capture(['du', '--summarize', '--bytes', img.rootDir])).split(/\s/)[0]);
    console.log(
      `debian e2e: mmdebstrap ${(bootstrapMs / 1000).toFixed(1)} s, tree ${(treeBytes / 1e6).toFixed(0)} MB, ` +
        `tarball ${(packed.size / 1e6).toFixed(0)} MB (zstd -3), pack ${(packMs / 1000).toFixed(1)} s, ${entries.length} entries`,
    );
  });

  it('hits the cache when nothing changed; a new package is a new key', async () => {
    const t0 = Date.now();
    const hit = await bootstrapImage(spec, ctx);
    expect(hit).toEqual({ ...img, fromCache: true });
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(await imageCacheKey({ ...spec, packages: [...spec.packages, 'curl'] }, ctx)).not.toBe(img.cacheKey);
    expect(await imageCacheKey({ ...spec, packages: [...spec.packages].reverse() }, ctx)).toBe(img.cacheKey);
  });

  it('an unknown package fails with apt’s reason and leaves nothing in the cache', async () => {
    const before = await readdir(join(ctx.cacheDir, 'rootfs'));
    const e = await bootstrapImage({ ...spec, packages: ['portacluster-no-such-package'] }, ctx).then(() => null, (x: unknown) => x as Error);
    expect(e).toBeInstanceOf(StageError);
    expect(e?.message).toMatch(/mmdebstrap could not build Debian bookworm/);
    expect(e?.message).toMatch(/portacluster-no-such-package/);
    expect(await readdir(join(ctx.cacheDir, 'rootfs'))).toEqual(before);
  });

  it('an unreachable mirror fails with the mirror named and leaves nothing in the cache', async () => {
    const before = await readdir(join(ctx.cacheDir, 'rootfs'));
    // Port 9 (discard) on loopback: nothing listens, the connection is refused at once.
    const e = await bootstrapImage({ ...spec, mirror: 'http://127.0.0.1:9/debian' }, ctx).then(() => null, (x: unknown) => x as Error);
    expect(e).toBeInstanceOf(StageError);
    expect(e?.message).toMatch(/mmdebstrap could not build Debian bookworm/);
    expect(e?.message).toContain('http://127.0.0.1:9/debian');
    expect(await readdir(join(ctx.cacheDir, 'rootfs'))).toEqual(before);
  });
});
