/**
 * Turns a bootstrapped Debian tree into the built-in installer environment's root: drops what a RAM-only
 * installer never reads, puts our init and helpers in place, and removes anything that must differ per
 * node (ssh host keys, machine-id).
 */
import { chmod, copyFile, mkdir, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** sysrcd/builtin/: the init and the helpers it calls, installed at these paths in the root. */
export const BUILTIN_DIR = fileURLToPath(new URL('../../sysrcd/builtin/', import.meta.url));
export const BUILTIN_FILES: Record<string, string> = {
  init: 'init',
  'udhcpc.script': 'usr/share/portacluster/udhcpc.script',
  shutdown: 'usr/local/sbin/portacluster-shutdown',
  'portacluster-sshd': 'usr/local/sbin/portacluster-sshd',
};

const DROPPED: readonly string[] = [
  'boot',
  'usr/share/doc', 'usr/share/man', 'usr/share/info', 'usr/share/locale', 'usr/share/lintian',
  'usr/share/bug', 'usr/share/bash-completion', 'usr/share/zsh', 'usr/share/common-licenses',
  'var/cache/apt', 'var/cache/debconf/templates.dat-old', 'var/cache/debconf/config.dat-old',
  'var/lib/dpkg/status-old', 'var/lib/dpkg/available-old', 'var/lib/dpkg/diversions-old',
  // Hardware names for display only; interface naming and disk links do not use it. hwdb.d is its source
  // text (8.6 MB), read only by `udevadm hwdb --update`.
  'usr/lib/udev/hwdb.bin', 'etc/udev/hwdb.bin', 'usr/lib/udev/hwdb.d',
  // xfsprogs pulls in Python (xfs_scrub_all) and ICU (xfs_scrub): ~90 MB for two tools an installer
  // never runs. mkfs.xfs and xfs_repair link neither. usrmerge likewise pulls in full Perl.
  'usr/lib/python3', 'usr/lib/python3.11', 'usr/bin/python3', 'usr/bin/python3.11',
  'usr/share/python3', 'usr/local/lib/python3.11',
  'usr/sbin/xfs_scrub', 'usr/sbin/xfs_scrub_all',
  'usr/share/perl', 'usr/lib/x86_64-linux-gnu/perl',
  // Character set conversion and time zones are the installed system's business, not the installer's.
  'usr/lib/x86_64-linux-gnu/gconv', 'usr/share/zoneinfo',
  // ipmitool's IANA vendor names (4.6 MB, display only) and its event daemon: discover runs `lan print` once.
  'usr/share/misc/enterprise-numbers.txt', 'usr/sbin/ipmievd',
  // GRUB's image/font/debug tools: grub-install, grub-mkimage, grub-probe and grub-mkconfig stay.
  ...['file', 'fstest', 'glue-efi', 'kbdcomp', 'menulst2cfg', 'mkfont', 'mklayout', 'mknetdir',
    'mkrescue', 'mkstandalone', 'mount', 'render-label', 'syslinux2cfg'].map((t) => `usr/bin/grub-${t}`),
  // Debian's prebuilt EFI images for its own installer and netboot (15 MB): grub-install builds the image
  // it writes from the *.mod files. The font only serves a graphical menu; our grub.cfg is text, and
  // grub-install skips a font it cannot find.
  'usr/lib/grub/x86_64-efi/monolithic', 'usr/share/grub/unicode.pf2',
  // Nothing installs packages into a RAM root (no lists either), and nothing here runs Perl (dpkg's and
  // debconf's maintainer scripts only): apt 3.8 MB, Perl 6.9 MB.
  'usr/lib/apt', 'usr/bin/perl', 'usr/bin/perl5.36.0', 'usr/lib/x86_64-linux-gnu/perl-base',
  // ssh's client side that sshd never runs; ssh-keygen (host keys) and scp/sftp (copying to and from a
  // rescue session) stay.
  'usr/bin/ssh-keyscan', 'usr/bin/ssh-add', 'usr/bin/ssh-agent', 'usr/lib/openssh/ssh-keysign',
  // Never present when bootstrapped right; removed so scripts can rely on "no systemctl → no systemd".
  'usr/bin/systemctl', 'bin/systemctl',
  'etc/machine-id',
];

async function removeMatching(dir: string, test: (name: string) => boolean): Promise<void> {
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    if (test(name)) await rm(join(dir, name), { recursive: true, force: true });
  }
}

export async function shrinkRoot(root: string): Promise<void> {
  for (const p of DROPPED) await rm(join(root, p), { recursive: true, force: true });
  await removeMatching(join(root, 'var/lib/apt/lists'), (n) => n !== 'partial' && n !== 'lock');
  await removeMatching(join(root, 'var/log'), () => true);
  // libfreetype: grub-mkfont's only (dropped above).
  await removeMatching(join(root, 'usr/lib/x86_64-linux-gnu'), (n) => /^lib(icu|perl\.so|apt-|freetype)/.test(n));
  await removeMatching(join(root, 'usr/bin'), (n) => /^apt(-|$)/.test(n));
  await removeMatching(join(root, 'var/lib/dpkg/info'), (n) => n.endsWith('.md5sums'));
  await removeMatching(join(root, 'etc/ssh'), (n) => n.startsWith('ssh_host_'));
  await mkdir(join(root, 'boot'));
}

export async function installBuiltinFiles(root: string): Promise<void> {
  for (const [src, dst] of Object.entries(BUILTIN_FILES)) {
    await mkdir(join(root, dst, '..'), { recursive: true });
    await copyFile(join(BUILTIN_DIR, src), join(root, dst));
    await chmod(join(root, dst), 0o755);
  }
  // /usr/local/sbin comes first on PATH: these win over anything a package might add later.
  for (const name of ['poweroff', 'reboot', 'halt']) {
    await symlink('portacluster-shutdown', join(root, 'usr/local/sbin', name));
  }
  await writeFile(join(root, 'etc/hostname'), 'portacluster-env\n');
  await writeFile(join(root, 'etc/fstab'), '# the built-in installer environment runs from RAM\n');
  await writeFile(join(root, 'etc/machine-id'), '');
  await mkdir(join(root, 'etc/profile.d'), { recursive: true });
  await writeFile(
    join(root, 'etc/profile.d/portacluster-env.sh'),
    "PS1='portacluster-env \\w # '\nexport PS1\n",
  );
  await mkdir(join(root, 'var/log'), { recursive: true });
  await mkdir(join(root, 'var/autorun/log'), { recursive: true });
}
