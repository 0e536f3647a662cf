# The golden image: download, verify against the digest pinned in this script, extract.
#
# Fast path: one pass. curl's bytes go through tee into sha256sum and on through zstd into tar, which
# writes the target; the digest is compared when the stream ends, and a mismatch wipes the filesystems
# again. The target is never bootable before the digest matched: the boot loader, fstab and the `done`
# report all come after, and the node's link is switched only on `done`.
# Slow path, when the stream breaks (server drop, network): start over into a tmpfs file that curl
# resumes with Range requests, verify it whole, then extract. Chosen by measurement (qemu-lab.md:
# extraction dominates, a separate verify pass costs ~2.4 s here), so it is only the fallback.

PC_DOWNLOAD_DIR="${PC_DOWNLOAD_DIR:-/run/portacluster/download}"

tar_extract() {
  # --numeric-owner: the installer environment's user names mean nothing in the image.
  # --xattrs/--acls: file capabilities (ping), ACLs; --preserve-permissions: modes as packed.
  tar --extract --file=- --directory="${PC_TARGET}" --numeric-owner --preserve-permissions \
    --xattrs --xattrs-include='*' --acls
}

# stream_verified URL SHA256 SINK [ARG…]: one pass of URL through zstd -d into SINK; returns 2 when the
# digest does not match, 1 when the stream broke.
stream_verified() {
  local url="$1" want="$2" fifo digest_file digest sha_pid statuses
  shift 2
  mkdir -p -- "${PC_DOWNLOAD_DIR}"
  fifo="${PC_DOWNLOAD_DIR}/sha.fifo"
  digest_file="${PC_DOWNLOAD_DIR}/sha256"
  rm -f -- "${fifo}" "${digest_file}"
  mkfifo -- "${fifo}"
  sha256sum < "${fifo}" > "${digest_file}" &
  sha_pid="$!"
  # An `if` keeps a broken stream from firing the ERR trap; PIPESTATUS still holds every stage's status.
  if curl -fsS --connect-timeout 10 --speed-time 30 --speed-limit 1024 -- "${url}" \
    | tee -- "${fifo}" | zstd -d -q -c | "$@"; then
    statuses=("${PIPESTATUS[@]}")
  else
    statuses=("${PIPESTATUS[@]}")
  fi
  wait "${sha_pid}"
  rm -f -- "${fifo}"
  digest="$(cut -d ' ' -f 1 < "${digest_file}")"
  if [ "${statuses[0]}" != 0 ]; then
    warn "the download broke (curl ${statuses[0]}, tee ${statuses[1]}, zstd ${statuses[2]}, $1 ${statuses[3]})"
    return 1
  fi
  if [ "${digest}" != "${want}" ]; then
    warn "sha256 of ${url} is ${digest}, the plan pins ${want}"
    return 2
  fi
  if [ "${statuses[2]}" != 0 ] || [ "${statuses[3]}" != 0 ]; then
    die "the image matched its digest but did not unpack (zstd ${statuses[2]}, $1 ${statuses[3]})"
  fi
  return 0
}

stream_image() {
  stream_verified "${PC_IMAGE_URL}" "${PC_IMAGE_SHA256}" tar_extract
}

# download_verified FILE [URL SHA256]: fetch_resumable for the golden image (default: the tarball).
download_verified() {
  fetch_resumable "$1" "${2:-${PC_IMAGE_URL}}" "${3:-${PC_IMAGE_SHA256}}" image
}

# tmpfs_has_room [BYTES]: enough RAM for the download (default: the tarball) in tmpfs, with 128 MiB to spare?
tmpfs_has_room() {
  local bytes="${1:-${PC_IMAGE_SIZE}}" avail_kib
  avail_kib="$(awk '/^MemAvailable:/ {print $2}' /proc/meminfo)"
  [ $((avail_kib * 1024)) -gt $((bytes + 134217728)) ]
}

# Empties the target filesystems after a broken stream (mkfs is faster than deleting a half tree).
refresh_filesystems() {
  cleanup_target
  make_filesystems
  mount_target
}

install_image() {
  local status=0 file
  log "image ${PC_IMAGE_URL} (${PC_IMAGE_SIZE} bytes, sha256 ${PC_IMAGE_SHA256})"
  # Download and extraction run together in the stream: both phases start now.
  phase download
  phase extract
  stream_image || status="$?"
  if [ "${status}" = 2 ]; then
    PC_PHASE=download
    wipe_filesystems
    die "the golden image does not match its sha256: refused, and the target filesystems wiped"
  fi
  if [ "${status}" = 1 ]; then
    PC_PHASE=download
    log "retrying the download with resume"
    refresh_filesystems
    if tmpfs_has_room; then
      file="${PC_DOWNLOAD_DIR}/image.tar.zst"
      rm -f -- "${file}"
      download_verified "${file}" || status="$?"
      if [ "${status}" = 2 ]; then
        rm -f -- "${file}"
        wipe_filesystems
        die "the golden image does not match its sha256: refused before extraction"
      fi
      PC_PHASE=extract
      zstd -d -q -c -- "${file}" | tar_extract
      rm -f -- "${file}"
    else
      warn "not enough memory to hold the image: streaming again"
      status=0
      stream_image || status="$?"
      if [ "${status}" != 0 ]; then
        wipe_filesystems
        die "the golden image could not be downloaded and verified (status ${status})"
      fi
    fi
  fi
  log "image verified and extracted"
}
