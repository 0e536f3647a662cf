/** The Debian bootstrap of the built-in installer environment: which packages, fetched how. */
import { argvValue } from '../lib/escape.ts';
import { run } from '../lib/run.ts';

/**
 * What a node's installer, rescue or discover session needs; grub for BIOS and UEFI targets. No btrfs-progs
 * (4.2 MB): no spec filesystem is btrfs, and wipefs clears its signatures without it (bench/env-sizes.ts
 * prints what each package costs).
 */
export const INSTALLER_ENV_PACKAGES: readonly string[] = [
  'bash', 'util-linux', 'fdisk', 'gdisk', 'parted', 'e2fsprogs', 'dosfstools', 'xfsprogs',
  'mdadm', 'lvm2', 'curl', 'ca-certificates', 'zstd', 'tar', 'gzip', 'iproute2', 'busybox', 'kmod',
  'udev', 'openssh-server', 'linux-image-amd64', 'procps', 'acl', 'attr', 'grub-pc-bin',
  'grub-efi-amd64-bin', 'grub2-common', 'efibootmgr', 'pciutils', 'less', 'rsync',
  // discover: the BMC's LAN address and MAC (ipmitool lan print over the local KCS interface).
  'ipmitool',
  // phoneHome.afterInstall kexec: the installed kernel started without a firmware reboot (~0.3 MB).
  'kexec-tools',
  // The image's sha256 (common/lib/15-fetch.sh): OpenSSL's uses the CPU's SHA extensions, 3.4× coreutils'.
  'openssl',
];

export interface BootstrapOptions {
  suite: string;
  /** null: mmdebstrap's own default mirrors. */
  mirror: string | null;
  sourceDateEpoch: number;
}

/** The mmdebstrap command line for the environment's root. */
export function installerRootArgv(root: string, o: Pick<BootstrapOptions, 'suite' | 'mirror'>): string[] {
  return [
    'mmdebstrap',
    '--mode=root',
    '--variant=minbase',
    '--format=directory',
    `--include=${INSTALLER_ENV_PACKAGES.join(',')}`,
    // Never unpacked rather than deleted afterwards: less to write, and dpkg knows they are absent.
    '--dpkgopt=path-exclude=/usr/share/man/*',
    '--dpkgopt=path-exclude=/usr/share/doc/*',
    '--dpkgopt=path-exclude=/usr/share/locale/*',
    '--dpkgopt=path-exclude=/usr/share/info/*',
    '--aptopt=Acquire::Retries "3"',
    // Getopt::Long reads options anywhere unless "--" ends them: a suite or mirror of --setup-hook=… would
    // run as root. "--" plus the refusal of a leading "-" (argvValue), belt and braces.
    '--',
    argvValue('mmdebstrap', 'installerEnv.suite', o.suite),
    root,
    // No mirror: mmdebstrap's defaults (deb.debian.org plus -updates and -security for a stable suite).
    // An empty argument would be an empty sources.list.
    ...(o.mirror !== null ? [argvValue('mmdebstrap', 'installerEnv.mirror', o.mirror)] : []),
  ];
}

/**
 * The environment mmdebstrap runs in. INITRD=No: the kernel package's postinst hook
 * (/etc/kernel/postinst.d/initramfs-tools) then builds no Debian initramfs, which shrink-root would throw
 * away with /boot (our initramfs is the root itself). mkinitramfs was half the bootstrap: 82.8 s with it,
 * 43.5 s without (2026-11-27, this machine, quiet, each downloading its packages).
 */
function installerRootEnv(o: Pick<BootstrapOptions, 'sourceDateEpoch'>): NodeJS.ProcessEnv {
  return { ...process.env, SOURCE_DATE_EPOCH: String(o.sourceDateEpoch), INITRD: 'No' };
}

export async function bootstrapInstallerRoot(root: string, o: BootstrapOptions): Promise<void> {
  await run(installerRootArgv(root, o), { env: installerRootEnv(o) });
}
