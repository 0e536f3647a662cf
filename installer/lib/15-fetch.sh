# Downloads that survive a broken connection, shared by the installer and the diskless boot.

# fetch_resumable FILE URL SHA256 WHAT: curl into FILE, resumed with a Range request after each break
# (curl's own --retry starts over from byte 0), then the digest over the whole file.
# Returns 2 on a digest mismatch; gives up (die) after 10 broken attempts.
fetch_resumable() {
  local file="$1" url="$2" want="$3" what="$4" digest attempt=1 status
  while :; do
    status=0
    curl -fsS --connect-timeout 10 --speed-time 30 --speed-limit 1024 --continue-at - \
      --output "${file}" -- "${url}" || status="$?"
    [ "${status}" = 0 ] && break
    [ "${attempt}" -lt 10 ] || die "the ${what} download failed 10 times (curl ${status})"
    warn "download attempt ${attempt} broke (curl ${status}) at $(stat -c %s -- "${file}" 2>/dev/null || echo 0) bytes: resuming"
    attempt=$((attempt + 1))
    sleep 1
  done
  digest="$(sha256sum -- "${file}" | cut -d ' ' -f 1)"
  if [ "${digest}" != "${want}" ]; then
    warn "sha256 of ${url} is ${digest}, the plan pins ${want}"
    return 2
  fi
}
