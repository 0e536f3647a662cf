/**
 * The Arch path, for real: a pacman repository of tiny packages made here with makepkg + repo-add (the
 * Arch mirror is out of reach), then pacstrap through bootstrapImage with its generated pacman.conf.
 */
import { spawn } from 'node:child_process';
import { chmod, chown, copyFile, mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HostToolError, StageError } from '../../build/lib/errors.ts';
import { memoryLogger } from '../../build/lib/log.ts';
import { capture, run } from '../../build/lib/run.ts';
import { archBackend, pacmanConf } from '../../build/image/arch.ts';
import type { ImageBuildContext } from '../../build/image/types.ts';
import type { ArchImage } from '../../build/plan/plan.ts';
import { bootstrapImage, checkBootstrapHost, imageCacheKey } from '../../build/stages/bootstrap-image.ts';
import { extractBootFiles } from '../../build/stages/extract-bootfiles.ts';
import { packImage } from '../../build/stages/pack-image.ts';
import { diffSnapshots, extractImage, fakeBzImage, snapshotTree } from '../helpers/image-tree.ts';
import { FIXED_EPOCH, workspace } from '../helpers/workspace.ts';

const KVER = '6.6.7-arch1-1';
const NOBODY = 65534;

/** name → package() body; every package is arch=any with no sources. */
const PACKAGES: Record<string, { depends?: string[]; body: string; install?: string }> = {
  filesystem: {
    body: `mkdir -p "$pkgdir"/{boot,dev,etc,proc,run,sys,tmp,usr/bin,usr/lib,var/log,var/cache/pacman/pkg}
      ln -s usr/bin "$pkgdir/bin"; ln -s usr/lib "$pkgdir/lib"
      # A shell in the target: pacman runs install scriptlets in a chroot.
      install -m 0755 "$startdir/busybox" "$pkgdir/usr/bin/busybox"; ln -s busybox "$pkgdir/usr/bin/sh"
      echo "127.0.0.1 localhost" > "$pkgdir/etc/hosts"; echo buildhost > "$pkgdir/etc/hostname"
      : > "$pkgdir/etc/machine-id"`,
  },
  base: { depends: ['filesystem'], body: `mkdir -p "$pkgdir/usr/share/base"; echo base > "$pkgdir/usr/share/base/README"` },
  linux: {
    body: `install -Dm0644 "$startdir/vmlinuz" "$pkgdir/boot/vmlinuz-linux"
      install -Dm0644 "$startdir/vmlinuz" "$pkgdir/usr/lib/modules/${KVER}/vmlinuz"
      echo "initramfs for ${KVER}" > "$pkgdir/boot/initramfs-linux.img"
      mkdir -p "$pkgdir/usr/lib/modules/${KVER}/kernel"`,
  },
  openssh: {
    body: `install -Dm0755 /dev/null "$pkgdir/usr/bin/sshd"
      install -Dm0600 /dev/null "$pkgdir/etc/ssh/ssh_host_ed25519_key"; install -Dm0644 /dev/null "$pkgdir/etc/ssh/sshd_config"`,
  },
  sudo: { body: `install -Dm4755 /dev/null "$pkgdir/usr/bin/sudo"; install -dm0750 "$pkgdir/etc/sudoers.d"` },
  hello: { body: `install -Dm0755 /dev/null "$pkgdir/usr/bin/hello"` },
  // Holds pacstrap in its scriptlet long enough to be killed mid-bootstrap.
  slow: { body: `install -Dm0644 /dev/null "$pkgdir/usr/share/slow"`, install: 'post_install() { sleep 60; }' },
};

function pkgbuild(name: string, p: (typeof PACKAGES)[string]): string {
  return [
    `pkgname=${name}`,
    'pkgver=1.0',
    'pkgrel=1',
    'arch=(any)',
    `depends=(${(p.depends ?? []).join(' ')})`,
    'options=(!strip !debug !docs)',
    p.install ? `install=${name}.install` : '',
    `package() {\n      ${p.body}\n}`,
    '',
  ].join('\n');
}

/** makepkg refuses root: build as nobody in a dir nobody owns. */
async function buildRepo(dir: string): Promise<string> {
  const repo = join(dir, 'repo');
  await mkdir(repo, { recursive: true });
  for (const [name, p] of Object.entries(PACKAGES)) {
    const src = join(dir, 'pkgbuilds', name);
    await mkdir(src, { recursive: true });
    await writeFile(join(src, 'PKGBUILD'), pkgbuild(name, p));
    if (p.install) await writeFile(join(src, `${name}.install`), p.install + '\n');
    if (name === 'linux') await writeFile(join(src, 'vmlinuz'), fakeBzImage(KVER));
    if (name === 'filesystem') await copyFile('/bin/busybox', join(src, 'busybox'));
    await run(['chown', '-R', `${NOBODY}:${NOBODY}`, join(dir, 'pkgbuilds')]);
    await run(['setpriv', `--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', 'makepkg', '--nodeps', '--force'], {
      cwd: src,
      env: { ...process.env, HOME: src, PKGEXT: '.pkg.tar.zst', PKGDEST: src, BUILDDIR: join(src, 'build'), SOURCE_DATE_EPOCH: String(FIXED_EPOCH) },
    });
    const pkg = (await readdir(src)).find((f) => f.endsWith('.pkg.tar.zst'));
    if (!pkg) throw new Error(`makepkg made no package for ${name}`);
    await copyFile(join(src, pkg), join(repo, pkg));
  }
  const pkgs = (await readdir(repo)).filter((f) => f.endsWith('.pkg.tar.zst')).map((f) => join(repo, f));
  await run(['repo-add', '--quiet', join(repo, 'pctest.db.tar.gz'), ...pkgs]);
  return repo;
}

describe('arch image from a local pacman repo', () => {
  let ws: { dir: string; cleanup: () => Promise<void> };
  let spec: ArchImage;
  let ctx: ImageBuildContext;

  beforeAll(async () => {
    ws = await workspace('pc-arch-');
    await chmod(ws.dir, 0o755);
    const repo = await buildRepo(ws.dir);
    spec = { name: 'arch', distro: 'arch', release: 'rolling', packages: [], mirror: `file://${repo}`, repos: ['pctest'] };
    ctx = { cacheDir: join(ws.dir, 'cache'), workDir: join(ws.dir, 'work'), force: false, sourceDateEpoch: FIXED_EPOCH, log: memoryLogger() };
  });
  afterAll(async () => ws?.cleanup());

  it('pacstraps the base set with the generated pacman.conf, strips identity, and packs faithfully', async () => {
    const t0 = Date.now();
    const img = await bootstrapImage(spec, ctx);
    const built = Date.now() - t0;
    expect(img.fromCache).toBe(false);
    const installed = await capture(['pacman', '--query', `--root=${img.rootDir}`, `--dbpath=${join(img.rootDir, 'var/lib/pacman')}`]);
    expect(installed.split('\n').map((l) => l.split(' ')[0]).sort()).toEqual(['base', 'filesystem', 'linux', 'openssh', 'sudo']);

    // The config pacstrap was given is kept in the cache entry, and is exactly the generated one.
    const conf = await readFile(join(img.rootDir, '..', 'pacman.conf'), 'utf8');
    expect(conf).toContain('[pctest]\nServer = ' + spec.mirror);
    expect(conf).toContain('SigLevel = Never');
    expect(conf).not.toMatch(/\[core\]|\[extra\]/);
    expect(conf).toBe(pacmanConf(spec, { cacheDir: join(ctx.cacheDir, 'pacman-pkg'), gpgDir: conf.match(/GPGDir = (.*)\/\n/)![1]! }));

    expect((await stat(join(img.rootDir, 'usr/bin/sudo'))).mode & 0o7777).toBe(0o4755);
    expect(await readFile(join(img.rootDir, 'etc/machine-id'), 'utf8')).toBe('');
    await expect(stat(join(img.rootDir, 'etc/hostname'))).rejects.toThrow();
    await expect(stat(join(img.rootDir, 'etc/ssh/ssh_host_ed25519_key'))).rejects.toThrow();
    await expect(stat(join(img.rootDir, 'etc/pacman.d/gnupg'))).rejects.toThrow();
    expect(await readdir(join(img.rootDir, 'var/cache/pacman/pkg'))).toEqual([]);

    const boot = await extractBootFiles(img.rootDir, { distro: 'arch', outDir: join(ws.dir, 'dist/pxe'), osName: 'arch' });
    expect(boot.kernelVersion).toBe(KVER);

    const packed = await packImage(img.rootDir, { outDir: join(ws.dir, 'dist/images'), name: 'arch', sourceDateEpoch: FIXED_EPOCH, zstdLevel: 3, log: ctx.log });
    const dest = join(ws.dir, 'extracted');
    await mkdir(dest);
    await extractImage(packed.path, dest);
    expect(diffSnapshots(await snapshotTree(img.rootDir, { epoch: FIXED_EPOCH }), await snapshotTree(dest, { epoch: FIXED_EPOCH }))).toEqual([]);

    // Unchanged spec: a cache hit, in well under the build's time.
    const t1 = Date.now();
    const again = await bootstrapImage(spec, ctx);
    expect(again).toEqual({ ...img, fromCache: true });
    expect(Date.now() - t1).toBeLessThan(Math.max(built, 2000));
    ctx.log.info(`arch bootstrap ${built} ms, cache hit ${Date.now() - t1} ms`);
  });

  it('misses the cache when a package is added, and --force rebuilds', async () => {
    const withHello = { ...spec, packages: ['hello'] };
    expect(await imageCacheKey(withHello, ctx)).not.toBe(await imageCacheKey(spec, ctx));
    const img = await bootstrapImage(withHello, ctx);
    expect(img.fromCache).toBe(false);
    expect((await stat(join(img.rootDir, 'usr/bin/hello'))).isFile()).toBe(true);
    const forced = await bootstrapImage(withHello, { ...ctx, force: true });
    expect(forced.fromCache).toBe(false);
    expect(forced.cacheKey).toBe(img.cacheKey);
  });

  it('fails clearly on an unknown package and leaves nothing in the cache', async () => {
    const before = (await readdir(join(ctx.cacheDir, 'rootfs'))).sort();
    const e = await bootstrapImage({ ...spec, packages: ['no-such-package'] }, ctx).then(() => null, (x: unknown) => x as Error);
    expect(e).toBeInstanceOf(StageError);
    expect(e?.message).toMatch(/pacstrap could not build Arch/);
    expect(e?.message).toMatch(/target not found: no-such-package/);
    expect((await readdir(join(ctx.cacheDir, 'rootfs'))).sort()).toEqual(before);
  });

  it('an unreachable mirror fails with the mirror named and leaves nothing in the cache', async () => {
    const before = (await readdir(join(ctx.cacheDir, 'rootfs'))).sort();
    const e = await bootstrapImage({ ...spec, mirror: 'http://127.0.0.1:9/$repo/os/$arch' }, ctx).then(() => null, (x: unknown) => x as Error);
    expect(e).toBeInstanceOf(StageError);
    expect(e?.message).toMatch(/pacstrap could not build Arch/);
    expect(e?.message).toContain('127.0.0.1:9');
    expect((await readdir(join(ctx.cacheDir, 'rootfs'))).sort()).toEqual(before);
  });

  it('an interrupted bootstrap leaves no entry, and the next run cleans its mounts and files', async () => {
    const slow = { ...spec, packages: ['slow'] };
    const area = join(ctx.cacheDir, 'rootfs');
    const script = join(ws.dir, 'child.mts');
    const here = new URL('../../build/', import.meta.url).pathname;
    await writeFile(
      script,
      `import { bootstrapImage } from '${here}stages/bootstrap-image.ts';\n` +
        `import { memoryLogger } from '${here}lib/log.ts';\n` +
        `await bootstrapImage(${JSON.stringify(slow)}, { ...${JSON.stringify({ ...ctx, log: undefined })}, log: memoryLogger() });\n`,
    );
    const child = spawn(process.execPath, ['--import', 'tsx', script], { cwd: new URL('../..', import.meta.url).pathname, detached: true, stdio: 'ignore' });
    const mountedBelow = async () => (await readFile('/proc/self/mountinfo', 'utf8')).split('\n').filter((l) => l.split(' ')[4]?.startsWith(area + '/'));
    try {
      // Wait until pacstrap is inside the scriptlet: the tree has its API filesystems mounted.
      const deadline = Date.now() + 60_000;
      while ((await readdir(area).catch(() => [])).length === 0 || !(await stat(join(area, (await readdir(area)).find((n) => n.startsWith('.tmp-')) ?? 'x', 'rootfs/usr/share/slow')).catch(() => null))) {
        if (Date.now() > deadline) throw new Error('the slow bootstrap never started');
        await new Promise((r) => setTimeout(r, 50));
      }
    } finally {
      process.kill(-child.pid!, 'SIGKILL');
    }
    await new Promise((r) => setTimeout(r, 300));
    const key = await imageCacheKey(slow, ctx);
    expect(await readdir(area)).not.toContain(key);
    expect((await readdir(area)).some((n) => n.startsWith('.tmp-'))).toBe(true);
    expect((await mountedBelow()).length).toBeGreaterThan(0);

    // The next run sweeps the leftover (unmounting first) and builds; the slow scriptlet is let through by a plain rebuild.
    await bootstrapImage(spec, ctx);
    expect((await readdir(area)).filter((n) => n.startsWith('.'))).toEqual([]);
    expect(await mountedBelow()).toEqual([]);
  });

  it('refuses an Arch spec without a mirror before writing anything', async () => {
    const fresh = { ...ctx, cacheDir: join(ws.dir, 'fresh-cache') };
    await expect(bootstrapImage({ ...spec, mirror: '' }, fresh)).rejects.toThrow(/an Arch image needs image\.mirror/);
    await expect(stat(fresh.cacheDir)).rejects.toThrow();
  });

  it('names the missing tool, the stage and the package; refuses non-root', async () => {
    const e = await checkBootstrapHost(archBackend, { path: '/nonexistent', uid: 1000 }).then(() => null, (x: unknown) => x as Error);
    expect(e).toBeInstanceOf(HostToolError);
    expect(e?.message).toMatch(/bootstrap-image must run as root/);
    expect(e?.message).toContain('pacstrap: needed by stage "bootstrap-image" to bootstrap an Arch image\n    Debian/Ubuntu: apt-get install arch-install-scripts');
    expect(e?.message).toMatch(/apt-get install pacman-package-manager/);
  });
});
