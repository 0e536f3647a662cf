import { mkdir, readFile, readdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { StageError } from '../build/lib/errors.ts';
import { bzImageVersion, extractBootFiles } from '../build/stages/extract-bootfiles.ts';
import { fakeBzImage } from './helpers/image-tree.ts';
import { workspace } from './helpers/workspace.ts';

let ws: { dir: string; cleanup: () => Promise<void> };
beforeEach(async () => {
  ws = await workspace('pc-boot-');
});
afterEach(async () => ws.cleanup());

async function put(root: string, rel: string, content: string | Buffer = 'x'): Promise<void> {
  await mkdir(join(root, rel, '..'), { recursive: true });
  await writeFile(join(root, rel), content);
}

/** A Debian-shaped tree: merged /usr, kernel + initrd for each version, modules for `modules`. */
async function debianTree(versions: string[], modules = versions, header?: (v: string) => string): Promise<string> {
  const root = join(ws.dir, 'deb');
  await mkdir(join(root, 'usr/lib'), { recursive: true });
  await symlink('usr/lib', join(root, 'lib'));
  for (const v of versions) {
    await put(root, `boot/vmlinuz-${v}`, fakeBzImage(header ? header(v) : v));
    await put(root, `boot/initrd.img-${v}`, `initrd of ${v}`);
    await put(root, `boot/config-${v}`);
  }
  for (const v of modules) await mkdir(join(root, 'usr/lib/modules', v, 'kernel'), { recursive: true });
  return root;
}

async function archTree(version: string, modules: string[]): Promise<string> {
  const root = join(ws.dir, 'arch');
  await put(root, 'boot/vmlinuz-linux', fakeBzImage(version));
  await put(root, 'boot/initramfs-linux.img', 'arch initramfs');
  for (const v of modules) await mkdir(join(root, 'usr/lib/modules', v), { recursive: true });
  return root;
}

const failure = (p: Promise<unknown>) => p.then(() => null, (e: unknown) => e as Error);

describe('bzImageVersion', () => {
  it('reads the version word from the setup header', async () => {
    await put(ws.dir, 'k', fakeBzImage('6.6.1-arch1-1'));
    expect(await bzImageVersion(join(ws.dir, 'k'))).toBe('6.6.1-arch1-1');
  });
  it('returns null for a file that is not a bzImage', async () => {
    await put(ws.dir, 'not', Buffer.alloc(0x1000, 0x41));
    await put(ws.dir, 'short', 'tiny');
    expect(await bzImageVersion(join(ws.dir, 'not'))).toBeNull();
    expect(await bzImageVersion(join(ws.dir, 'short'))).toBeNull();
  });
});

describe('extractBootFiles: debian', () => {
  it('copies the one kernel and its initrd, named for the OS, and reports the version', async () => {
    const root = await debianTree(['6.1.0-13-amd64']);
    const out = join(ws.dir, 'pxe');
    const boot = await extractBootFiles(root, { distro: 'debian', outDir: out, osName: 'debian' });
    expect(boot).toEqual({ kernel: join(out, 'debian-kernel'), initramfs: join(out, 'debian-initramfs'), kernelVersion: '6.1.0-13-amd64' });
    expect(await readFile(boot.kernel)).toEqual(fakeBzImage('6.1.0-13-amd64'));
    expect(await readFile(boot.initramfs, 'utf8')).toBe('initrd of 6.1.0-13-amd64');
    expect((await readdir(out)).sort()).toEqual(['debian-initramfs', 'debian-kernel']);
  });

  it('refuses several kernels, naming them', async () => {
    const root = await debianTree(['6.1.0-12-amd64', '6.1.0-13-amd64']);
    const e = await failure(extractBootFiles(root, { distro: 'debian', outDir: join(ws.dir, 'pxe'), osName: 'debian' }));
    expect(e).toBeInstanceOf(StageError);
    expect(e?.message).toMatch(/several kernels.*vmlinuz-6\.1\.0-12-amd64, vmlinuz-6\.1\.0-13-amd64/);
  });

  it('refuses a kernel whose modules are not in the image, naming what is', async () => {
    const root = await debianTree(['6.1.0-13-amd64'], ['6.1.0-12-amd64']);
    const out = join(ws.dir, 'pxe');
    const e = await failure(extractBootFiles(root, { distro: 'debian', outDir: out, osName: 'debian' }));
    expect(e).toBeInstanceOf(StageError);
    expect(e?.message).toMatch(/version 6\.1\.0-13-amd64 .*no lib\/modules\/6\.1\.0-13-amd64 .*found: 6\.1\.0-12-amd64/);
    expect(await readdir(out).catch(() => [])).toEqual([]);
  });

  it('refuses a missing kernel, a missing initrd and a header that contradicts the name', async () => {
    const root = join(ws.dir, 'deb');
    await put(root, 'boot/config-6.1.0-13-amd64');
    const opts = { distro: 'debian' as const, outDir: join(ws.dir, 'pxe'), osName: 'debian' };
    expect((await failure(extractBootFiles(root, opts)))?.message).toMatch(/no kernel in the image.*found: config-6\.1\.0-13-amd64/);

    await put(root, 'boot/vmlinuz-6.1.0-13-amd64', fakeBzImage('6.1.0-13-amd64'));
    expect((await failure(extractBootFiles(root, opts)))?.message).toMatch(/has no initramfs initrd\.img-6\.1\.0-13-amd64/);

    await put(root, 'boot/initrd.img-6.1.0-13-amd64');
    await mkdir(join(root, 'lib/modules/6.1.0-13-amd64'), { recursive: true });
    await put(root, 'boot/vmlinuz-6.1.0-13-amd64', fakeBzImage('6.1.0-14-amd64'));
    expect((await failure(extractBootFiles(root, opts)))?.message).toMatch(/named for 6\.1\.0-13-amd64 but its bzImage header says 6\.1\.0-14-amd64/);

    await put(root, 'boot/vmlinuz-6.1.0-13-amd64', fakeBzImage('6.1.0-13-amd64'));
    expect((await extractBootFiles(root, opts)).kernelVersion).toBe('6.1.0-13-amd64');
  });
});

describe('extractBootFiles: arch', () => {
  it('takes vmlinuz-linux + initramfs-linux.img, version from the bzImage header', async () => {
    const root = await archTree('6.6.1-arch1-1', ['6.6.1-arch1-1']);
    const boot = await extractBootFiles(root, { distro: 'arch', outDir: join(ws.dir, 'pxe'), osName: 'arch' });
    expect(boot.kernelVersion).toBe('6.6.1-arch1-1');
    expect(boot.kernel).toBe(join(ws.dir, 'pxe', 'arch-kernel'));
    expect(await readFile(boot.initramfs, 'utf8')).toBe('arch initramfs');
  });

  it('fails when the modules are for another kernel (the drift this stage exists to catch)', async () => {
    const root = await archTree('6.6.2-arch1-1', ['6.6.1-arch1-1']);
    const e = await failure(extractBootFiles(root, { distro: 'arch', outDir: join(ws.dir, 'pxe'), osName: 'arch' }));
    expect(e).toBeInstanceOf(StageError);
    expect(e?.message).toMatch(/version 6\.6\.2-arch1-1 .*found: 6\.6\.1-arch1-1/);
  });

  it('falls back to usr/lib/modules/*/vmlinuz when the header carries no version', async () => {
    const root = join(ws.dir, 'arch');
    const kernel = Buffer.alloc(0x3000, 1);
    await put(root, 'boot/vmlinuz-linux', kernel);
    await put(root, 'boot/initramfs-linux.img');
    await put(root, 'usr/lib/modules/6.6.3-arch1-1/vmlinuz', kernel);
    await mkdir(join(root, 'usr/lib/modules/6.6.0-arch1-1'), { recursive: true });
    const boot = await extractBootFiles(root, { distro: 'arch', outDir: join(ws.dir, 'pxe'), osName: 'arch' });
    expect(boot.kernelVersion).toBe('6.6.3-arch1-1');
  });

  it('fails on a missing kernel or initramfs', async () => {
    const root = join(ws.dir, 'arch');
    await mkdir(join(root, 'boot'), { recursive: true });
    const opts = { distro: 'arch' as const, outDir: join(ws.dir, 'pxe'), osName: 'arch' };
    expect((await failure(extractBootFiles(root, opts)))?.message).toMatch(/no kernel in the image: .*vmlinuz-linux is missing/);
    await put(root, 'boot/vmlinuz-linux', fakeBzImage('6.6.1-arch1-1'));
    expect((await failure(extractBootFiles(root, opts)))?.message).toMatch(/initramfs-linux\.img is missing/);
  });
});
