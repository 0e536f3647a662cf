/**
 * Host check: before any stage writes anything, every tool and file the selected stages need is looked
 * up; a missing one is reported with the stage that needs it and the packages that provide it.
 */
import { access, constants } from 'node:fs/promises';
import { delimiter, join } from 'node:path';
import { HostToolError } from './errors.ts';

export interface Requirement {
  /** A command on PATH, or an absolute path alternatives list for files. */
  tool: string;
  files?: string[];
  why: string;
  debian: string;
  arch: string;
}

export const REQUIREMENTS = {
  tar: { tool: 'tar', why: 'pack the golden image', debian: 'tar', arch: 'tar' },
  zstd: { tool: 'zstd', why: 'compress the golden image and installer environment', debian: 'zstd', arch: 'zstd' },
  mke2fs: { tool: 'mke2fs', why: 'make the golden image as an ext4 filesystem image (image.installMode "image")', debian: 'e2fsprogs', arch: 'e2fsprogs' },
  e2fsck: { tool: 'e2fsck', why: 'check the filesystem image', debian: 'e2fsprogs', arch: 'e2fsprogs' },
  debugfs: { tool: 'debugfs', why: "pin the filesystem image's timestamps", debian: 'e2fsprogs', arch: 'e2fsprogs' },
  dumpe2fs: { tool: 'dumpe2fs', why: "list the filesystem image's inodes", debian: 'e2fsprogs', arch: 'e2fsprogs' },
  mmdebstrap: { tool: 'mmdebstrap', why: 'bootstrap Debian roots (golden image, built-in installer environment)', debian: 'mmdebstrap', arch: 'mmdebstrap (AUR)' },
  dpkg: { tool: 'dpkg', why: 'install Debian packages into the image', debian: 'dpkg', arch: 'dpkg' },
  aptGet: { tool: 'apt-get', why: 'resolve Debian packages for the image', debian: 'apt', arch: 'apt' },
  pacstrap: { tool: 'pacstrap', why: 'bootstrap an Arch image', debian: 'arch-install-scripts', arch: 'arch-install-scripts' },
  pacman: { tool: 'pacman', why: 'install Arch packages into the image', debian: 'pacman-package-manager', arch: 'pacman' },
  pacmanKey: { tool: 'pacman-key', why: 'verify Arch packages', debian: 'pacman-package-manager', arch: 'pacman' },
  cpio: { tool: 'cpio', why: 'pack the built-in installer initramfs', debian: 'cpio', arch: 'cpio' },
  mksquashfs: { tool: 'mksquashfs', why: 'pack the golden image as the diskless root', debian: 'squashfs-tools', arch: 'squashfs-tools' },
  xorriso: { tool: 'xorriso', why: 'extract the SystemRescue ISO without mounting it', debian: 'xorriso', arch: 'libisoburn' },
  pxelinux: {
    tool: 'pxelinux.0',
    files: ['/usr/lib/PXELINUX/pxelinux.0', '/usr/lib/syslinux/bios/pxelinux.0'],
    why: 'the BIOS network boot loader',
    debian: 'pxelinux',
    arch: 'syslinux',
  },
  ldlinuxBios: {
    tool: 'ldlinux.c32',
    files: ['/usr/lib/syslinux/modules/bios/ldlinux.c32', '/usr/lib/syslinux/bios/ldlinux.c32'],
    why: 'pxelinux.0 loads it',
    debian: 'syslinux-common',
    arch: 'syslinux',
  },
  syslinuxEfi: {
    tool: 'syslinux.efi',
    files: ['/usr/lib/SYSLINUX.EFI/efi64/syslinux.efi', '/usr/lib/syslinux/efi64/syslinux.efi'],
    why: 'the x86-64 UEFI network boot loader',
    debian: 'syslinux-efi',
    arch: 'syslinux',
  },
  ldlinuxEfi: {
    tool: 'ldlinux.e64',
    files: ['/usr/lib/syslinux/modules/efi64/ldlinux.e64', '/usr/lib/syslinux/efi64/ldlinux.e64'],
    why: 'syslinux.efi loads it',
    debian: 'syslinux-common',
    arch: 'syslinux',
  },
  ipxeBios: {
    tool: 'undionly.kpxe',
    files: ['/usr/lib/ipxe/undionly.kpxe', '/usr/share/ipxe/undionly.kpxe'],
    why: 'chainload iPXE on BIOS firmware without it',
    debian: 'ipxe',
    arch: 'ipxe (AUR)',
  },
  ipxeEfi: {
    tool: 'snponly.efi',
    files: ['/usr/lib/ipxe/snponly.efi', '/usr/share/ipxe/x86_64/snponly.efi'],
    why: 'chainload iPXE on UEFI firmware without it',
    debian: 'ipxe',
    arch: 'ipxe (AUR)',
  },
} satisfies Record<string, Requirement>;

export type RequirementName = keyof typeof REQUIREMENTS;

async function exists(path: string, mode = constants.F_OK): Promise<boolean> {
  return access(path, mode).then(
    () => true,
    () => false,
  );
}

export async function findOnPath(tool: string, path = process.env.PATH ?? ''): Promise<string | null> {
  for (const dir of path.split(delimiter).filter(Boolean)) {
    const candidate = join(dir, tool);
    if (await exists(candidate, constants.X_OK)) return candidate;
  }
  return null;
}

/** Resolves a requirement to the path that satisfies it, or null. */
export async function locate(req: Requirement): Promise<string | null> {
  if (req.files) {
    for (const f of req.files) if (await exists(f)) return f;
    return null;
  }
  return findOnPath(req.tool);
}

export interface StageNeeds {
  stage: string;
  needs: readonly RequirementName[];
}

/** Every need of every stage looked up: what was found where, and one report line per missing tool. */
export async function lookUpHost(stages: readonly StageNeeds[], path?: string): Promise<{ found: Record<string, string>; missing: string[] }> {
  const found: Record<string, string> = {};
  const missing: string[] = [];
  for (const { stage, needs } of stages) {
    for (const name of needs) {
      const req: Requirement = REQUIREMENTS[name];
      const at = req.files ? await locate(req) : await findOnPath(req.tool, path);
      if (at) found[name] = at;
      else
        missing.push(
          `  ${req.tool}: needed by stage "${stage}" to ${req.why}\n    Debian/Ubuntu: apt-get install ${req.debian}    Arch: pacman -S ${req.arch}`,
        );
    }
  }
  return { found, missing: [...new Set(missing)] };
}

/** Checks every need of every stage; throws one HostToolError listing all that are missing. */
export async function checkHost(stages: readonly StageNeeds[], path?: string): Promise<Record<string, string>> {
  const { found, missing } = await lookUpHost(stages, path);
  if (missing.length) throw new HostToolError(`missing host tools (nothing was written):\n${missing.join('\n')}`);
  return found;
}
