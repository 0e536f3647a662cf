/**
 * Stage: take the node's kernel and initramfs from the golden image itself, so the pair served over PXE
 * can never drift from the modules inside the image, and prove it: the kernel's version must have its
 * modules directory in the image.
 */
import { copyFile, lstat, mkdir, open, readdir, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { BootFiles } from '../image/types.ts';
import type { ImageSpec } from '../plan/plan.ts';
import { StageError } from '../lib/errors.ts';
import { insideDir } from '../lib/inside-dir.ts';
import { replaceAtomically } from '../lib/atomic.ts';

const STAGE = 'extract-bootfiles';

export interface ExtractBootFilesOptions {
  distro: ImageSpec['distro'];
  outDir: string;
  osName: string;
}

/**
 * The version string a bzImage carries in its setup header (Linux boot protocol ≥ 2.00): the header
 * starts at 0x1F1 with "HdrS" at 0x202; the 16-bit field at 0x20E points to a NUL-terminated string
 * at that value + 0x200, e.g. "6.1.0-13-amd64 (debian-kernel@lists.debian.org) #1 SMP …".
 * Returns the first word, or null when the file is not a bzImage or carries no version.
 */
export async function bzImageVersion(path: string): Promise<string | null> {
  const fh = await open(path, 'r');
  try {
    const head = Buffer.alloc(0x10000);
    const { bytesRead } = await fh.read(head, 0, head.length, 0);
    const buf = head.subarray(0, bytesRead);
    if (buf.length < 0x210 || buf.toString('latin1', 0x202, 0x206) !== 'HdrS') return null;
    const ptr = buf.readUInt16LE(0x20e);
    if (ptr === 0) return null;
    const start = ptr + 0x200;
    if (start >= buf.length) return null;
    let end = buf.indexOf(0, start);
    if (end < 0) end = Math.min(buf.length, start + 256);
    const version = buf.toString('latin1', start, end).trim().split(/\s+/)[0];
    return version && /^[0-9][\w.+~-]*$/.test(version) ? version : null;
  } finally {
    await fh.close();
  }
}

async function listDir(dir: string): Promise<string[]> {
  return readdir(dir).catch(() => [] as string[]);
}

async function isFile(path: string): Promise<boolean> {
  // stat, not lstat: Debian's /boot may hold symlinks to the real files.
  return (await stat(path).catch(() => null))?.isFile() ?? false;
}

/** Module directories of the image: usr/lib/modules (merged /usr) and lib/modules, each name once. */
async function moduleVersions(rootDir: string): Promise<string[]> {
  const found = new Set<string>();
  for (const rel of ['usr/lib/modules', 'lib/modules']) {
    for (const v of await listDir(join(rootDir, rel))) {
      if ((await stat(join(rootDir, rel, v)).catch(() => null))?.isDirectory()) found.add(v);
    }
  }
  return [...found].sort();
}

interface Located {
  kernel: string;
  initramfs: string;
  version: string;
}

async function locateDebian(rootDir: string): Promise<Located> {
  const boot = join(rootDir, 'boot');
  const names = await listDir(boot);
  const kernels = names.filter((n) => n.startsWith('vmlinuz-')).sort();
  if (kernels.length === 0) {
    throw new StageError(STAGE, `no kernel in the image: ${boot} holds no vmlinuz-* (found: ${names.join(', ') || 'nothing'}); is linux-image-amd64 installed?`);
  }
  if (kernels.length > 1) {
    throw new StageError(STAGE, `several kernels in the image, expected exactly one: ${kernels.join(', ')} in ${boot}`);
  }
  const version = kernels[0]!.slice('vmlinuz-'.length);
  const initrds = names.filter((n) => n.startsWith('initrd.img-'));
  const initrd = `initrd.img-${version}`;
  if (!initrds.includes(initrd) || !(await isFile(join(boot, initrd)))) {
    throw new StageError(
      STAGE,
      `kernel ${kernels[0]} has no initramfs ${initrd} in ${boot} (found: ${initrds.join(', ') || 'none'}); is initramfs-tools installed?`,
    );
  }
  const header = await bzImageVersion(join(boot, kernels[0]!));
  if (header && header !== version) {
    throw new StageError(STAGE, `${kernels[0]} is named for ${version} but its bzImage header says ${header}`);
  }
  return { kernel: join(boot, kernels[0]!), initramfs: join(boot, initrd), version };
}

async function locateArch(rootDir: string, modules: string[]): Promise<Located> {
  const kernel = join(rootDir, 'boot/vmlinuz-linux');
  const initramfs = join(rootDir, 'boot/initramfs-linux.img');
  if (!(await isFile(kernel))) {
    const names = await listDir(join(rootDir, 'boot'));
    throw new StageError(STAGE, `no kernel in the image: ${kernel} is missing (boot/ holds: ${names.join(', ') || 'nothing'}); is the linux package installed?`);
  }
  if (!(await isFile(initramfs))) {
    throw new StageError(STAGE, `kernel ${kernel} has no initramfs: ${initramfs} is missing; mkinitcpio did not run in the image?`);
  }
  let version = await bzImageVersion(kernel);
  if (!version) {
    // No readable header: the linux package also ships the kernel as usr/lib/modules/<version>/vmlinuz.
    const size = (await lstat(kernel)).size;
    for (const v of modules) {
      const st = await stat(join(rootDir, 'usr/lib/modules', v, 'vmlinuz')).catch(() => null);
      if (st?.size === size) version = v;
    }
  }
  if (!version) {
    throw new StageError(STAGE, `cannot tell the version of ${kernel}: no bzImage version string and no usr/lib/modules/*/vmlinuz of the same size (module dirs: ${modules.join(', ') || 'none'})`);
  }
  return { kernel, initramfs, version };
}

/** Copies to a temp name and renames: a reader of outDir never sees half a kernel. */
async function install(src: string, dest: string): Promise<void> {
  await replaceAtomically(dest, (tmp) => copyFile(src, tmp));
}

export async function extractBootFiles(rootDir: string, opts: ExtractBootFilesOptions): Promise<BootFiles> {
  const modules = await moduleVersions(rootDir);
  const found = opts.distro === 'arch' ? await locateArch(rootDir, modules) : await locateDebian(rootDir);
  if (!modules.includes(found.version)) {
    throw new StageError(
      STAGE,
      `kernel ${found.kernel.slice(rootDir.length + 1)} is version ${found.version} but the image has no lib/modules/${found.version} ` +
        `(module dirs found: ${modules.join(', ') || 'none'}): the node would boot without its modules`,
    );
  }
  const outDir = resolve(opts.outDir);
  await mkdir(outDir, { recursive: true });
  const kernel = insideDir(outDir, `${opts.osName}-kernel`, STAGE);
  const initramfs = insideDir(outDir, `${opts.osName}-initramfs`, STAGE);
  await install(found.kernel, kernel);
  await install(found.initramfs, initramfs);
  return { kernel, initramfs, kernelVersion: found.version };
}
