# The diskless root: the golden image's squashfs, downloaded into a tmpfs, verified against the digest
# pinned in this script, mounted read-only under an overlay whose writable layer is another tmpfs. Nothing
# here opens a disk: the only block device used is the loop device behind the squashfs file.
#
# Everything lives under PC_DISKLESS_DIR in /run, which switch_root moves into the new root: the running
# system keeps its medium visible at /run/portacluster/diskless. PC_TARGET must not be under /run.

PC_DISKLESS_DIR="${PC_DISKLESS_DIR:-/run/portacluster/diskless}"
PC_TARGET="${PC_TARGET:-/sysroot}"
PC_SWITCH_ROOT_FILE="${PC_SWITCH_ROOT_FILE:-/run/portacluster/switch-root}"
# What the booted system needs beside its root, on top of the squashfs file itself.
PC_DISKLESS_SPARE_BYTES="${PC_DISKLESS_SPARE_BYTES:-268435456}"

root_file() {
  printf '%s/medium/root.sfs\n' "${PC_DISKLESS_DIR}"
}

# Unmounts whatever mount_root and fetch_root mounted, innermost first; a cleanup hook, so a refused or
# broken root leaves nothing mounted.
unmount_root() {
  local m
  for m in "${PC_TARGET}" "${PC_DISKLESS_DIR}/rw" "${PC_DISKLESS_DIR}/lower" "${PC_DISKLESS_DIR}/medium"; do
    if mountpoint -q -- "${m}" 2>/dev/null; then
      umount -- "${m}" 2>/dev/null || umount --lazy -- "${m}" || warn "could not unmount ${m}"
    fi
  done
  return 0
}
on_cleanup unmount_root

# Refuses early, before a byte is fetched, when the root would not fit in RAM.
check_memory() {
  local avail_kib
  avail_kib="$(awk '/^MemAvailable:/ {print $2}' /proc/meminfo)"
  if [ $((avail_kib * 1024)) -lt $((PC_ROOT_SIZE + PC_DISKLESS_SPARE_BYTES)) ]; then
    die "not enough memory for a diskless root: ${PC_ROOT_SIZE} bytes of squashfs + ${PC_DISKLESS_SPARE_BYTES} to run, ${avail_kib} KiB available"
  fi
}

# fetch_root: the squashfs into a tmpfs (fetch_resumable: Range resume, then the digest over the whole
# file). A mismatch or a download that keeps breaking fails: nothing is mounted.
fetch_root() {
  local file status
  file="$(root_file)"
  check_memory
  mkdir -p -- "${PC_DISKLESS_DIR}/medium"
  mountpoint -q -- "${PC_DISKLESS_DIR}/medium" || run mount -t tmpfs -o mode=0700 -- pc-diskless-medium "${PC_DISKLESS_DIR}/medium"
  rm -f -- "${file}"
  log "root ${PC_ROOT_URL} (${PC_ROOT_SIZE} bytes, sha256 ${PC_ROOT_SHA256})"
  status=0
  fetch_resumable "${file}" "${PC_ROOT_URL}" "${PC_ROOT_SHA256}" 'diskless root' "${PC_ROOT_SIZE}" || status="$?"
  if [ "${status}" != 0 ]; then
    rm -f -- "${file}"
    [ "${status}" = 2 ] || die "the diskless root download failed 10 times: nothing mounted"
    die "the diskless root does not match its sha256 (the plan pins ${PC_ROOT_SHA256}): refused, nothing mounted"
  fi
  log "root verified ($(stat -c %s -- "${file}") bytes)"
}

# The modules come from the golden kernel's own set (pxe/<os>-diskless-modules); built in is fine too.
load_root_modules() {
  local fs
  for fs in squashfs overlay; do
    grep -qw -- "${fs}" /proc/filesystems || modprobe "${fs}" || die "cannot load the ${fs} module (kernel $(uname -r))"
  done
  [ -e /dev/loop-control ] || modprobe loop || die "cannot load the loop module (kernel $(uname -r))"
}

# mount_root: squashfs (loop, read-only) as the lower layer, a tmpfs for upper and work, overlay at PC_TARGET.
mount_root() {
  local file lower="${PC_DISKLESS_DIR}/lower" rw="${PC_DISKLESS_DIR}/rw"
  file="$(root_file)"
  mkdir -p -- "${lower}" "${rw}" "${PC_TARGET}"
  run mount -t squashfs -o loop,ro -- "${file}" "${lower}"
  run mount -t tmpfs -o mode=0755 -- pc-diskless-rw "${rw}"
  mkdir -p -- "${rw}/upper" "${rw}/work"
  run mount -t overlay -o "lowerdir=${lower},upperdir=${rw}/upper,workdir=${rw}/work" -- pc-diskless-root "${PC_TARGET}"
  log "root mounted at ${PC_TARGET}: $(findmnt -no FSTYPE,OPTIONS -- "${PC_TARGET}" | cut -c 1-120)"
}

# No disk is ever mounted: fstab names none, and systemd's generator that mounts partitions of the boot
# disk by GPT type is masked.
configure_diskless_fstab() {
  printf '# /etc/fstab: %s runs diskless (root: overlay over a squashfs in RAM); no disk is mounted.\n' "${NODE_NAME}" > "${PC_TARGET}/etc/fstab"
  mkdir -p -- "${PC_TARGET}/etc/systemd/system-generators"
  ln -sfn /dev/null "${PC_TARGET}/etc/systemd/system-generators/systemd-gpt-auto-generator"
}

# request_switch_root: the built-in /init switches to PC_TARGET after the autoruns, when this file names it.
request_switch_root() {
  [ -x "${PC_TARGET}/sbin/init" ] || [ -L "${PC_TARGET}/sbin/init" ] || die "the new root has no /sbin/init"
  chroot "${PC_TARGET}" test -x /sbin/init || die "the new root's /sbin/init is not executable inside it"
  mkdir -p -- "$(dirname -- "${PC_SWITCH_ROOT_FILE}")"
  printf '%s\n' "${PC_TARGET}" > "${PC_SWITCH_ROOT_FILE}.tmp"
  mv -f -- "${PC_SWITCH_ROOT_FILE}.tmp" "${PC_SWITCH_ROOT_FILE}"
  log "asked /init to switch root to ${PC_TARGET}"
}
