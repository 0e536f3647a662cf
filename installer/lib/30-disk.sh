# The target disk: select it by the plan's selector, release whatever holds it (mounts, swap, md, LVM),
# wipe it, partition it and make the filesystems. Selection writes nothing, and every refusal happens
# before the first write.

PC_DEVFS="${PC_DEVFS:-/dev}"
PC_TARGET="${PC_TARGET:-/run/portacluster/target}"
TARGET_DISK=""
# The root filesystem's label while the install runs. The OS is found by its label (root=LABEL= on the
# network-booted kernel line, `search --label` in grub.cfg): a root that is not finished carries this one,
# so a node whose power failed mid-install never boots a half-written or half-configured root as if it
# were good. label_root_complete gives it the plan's label as the install's last write, before `done`.
PC_PARTIAL_LABEL=pc-installing
PART_DEVS=()
PART_UUIDS=()
_PC_MOUNTED=()

# disk_size_bytes NAME: size of /sys/block/NAME in bytes (the kernel counts 512-byte sectors).
disk_size_bytes() {
  local sectors
  sectors="$(cat -- "${PC_SYSFS}/block/$1/size" 2>/dev/null || echo 0)"
  printf '%s\n' "$((sectors * 512))"
}

# A whole disk worth installing to: a real device (loop, ram, zram, md and dm have no device link), not
# removable (USB sticks, card readers, CD drives), not empty.
is_candidate_disk() {
  local name="$1" sys="${PC_SYSFS}/block/$1"
  [ -e "${sys}/device" ] || return 1
  [ "$(cat -- "${sys}/removable" 2>/dev/null || echo 1)" = 0 ] || return 1
  [ "$(disk_size_bytes "${name}")" -gt 0 ] || return 1
  case "${name}" in sr* | fd* | loop* | ram* | zram*) return 1 ;; esac
  return 0
}

# disk_by_link KIND NAME: the kernel name of the whole disk /dev/disk/KIND/NAME points to.
disk_by_link() {
  local kind="$1" name="$2" link target
  case "${name}" in '' | */* | . | ..) return 1 ;; esac
  link="${PC_DEVFS}/disk/${kind}/${name}"
  [ -L "${link}" ] || [ -e "${link}" ] || return 1
  target="$(readlink -f -- "${link}")" || return 1
  target="${target##*/}"
  # A partition's link (…-part2) is not a disk.
  [ -d "${PC_SYSFS}/block/${target}" ] || return 1
  printf '%s\n' "${target}"
}

# node_disk_target: this node's own selector (nodes[].diskTarget) replaces the cluster's, after identify_node.
node_disk_target() {
  local kind="${PC_NODE_DISK_KINDS[${NODE_INDEX}]:-}"
  [ -n "${kind}" ] || return 0
  PC_DISK_TARGET_KIND="${kind}"
  PC_DISK_TARGET_NAME="${PC_NODE_DISK_NAMES[${NODE_INDEX}]}"
  log "disk selector of ${NODE_NAME}: ${PC_DISK_TARGET_KIND} ${PC_DISK_TARGET_NAME}"
}

# select_disk: prints the kernel name of the target disk, or explains on stderr and returns 1.
# Reads only /sys and /dev/disk (under PC_SYSFS and PC_DEVFS): nothing is written.
select_disk() {
  local name found=() size
  case "${PC_DISK_TARGET_KIND}" in
    by-id | by-path)
      if ! name="$(disk_by_link "${PC_DISK_TARGET_KIND}" "${PC_DISK_TARGET_NAME}")"; then
        printf 'no disk at /dev/disk/%s/%s (present: %s)\n' "${PC_DISK_TARGET_KIND}" "${PC_DISK_TARGET_NAME}" \
          "$(cd -- "${PC_DEVFS}/disk/${PC_DISK_TARGET_KIND}" 2>/dev/null && printf '%s ' * || echo none)" >&2
        return 1
      fi
      found=("${name}")
      ;;
    only-non-removable)
      for name in "${PC_SYSFS}"/block/*; do
        name="${name##*/}"
        is_candidate_disk "${name}" && found+=("${name}")
      done
      if [ "${#found[@]}" -eq 0 ]; then
        printf 'no non-removable disk found\n' >&2
        return 1
      fi
      if [ "${#found[@]}" -gt 1 ]; then
        printf 'several non-removable disks (%s): name one with disk.target byId or byPath\n' "${found[*]}" >&2
        return 1
      fi
      ;;
    *)
      printf 'unknown disk selector %s\n' "${PC_DISK_TARGET_KIND}" >&2
      return 1
      ;;
  esac
  size="$(disk_size_bytes "${found[0]}")"
  if [ "${size}" -lt "${PC_DISK_MIN_BYTES}" ]; then
    printf 'disk %s has %s bytes, the layout needs at least %s\n' "${found[0]}" "${size}" "${PC_DISK_MIN_BYTES}" >&2
    return 1
  fi
  printf '%s\n' "${found[0]}"
}

# check_disk_writable NAME: a write-protected disk (a switch, a read-only LUN, `blockdev --setro`) is refused
# by name before anything tries to write to it (else sfdisk fails halfway with its own words).
check_disk_writable() {
  local ro
  ro="$(cat -- "${PC_SYSFS}/block/$1/ro" 2>/dev/null || echo 0)"
  if [ "${ro}" != 0 ]; then
    die "the target disk ${PC_DEVFS}/$1 is read-only (write-protected: a switch, a read-only LUN or blockdev --setro): refused, nothing was written"
  fi
}

# root_part_bytes NAME: the size the layout's root partition will have on disk NAME, as sfdisk makes it:
# each partition starts on a 1 MiB boundary after the first MiB; a fixed size is rounded up to the KiB
# sfdisk_script asks for; "rest" runs to the end of the disk, on GPT to the last 1 MiB boundary before
# the backup table (33 sectors). Prints nothing and returns 1 when no partition is mounted at /.
root_part_bytes() {
  local i size root="" start=1048576 align=1048576 sectors
  for i in "${!PC_PART_SIZES[@]}"; do
    size="${PC_PART_SIZES[${i}]}"
    if [ "${PC_PART_MOUNTS[${i}]}" = / ]; then
      root="${size}"
    elif [ "${size}" != rest ]; then
      start=$((start + (size + align - 1) / align * align))
    fi
  done
  [ -n "${root}" ] || return 1
  if [ "${root}" != rest ]; then
    printf '%s\n' "$(((root + 1023) / 1024 * 1024))"
    return 0
  fi
  sectors=$(($(disk_size_bytes "$1") / 512))
  if [ "${PC_DISK_TABLE}" = gpt ]; then
    printf '%s\n' "$(((sectors - 33) / 2048 * 2048 * 512 - start))"
  else
    printf '%s\n' "$((sectors * 512 - start))"
  fi
}

# check_image_fits NAME: an image larger than the root partition the layout makes on this disk is refused
# before the disk is touched (the previous install stays whole), with both sizes. Image mode knows the
# filesystem image's unpacked size (PC_FSIMAGE_BYTES); a tarball's unpacked size is not in the plan, so
# tarball mode is checked only by tar running out of space.
check_image_fits() {
  local root
  [ "${PC_INSTALL_MODE}" = image ] || return 0
  root="$(root_part_bytes "$1")" || die "the layout has no partition mounted at /"
  if [ "${root}" -lt "${PC_FSIMAGE_BYTES}" ]; then
    die "the filesystem image needs ${PC_FSIMAGE_BYTES} bytes, but the root partition the layout makes on ${PC_DEVFS}/$1 ($(disk_size_bytes "$1") bytes) has ${root} bytes: refused, nothing was written"
  fi
}

# choose_target_disk: TARGET_DISK (and its name under /sys/block, TARGET_DISK_NAME) from the selector, or the install stops here, having written nothing.
choose_target_disk() {
  local name err=/run/portacluster/select-disk.err
  name="$(select_disk 2>"${err}")" || die "no target disk: $(cat -- "${err}")"
  TARGET_DISK_NAME="${name}"
  TARGET_DISK="${PC_DEVFS}/${name}"
  log "target disk ${TARGET_DISK} ($(disk_size_bytes "${name}") bytes)"
}

# part_dev DISK N: /dev/sda + 1 → /dev/sda1; /dev/nvme0n1 + 1 → /dev/nvme0n1p1 (names ending in a digit).
part_dev() {
  case "$1" in
    *[0-9]) printf '%sp%s\n' "$1" "$2" ;;
    *) printf '%s%s\n' "$1" "$2" ;;
  esac
}

# part_type_code TABLE TYPE: the sfdisk type (GPT GUID or msdos id).
part_type_code() {
  case "$1:$2" in
    gpt:esp) echo C12A7328-F81F-11D2-BA4B-00A0C93EC93B ;;
    gpt:bios_grub) echo 21686148-6449-6E6F-744E-656564454649 ;;
    gpt:swap) echo 0657FD6D-A4AB-43C4-84E5-0933C84B4F4F ;;
    gpt:linux) echo 0FC63DAF-8483-4772-8E47-3D69C8CDE47A ;;
    msdos:esp) echo ef ;;
    msdos:swap) echo 82 ;;
    msdos:linux) echo 83 ;;
    *) return 1 ;;
  esac
}

# sfdisk_script: the partition table as sfdisk input (sizes in KiB; "rest" takes what is left).
sfdisk_script() {
  local i line code
  if [ "${PC_DISK_TABLE}" = gpt ]; then echo 'label: gpt'; else echo 'label: dos'; fi
  for i in "${!PC_PART_TYPES[@]}"; do
    code="$(part_type_code "${PC_DISK_TABLE}" "${PC_PART_TYPES[${i}]}")" || {
      printf 'no %s partition type on a %s table\n' "${PC_PART_TYPES[${i}]}" "${PC_DISK_TABLE}" >&2
      return 1
    }
    line="type=${code}"
    if [ "${PC_PART_SIZES[${i}]}" != rest ]; then
      line="size=$(((PC_PART_SIZES[i] + 1023) / 1024))KiB, ${line}"
    fi
    if [ "${PC_DISK_TABLE}" = gpt ] && [ -n "${PC_PART_LABELS[${i}]}" ]; then
      line="${line}, name=\"${PC_PART_LABELS[${i}]}\""
    fi
    printf '%s\n' "${line}"
  done
}

# holders_of DISK: md arrays and dm devices (LVM) built on the disk or its partitions.
holders_of() {
  local name="${1##*/}" dev holder
  for dev in "${PC_SYSFS}/block/${name}" "${PC_SYSFS}/block/${name}"/"${name}"*; do
    [ -d "${dev}/holders" ] || continue
    for holder in "${dev}"/holders/*; do
      [ -e "${holder}" ] && printf '%s\n' "${holder##*/}"
    done
  done
  return 0
}

# partitions_of DISK: /dev paths of the disk's existing partitions.
partitions_of() {
  local name="${1##*/}" dev
  for dev in "${PC_SYSFS}/block/${name}/${name}"*; do
    [ -e "${dev}/partition" ] && printf '%s/%s\n' "${PC_DEVFS}" "${dev##*/}"
  done
  return 0
}

# release_disk DISK: whatever an earlier install (or another OS) left holding the disk lets go of it:
# mounts and swap on it, LVM volume groups and md arrays on it. Reinstalls start from here.
release_disk() {
  local disk="$1" dev mnt holder vg
  while read -r dev mnt _; do
    case "${dev}" in "${disk}" | "${disk}"[0-9p]*) run umount -R -- "${mnt}" || run umount -l -- "${mnt}" ;; esac
  done < <(sort -r -k2 /proc/mounts)
  while read -r dev _; do
    case "${dev}" in "${disk}" | "${disk}"[0-9p]*) run swapoff -- "${dev}" ;; esac
  done < <(tail -n +2 /proc/swaps)
  if command -v vgchange >/dev/null; then
    while read -r vg dev; do
      case "${dev}" in "${disk}" | "${disk}"[0-9p]*) if [ -n "${vg}" ]; then run vgchange -an -- "${vg}"; fi ;; esac
    done < <(pvs --noheadings -o vg_name,pv_name 2>/dev/null)
  fi
  for holder in $(holders_of "${disk}"); do
    case "${holder}" in
      md*) run mdadm --stop -- "${PC_DEVFS}/${holder}" ;;
      dm-*) run dmsetup remove --retry -- "$(cat -- "${PC_SYSFS}/block/${holder}/dm/name")" ;;
    esac
  done
}

# wipe_disk DISK: old signatures off every partition, then off the disk itself (labels, RAID and LVM
# superblocks), so nothing of the previous install is ever assembled or mounted again.
wipe_disk() {
  local disk="$1" part
  for part in $(partitions_of "${disk}"); do
    if command -v mdadm >/dev/null; then mdadm --zero-superblock --force -- "${part}" 2>/dev/null || true; fi
    run wipefs -a -q -- "${part}" || true
  done
  run wipefs -a -q -- "${disk}"
}

# wait_for_dev PATH: partitions appear asynchronously (udev); waits up to 10 s.
wait_for_dev() {
  local dev="$1" tries=0
  if command -v udevadm >/dev/null; then udevadm settle --timeout=10 2>/dev/null || true; fi
  while [ ! -b "${dev}" ]; do
    tries=$((tries + 1))
    [ "${tries}" -le 100 ] || { printf 'device %s did not appear\n' "${dev}" >&2; return 1; }
    sleep 0.1
  done
}

partition_disk() {
  local disk="$1" i
  sfdisk_script | tee /dev/stderr | run sfdisk --quiet --wipe always --wipe-partitions always -- "${disk}"
  PART_DEVS=()
  for i in "${!PC_PART_TYPES[@]}"; do
    PART_DEVS+=("$(part_dev "${disk}" "$((i + 1))")")
    wait_for_dev "${PART_DEVS[${i}]}"
  done
}

# make_filesystems: one filesystem per partition, labelled; UUIDs collected for fstab.
make_filesystems() {
  local i dev label
  PART_UUIDS=()
  for i in "${!PART_DEVS[@]}"; do
    dev="${PART_DEVS[${i}]}"
    label="${PC_PART_LABELS[${i}]}"
    [ "${PC_PART_MOUNTS[${i}]}" != / ] || label="${PC_PARTIAL_LABEL}"
    # Image mode: the root filesystem arrives whole with the image (45-fsimage.sh), UUID and all.
    if [ "${PC_INSTALL_MODE}" = image ] && [ "${PC_PART_MOUNTS[${i}]}" = / ]; then
      PART_UUIDS+=("")
      continue
    fi
    case "${PC_PART_FS[${i}]}" in
      ext4) run mkfs.ext4 -q -F ${label:+-L "${label}"} -- "${dev}" ;;
      xfs) run mkfs.xfs -q -f ${label:+-L "${label}"} -- "${dev}" ;;
      vfat) run mkfs.vfat -F 32 ${label:+-n "${label^^}"} -- "${dev}" >/dev/null ;;
      swap) run mkswap ${label:+-L "${label}"} -- "${dev}" >/dev/null ;;
      '') ;;
      *) die "unknown filesystem ${PC_PART_FS[${i}]}" ;;
    esac
    if [ -n "${PC_PART_FS[${i}]}" ]; then
      PART_UUIDS+=("$(blkid -c /dev/null -s UUID -o value -- "${dev}")")
    else
      PART_UUIDS+=("")
    fi
  done
}

# label_root_complete: the completion marker. The root filesystem gets the label the OS boots by; until
# this write nothing finds it (see PC_PARTIAL_LABEL). Run with the target unmounted (xfs needs that).
label_root_complete() {
  local i dev
  for i in "${!PC_PART_MOUNTS[@]}"; do
    [ "${PC_PART_MOUNTS[${i}]}" = / ] || continue
    dev="${PART_DEVS[${i}]}"
    case "${PC_PART_FS[${i}]}" in
      ext4) run tune2fs -L "${PC_ROOT_LABEL}" -- "${dev}" >/dev/null ;;
      xfs) run xfs_admin -L "${PC_ROOT_LABEL}" -- "${dev}" >/dev/null ;;
      *) die "no way to label a ${PC_PART_FS[${i}]} root filesystem" ;;
    esac
    sync
    log "root filesystem ${dev} labelled ${PC_ROOT_LABEL}: the install is complete"
    return 0
  done
  die "the plan has no root partition to label"
}

# mount_order: indexes of mounted partitions, parents first (/ before /boot before /boot/efi).
mount_order() {
  local i
  for i in "${!PC_PART_MOUNTS[@]}"; do
    [ -n "${PC_PART_MOUNTS[${i}]}" ] && printf '%s %s\n' "${PC_PART_MOUNTS[${i}]}" "${i}"
  done | sort -k1,1 | awk '{print $2}'
}

mount_target() {
  local i dir
  mkdir -p -- "${PC_TARGET}"
  for i in $(mount_order); do
    dir="${PC_TARGET}${PC_PART_MOUNTS[${i}]%/}"
    mkdir -p -- "${dir}"
    run mount -t "${PC_PART_FS[${i}]}" -- "${PART_DEVS[${i}]}" "${dir}"
    _PC_MOUNTED+=("${dir}")
  done
}

# Unmounts everything below the target, deepest first (also what the chroot steps bind-mounted).
cleanup_target() {
  local mnt
  [ -d "${PC_TARGET}" ] || return 0
  while read -r _ mnt _; do
    case "${mnt}" in "${PC_TARGET}" | "${PC_TARGET}"/*) umount -- "${mnt}" 2>/dev/null || umount -l -- "${mnt}" ;; esac
  done < <(sort -r -k2 /proc/mounts)
  _PC_MOUNTED=()
  sync
}
on_cleanup cleanup_target

# wipe_filesystems: after a refused image, no filesystem of the target is left to mount or boot.
wipe_filesystems() {
  local dev
  cleanup_target
  for dev in "${PART_DEVS[@]}"; do
    wipefs -a -q -- "${dev}" || true
  done
  sync
}
