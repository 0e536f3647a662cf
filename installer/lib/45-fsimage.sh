# Image mode: the golden image as an ext4 filesystem image, written onto the root partition instead of
# a tarball extracted into a fresh filesystem (qemu-lab.md: extraction is most of the install).
#
# Written by verified_write (15-fetch.sh), like the tarball: nothing mounts the partition before the
# digest matched, and a mismatch wipes it. Then a UUID of its own (the image's is every node's) and
# resize2fs to the partition's size.

# root_part_index: the index of the partition mounted at /.
root_part_index() {
  local i
  for i in "${!PC_PART_MOUNTS[@]}"; do
    if [ "${PC_PART_MOUNTS[${i}]}" = / ]; then
      printf '%s\n' "${i}"
      return 0
    fi
  done
  return 1
}

# dev_size_bytes DEV: a block device's size, or a regular file's (the tests write to files).
dev_size_bytes() {
  if [ -b "$1" ]; then blockdev --getsize64 "$1"; else stat -c %s -- "$1"; fi
}

# The image's first 64 KiB (boot block and primary superblock): held in RAM while the rest streams onto
# the partition, written by finish_fs_image only once the digest matched. Until then the partition holds
# no filesystem anything would find or mount, however much of the image the power cut left on it.
PC_FSIMAGE_HEAD_BYTES=65536

# write_dev DEV: stdin onto DEV, its head kept back (PC_FSIMAGE_HEAD_BYTES); notrunc keeps a regular file's size.
write_dev() {
  local head="${PC_DOWNLOAD_DIR}/fsimage.head"
  mkdir -p -- "${PC_DOWNLOAD_DIR}"
  dd of="${head}" bs="${PC_FSIMAGE_HEAD_BYTES}" count=1 iflag=fullblock status=none
  dd of="$1" bs=4M iflag=fullblock oflag=seek_bytes seek="${PC_FSIMAGE_HEAD_BYTES}" conv=notrunc,fsync status=none
}

# wipe_fs_image DEV: after a refused image nothing on the target may be mounted or booted: signatures
# off every partition, and zeroes over the root's start, where ext4 keeps its superblock, group
# descriptors and first inode tables (wipefs only clears the magic).
wipe_fs_image() {
  local dev="$1" mib
  wipe_filesystems
  mib=$(($(dev_size_bytes "${dev}") / 1048576))
  [ "${mib}" -le 64 ] || mib=64
  dd if=/dev/zero of="${dev}" bs=1M count="${mib}" conv=notrunc,fsync status=none || true
  sync
}

# finish_fs_image INDEX: the verified image on partition INDEX made this node's own: a UUID of its own
# and the partition's size. No e2fsck here: these bytes are the ones the build checked (pack-fsimage.ts
# runs e2fsck -fn on the image it hashes), and verified_write refused anything else, so a node-side check
# would prove again what the digest already proves (0.6 s of a BIOS install in the lab, bench/loop.ts).
# The image has metadata_csum_seed: tune2fs -U rewrites the superblock only, not every checksum, and never
# asks for a check first. resize2fs runs offline: the image was never mounted, so it needs no check either.
finish_fs_image() {
  local i="$1" dev="${PART_DEVS[$1]}"
  # The verified head, and at once the label of an unfinished root (label_root_complete ends that).
  dd if="${PC_DOWNLOAD_DIR}/fsimage.head" of="${dev}" conv=notrunc,fsync status=none
  rm -f -- "${PC_DOWNLOAD_DIR}/fsimage.head"
  run tune2fs -L "${PC_PARTIAL_LABEL}" -- "${dev}" >/dev/null
  step_as tune2fs run tune2fs -U random -- "${dev}"
  step_as resize2fs run resize2fs -- "${dev}"
  PART_UUIDS[i]="$(blkid -c /dev/null -s UUID -o value -- "${dev}")"
  [ -n "${PART_UUIDS[${i}]}" ] || die "no filesystem UUID on ${dev} after writing the image"
}

install_fs_image() {
  local i dev size
  i="$(root_part_index)" || die "the plan has no root partition"
  dev="${PART_DEVS[${i}]}"
  size="$(dev_size_bytes "${dev}")"
  if [ "${size}" -lt "${PC_FSIMAGE_BYTES}" ]; then
    die "the root partition ${dev} has ${size} bytes, the filesystem image needs ${PC_FSIMAGE_BYTES}"
  fi
  log "filesystem image ${PC_FSIMAGE_URL} (${PC_FSIMAGE_SIZE} bytes, ${PC_FSIMAGE_BYTES} unpacked, sha256 ${PC_FSIMAGE_SHA256}) onto ${dev}"
  # dd overwrites from the first byte: a second write needs no preparation (REFRESH is `true`).
  step verified_write 'filesystem image' 'the root partition' "${PC_FSIMAGE_URL}" "${PC_FSIMAGE_SHA256}" "${PC_FSIMAGE_SIZE}" \
    wipe_fs_image true write_dev "${dev}"
  step finish_fs_image "${i}"
  log "filesystem image verified, written and grown: UUID ${PART_UUIDS[${i}]}"
}
