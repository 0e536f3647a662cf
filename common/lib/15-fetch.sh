# Downloads whose bytes are trusted only once their sha256 matches the digest pinned in this script:
# fetch_resumable (into a file, for the diskless root) and verified_write (onto the install target, for
# the tarball and the filesystem image alike).

PC_DOWNLOAD_DIR="${PC_DOWNLOAD_DIR:-/run/portacluster/download}"
# The sha256 program: OpenSSL's where there is one (it uses the CPU's SHA extensions: 1.2 GB/s against
# coreutils' 345 MB/s on the development host, so on a 10 GbE node coreutils' would be the stream's
# bound), else sha256sum. Both read stdin and print the hex digest first. PC_SHA256_TOOL picks one.
if [ -z "${PC_SHA256_TOOL:-}" ]; then
  if command -v openssl > /dev/null 2>&1; then PC_SHA256_TOOL=openssl; else PC_SHA256_TOOL=sha256sum; fi
fi
case "${PC_SHA256_TOOL}" in
  openssl) PC_SHA256=(openssl dgst -sha256 -r) ;;
  sha256sum) PC_SHA256=(sha256sum) ;;
  *) printf 'PC_SHA256_TOOL must be openssl or sha256sum, not %s\n' "${PC_SHA256_TOOL}" >&2; exit 2 ;;
esac
# Seconds between progress reports while an image streams; 0: none (the cost is measured in
# test/installer-scripts.test.ts: the ratio of an install with reports to one without).
PC_PROGRESS_SECONDS="${PC_PROGRESS_SECONDS:-5}"
_PC_PROGRESS_PID=""
_PC_PROGRESS_BYTES=0

# progress_bytes SOURCE: sets _PC_PROGRESS_BYTES to the bytes downloaded so far. SOURCE pid:N is the
# hasher that reads every byte of the stream (rchar in /proc/N/io, read with builtins: no process at
# all); file:PATH is a file curl writes (one stat per report).
progress_bytes() {
  local key value
  case "$1" in
    pid:*)
      # Gone (the stream ended between two reports): nothing to read, and nothing to say about it.
      [ -r "/proc/${1#pid:}/io" ] || return 1
      while read -r key value; do
        if [ "${key}" = rchar: ]; then _PC_PROGRESS_BYTES="${value}"; return 0; fi
      done < "/proc/${1#pid:}/io" 2>/dev/null || return 1
      return 1
      ;;
    file:*) _PC_PROGRESS_BYTES="$(stat -c %s -- "${1#file:}" 2>/dev/null || echo 0)" ;;
  esac
}

# progress_start SOURCE TOTAL: a background loop that reports the download every PC_PROGRESS_SECONDS —
# one sleep and one curl per report, never a process per chunk of the stream.
progress_start() {
  local source="$1" total="$2"
  [ "${PC_PROGRESS_SECONDS}" != 0 ] || return 0
  (
    trap - ERR EXIT
    local last=0 t0 t1 rate
    t0="${EPOCHREALTIME/./}"
    # sleep's output goes nowhere: it must not hold the log's pipe open after the loop is killed.
    while sleep "${PC_PROGRESS_SECONDS}" > /dev/null 2>&1; do
      progress_bytes "${source}" || break
      [ "${_PC_PROGRESS_BYTES}" -le "${total}" ] || _PC_PROGRESS_BYTES="${total}"
      t1="${EPOCHREALTIME/./}"
      rate=$(((_PC_PROGRESS_BYTES - last) * 1000000 / (t1 - t0 + 1)))
      report_progress "${_PC_PROGRESS_BYTES}" "${total}" "${rate}"
      last="${_PC_PROGRESS_BYTES}"
      t0="${t1}"
    done
  ) &
  _PC_PROGRESS_PID="$!"
  _PC_PROGRESS_T0="${EPOCHREALTIME/./}"
}

# progress_stop [BYTES TOTAL]: ends the loop; with BYTES, a last report (the whole image: the bar ends full).
progress_stop() {
  local rate
  [ -n "${_PC_PROGRESS_PID}" ] || return 0
  kill "${_PC_PROGRESS_PID}" 2>/dev/null || true
  wait "${_PC_PROGRESS_PID}" 2>/dev/null || true
  _PC_PROGRESS_PID=""
  if [ "$#" = 2 ]; then
    rate=$(($1 * 1000000 / (${EPOCHREALTIME/./} - _PC_PROGRESS_T0 + 1)))
    report_progress "$1" "$2" "${rate}"
  fi
  return 0
}

# fetch_resumable FILE URL SHA256 WHAT [SIZE]: curl into FILE, resumed with a Range request after each
# break (curl's own --retry starts over from byte 0), then the digest over the whole file. With SIZE,
# progress is reported against it.
# Returns 2 on a digest mismatch, 1 after 10 broken attempts: the caller knows what to undo.
fetch_resumable() {
  local file="$1" url="$2" want="$3" what="$4" size="${5:-0}" digest attempt=1 status
  [ "${size}" = 0 ] || progress_start "file:${file}" "${size}"
  while :; do
    status=0
    curl -fsS --connect-timeout 10 --speed-time 30 --speed-limit 1024 --continue-at - \
      --output "${file}" -- "${url}" || status="$?"
    [ "${status}" = 0 ] && break
    if [ "${attempt}" -ge 10 ]; then
      progress_stop
      warn "the ${what} download failed 10 times (curl ${status}): giving up"
      return 1
    fi
    warn "download attempt ${attempt} broke (curl ${status}) at $(stat -c %s -- "${file}" 2>/dev/null || echo 0) bytes: resuming"
    attempt=$((attempt + 1))
    sleep 1
  done
  if [ "${size}" = 0 ]; then progress_stop; else progress_stop "${size}" "${size}"; fi
  digest="$("${PC_SHA256[@]}" < "${file}" | cut -d ' ' -f 1)"
  if [ "${digest}" != "${want}" ]; then
    warn "sha256 of ${url} is ${digest}, the plan pins ${want}"
    return 2
  fi
}

# stream_verified URL SHA256 SIZE SINK [ARG…]: one pass of URL through zstd -d into SINK; returns 2 when
# the digest does not match, 1 when the stream broke. Reports progress against SIZE while it streams.
stream_verified() {
  local url="$1" want="$2" size="$3" fifo digest_file digest sha_pid statuses
  shift 3
  mkdir -p -- "${PC_DOWNLOAD_DIR}"
  fifo="${PC_DOWNLOAD_DIR}/sha.fifo"
  digest_file="${PC_DOWNLOAD_DIR}/sha256"
  rm -f -- "${fifo}" "${digest_file}"
  mkfifo -- "${fifo}"
  # A simple command in the background: $! is the hasher itself, whose /proc/PID/io the progress loop reads.
  "${PC_SHA256[@]}" < "${fifo}" > "${digest_file}" &
  sha_pid="$!"
  progress_start "pid:${sha_pid}" "${size}"
  # An `if` keeps a broken stream from firing the ERR trap; PIPESTATUS still holds every stage's status.
  if curl -fsS --connect-timeout 10 --speed-time 30 --speed-limit 1024 -- "${url}" \
    | tee -- "${fifo}" | zstd -d -q -c | "$@"; then
    statuses=("${PIPESTATUS[@]}")
  else
    statuses=("${PIPESTATUS[@]}")
  fi
  wait "${sha_pid}"
  if [ "${statuses[0]}" = 0 ]; then progress_stop "${size}" "${size}"; else progress_stop; fi
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

# unpack_file FILE SIZE SINK [ARG…]: the verified FILE through zstd -d into SINK, reporting progress (how
# much of FILE zstd has read) while it runs, so the extract phase's deadline counts from the last progress
# as it does for the stream.
unpack_file() {
  local file="$1" size="$2" fifo zpid
  shift 2
  fifo="${PC_DOWNLOAD_DIR}/unpack.fifo"
  rm -f -- "${fifo}"
  mkfifo -- "${fifo}"
  # A simple command in the background: $! is zstd itself, whose /proc/PID/io the progress loop reads.
  zstd -d -q -c -- "${file}" > "${fifo}" &
  zpid="$!"
  progress_start "pid:${zpid}" "${size}"
  "$@" < "${fifo}"
  wait "${zpid}"
  rm -f -- "${fifo}"
  progress_stop "${size}" "${size}"
}

# tmpfs_has_room BYTES: enough RAM to hold BYTES in tmpfs, with 128 MiB to spare?
tmpfs_has_room() {
  local bytes="$1" avail_kib
  avail_kib="$(awk '/^MemAvailable:/ {print $2}' /proc/meminfo)"
  [ $((avail_kib * 1024)) -gt $((bytes + 134217728)) ]
}

# verified_write WHAT TARGET URL SHA256 SIZE WIPE REFRESH SINK [ARG…]: the zstd stream at URL (SIZE
# bytes, pinned to SHA256) unpacked by SINK ARG… onto the install target, the one state machine for
# every install mode:
#   - fast path, one pass: curl's bytes go through tee into the hasher (PC_SHA256) and on through zstd into SINK; the
#     digest is compared when the stream ends (qemu-lab.md: a separate verify pass costs more than it
#     saves, so resuming is only the fallback);
#   - a broken stream: REFRESH readies the target again, then the download starts over into a tmpfs file
#     that curl resumes with Range requests, is verified whole and only then unpacked by SINK (or, without
#     the RAM for it, is streamed once more);
#   - a digest mismatch on either path, or a download that keeps breaking: WIPE leaves nothing of the
#     target to mount or boot (a broken stream may have written some of it), then `failed`.
# WIPE and REFRESH get SINK's ARGs (they name the target). WHAT and TARGET name the bytes and the target
# in the refusal. The target is never bootable before the digest matched: the boot loader, fstab and the
# `done` report all come after, and the node's link is switched only on `done`.
verified_write() {
  local what="$1" target="$2" url="$3" want="$4" size="$5" wipe="$6" refresh="$7" status=0 file
  shift 7
  # Download and unpacking run together in the stream: both phases start now.
  phase download
  phase extract
  stream_verified "${url}" "${want}" "${size}" "$@" || status="$?"
  if [ "${status}" = 1 ]; then
    # From here download and unpacking are phases of their own again: node0 sees where the time goes, and
    # each gets its own deadline.
    phase download
    log "retrying the download with resume"
    "${refresh}" "${@:2}"
    status=0
    if tmpfs_has_room "${size}"; then
      file="${PC_DOWNLOAD_DIR}/${url##*/}"
      rm -f -- "${file}"
      fetch_resumable "${file}" "${url}" "${want}" "${what}" "${size}" || status="$?"
      if [ "${status}" = 0 ]; then
        phase extract
        unpack_file "${file}" "${size}" "$@"
      fi
      rm -f -- "${file}"
    else
      warn "not enough memory to hold the ${what}: streaming again"
      stream_verified "${url}" "${want}" "${size}" "$@" || status="$?"
    fi
  fi
  if [ "${status}" = 0 ]; then return 0; fi
  PC_PHASE=download
  "${wipe}" "${@:2}"
  if [ "${status}" = 2 ]; then die "the ${what} does not match its sha256: refused, and ${target} wiped"; fi
  die "the ${what} could not be downloaded whole: refused, and ${target} wiped"
}
