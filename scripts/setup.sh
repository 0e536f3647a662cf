#!/bin/bash
# Set-up shared by `npm run build:image`, `npm test` and CI: host packages, then node modules.
# On Debian/Ubuntu it installs what is missing with apt-get (as root); elsewhere it prints what to install.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

quiet=0
[[ "${1:-}" == "--quiet" ]] && quiet=1
say() { ((quiet)) || printf 'setup: %s\n' "$*" >&2; }

# tool-or-file  debian-package  arch-package
requirements=(
  "dnsmasq dnsmasq-base dnsmasq"
  "nginx nginx nginx"
  "shellcheck shellcheck shellcheck"
  "qemu-system-x86_64 qemu-system-x86 qemu-system-x86"
  "qemu-img qemu-utils qemu-img"
  "mmdebstrap mmdebstrap mmdebstrap"
  "pacstrap arch-install-scripts arch-install-scripts"
  "pacman pacman-package-manager pacman"
  "makepkg makepkg pacman"
  "repo-add makepkg pacman"
  "fakeroot fakeroot fakeroot"
  "/bin/busybox busybox-static busybox"
  "/usr/share/keyrings/archlinux.gpg archlinux-keyring archlinux-keyring"
  "xorriso xorriso libisoburn"
  "mksquashfs squashfs-tools squashfs-tools"
  "zstd zstd zstd"
  "tar tar tar"
  "cpio cpio cpio"
  "rsync rsync rsync"
  "/usr/sbin/sshd openssh-server openssh"
  "ssh openssh-client openssh"
  "bsdtar libarchive-tools libarchive"
  "mkfs.ext4 e2fsprogs e2fsprogs"
  "mkfs.vfat dosfstools dosfstools"
  "mkfs.xfs xfsprogs xfsprogs"
  "sfdisk fdisk util-linux"
  "setfacl acl acl"
  "setfattr attr attr"
  "setcap libcap2-bin libcap"
  "ip iproute2 iproute2"
  "python3 python3 python"
  "pgrep procps procps-ng"
  "systemd-analyze systemd systemd"
  "curl curl curl"
  "sha256sum coreutils coreutils"
  "/usr/lib/PXELINUX/pxelinux.0 pxelinux syslinux"
  "/usr/lib/syslinux/modules/bios/ldlinux.c32 syslinux-common syslinux"
  "/usr/lib/SYSLINUX.EFI/efi64/syslinux.efi syslinux-efi syslinux"
  "/usr/lib/ipxe/undionly.kpxe ipxe ipxe"
  "/usr/share/OVMF/OVMF_CODE_4M.fd ovmf edk2-ovmf"
  "ipmitool ipmitool ipmitool"
  "ipmi_sim openipmi openipmi"
  "snmpd snmpd net-snmp"
  "snmpset snmp net-snmp"
  "openssl openssl openssl"
  "chromium chromium chromium"
)

present() {
  if [[ "$1" == /* ]]; then [[ -e "$1" ]]; else command -v "$1" >/dev/null 2>&1 || [[ -x "/usr/sbin/$1" || -x "/sbin/$1" ]]; fi
}

missing_deb=()
missing_arch=()
missing_what=()
for req in "${requirements[@]}"; do
  read -r what deb arch <<<"${req}"
  if ! present "${what}"; then
    missing_what+=("${what}")
    missing_deb+=("${deb}")
    missing_arch+=("${arch}")
  fi
done

if ((${#missing_deb[@]})); then
  if [[ -r /etc/debian_version ]] && command -v apt-get >/dev/null; then
    if ((EUID != 0)); then
      echo "setup: missing: ${missing_what[*]}" >&2
      echo "setup: run as root, or: sudo apt-get install -y ${missing_deb[*]}" >&2
      exit 1
    fi
    say "installing host packages: ${missing_deb[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >&2
    # shellcheck disable=SC2046 # one word per package
    apt-get install -y -q --no-install-recommends $(printf '%s\n' "${missing_deb[@]}" | sort -u) >&2
  else
    echo "setup: this is not a Debian-based system; install these first:" >&2
    echo "  missing: ${missing_what[*]}" >&2
    echo "  Arch:    pacman -S --needed $(printf '%s\n' "${missing_arch[@]}" | sort -u | tr '\n' ' ')" >&2
    echo "  Debian:  apt-get install $(printf '%s\n' "${missing_deb[@]}" | sort -u | tr '\n' ' ')" >&2
    exit 1
  fi
fi

node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if ((node_major < 20)); then
  echo "setup: Node.js >= 20 is required (found: $(node --version 2>/dev/null || echo none))" >&2
  exit 1
fi

# npm ci when node_modules is missing or older than the lock file.
if [[ ! -d node_modules || package-lock.json -nt node_modules/.package-lock.json ]]; then
  say "npm ci"
  npm ci --no-audit --no-fund >&2
fi
