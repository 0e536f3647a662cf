# Logging, phases, phone-home, cleanup hooks and the one failure path: every profile's script starts here.
#
# Everything the script prints goes to the console (through the autorun runner) and to PC_LOG. Reports
# to node0 are best-effort: a dead or missing watcher never fails an install.

PC_LOG="${PC_LOG:-/var/log/portacluster-install.log}"
PC_PHASE="start"
# Set by identify_node; empty until then (an unknown node reports with host= empty).
NODE_NAME="${NODE_NAME:-}"
NODE_MAC="${NODE_MAC:-}"
_PC_TEE_PID=""
_PC_CLEANUPS=()

log() {
  printf '%s portacluster: %s\n' "$(date -u +%H:%M:%S)" "$*"
}

warn() {
  log "warning: $*" >&2
}

# Copies stdout and stderr to PC_LOG from here on; log_close() ends the copy and waits for it, so the log
# file is complete when it is read back (failure tail, upload).
log_open() {
  mkdir -p -- "$(dirname -- "${PC_LOG}")"
  : >> "${PC_LOG}"
  exec 3>&1 4>&2
  exec > >(tee -a -- "${PC_LOG}") 2>&1
  _PC_TEE_PID="$!"
}

log_close() {
  [ -n "${_PC_TEE_PID}" ] || return 0
  exec 1>&3 2>&4
  wait "${_PC_TEE_PID}" 2>/dev/null || true
  _PC_TEE_PID=""
}

# After log_close: lines still reach both the console and the log file.
log_direct() {
  log "$@"
  log "$@" >> "${PC_LOG}" 2>/dev/null || true
}

# host= and mac= of every report; names are RFC 1123 labels and MACs hex, so nothing needs escaping.
report_query() {
  printf 'host=%s&mac=%s' "${NODE_NAME}" "${NODE_MAC}"
}

# report PHASE: GET ${PC_PHONE_HOME_URL}/PHASE?host=&mac=. Never fails.
report() {
  local phase="$1"
  curl -fsS --max-time 10 --retry 3 --retry-delay 1 -o /dev/null \
    -- "${PC_PHONE_HOME_URL}/${phase}?$(report_query)" || warn "could not report ${phase} to ${PC_PHONE_HOME_URL}"
  return 0
}

# report_post PATH FILE: POST FILE's bytes to ${PC_PHONE_HOME_URL}/PATH. Never fails.
report_post() {
  local path="$1" file="$2"
  curl -fsS --max-time 30 --retry 3 --retry-delay 1 -o /dev/null \
    -H 'Content-Type: text/plain' --data-binary "@${file}" \
    -- "${PC_PHONE_HOME_URL}/${path}" || warn "could not post ${path%%\?*} to ${PC_PHONE_HOME_URL}"
  return 0
}

# phase NAME: marks the start of a phase, for the log, the failure report and node0.
phase() {
  PC_PHASE="$1"
  log "phase ${PC_PHASE}"
  report "${PC_PHASE}"
}

# on_cleanup FUNCTION: run by run_cleanups (the failure path, the EXIT trap, the end of an install), the
# latest registered first. A library registers what it sets up where it defines it, so the failure path
# never needs to know which libraries a profile has; each FUNCTION must be safe to run twice.
on_cleanup() {
  _PC_CLEANUPS+=("$1")
}

run_cleanups() {
  local i
  for ((i = ${#_PC_CLEANUPS[@]} - 1; i >= 0; i--)); do
    "${_PC_CLEANUPS[i]}" || warn "cleanup ${_PC_CLEANUPS[i]} failed"
  done
  return 0
}

# The one failure path: the ERR trap and every refusal end here. Reports `failed` with the phase and the
# last 20 log lines, uploads the whole log, and exits with the failing status.
fail_install() {
  local status="$1" why="$2" tail_file
  trap - ERR
  set +e
  log "FAILED in phase ${PC_PHASE}: ${why}" >&2
  # What the libraries registered (the install target, the diskless root): left consistent, unmounted.
  run_cleanups 2>/dev/null
  log_close
  tail_file="$(mktemp)"
  tail -n 20 -- "${PC_LOG}" > "${tail_file}"
  report_post "failed?$(report_query)&phase=${PC_PHASE}" "${tail_file}"
  report_post "log?$(report_query)" "${PC_LOG}"
  rm -f -- "${tail_file}"
  log_direct "installation failed; the log is ${PC_LOG}"
  exit "${status}"
}

# die MESSAGE: refuse and stop (nothing is written after this point).
die() {
  fail_install 1 "$*"
}

on_err() {
  local status="$1" line="$2" command="$3"
  fail_install "${status}" "exit ${status} at line ${line}: ${command}"
}

trap_errors() {
  set -E
  trap 'on_err "$?" "${LINENO}" "${BASH_COMMAND}"' ERR
}

# Runs a command, logging its command line first.
run() {
  log "+ $*"
  "$@"
}

# The node's environment: SystemRescue (systemd is PID 1) or the built-in one.
systemd_is_pid1() {
  [ "$(cat /proc/1/comm 2>/dev/null)" = systemd ]
}
