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

# The time comes from bash's own strftime, not from `date`: a fork and exec per line cost the installer
# ~2 s on a TCG vCPU (bench/loop.ts, "between steps"). TZ is set for this call only.
log() {
  local -x TZ=UTC0
  printf '%(%H:%M:%S)T portacluster: %s\n' -1 "$*"
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

# This install's run and its nonce (node0's lifecycle/runs.ts): fetched by fetch_run, sent with every report.
PC_RUN=""
PC_NONCE=""

# fetch_run: the run file node0 wrote for this node when it was switched (reimage, rescue, diskless), by
# MAC; nginx hands it only to this node's address. Without it the reports do not count and node0 refuses
# the start. The nonce is a secret for this run: it goes into report URLs only, never into the log.
fetch_run() {
  local file key value
  [ -n "${NODE_MAC}" ] || return 0
  file="$(mktemp)"
  if ! curl -fsS --max-time 10 --retry 3 --retry-delay 1 -o "${file}" -- "${PC_RUNS_URL}/${NODE_MAC//:/-}"; then
    warn "no run file for ${NODE_MAC} on node0: this boot was not requested (reimage, rescue or diskless)"
    rm -f -- "${file}"
    return 0
  fi
  while IFS='=' read -r key value; do
    case "${key}" in
      run) [[ "${value}" =~ ^[0-9A-Za-z-]{1,40}$ ]] && PC_RUN="${value}" ;;
      nonce) [[ "${value}" =~ ^[0-9a-f]{32}$ ]] && PC_NONCE="${value}" ;;
    esac
  done < "${file}"
  rm -f -- "${file}"
  if [ -n "${PC_NONCE}" ]; then log "run ${PC_RUN:-?}"; else warn "the run file for ${NODE_MAC} holds no nonce"; fi
  return 0
}

# host=, mac= and nonce= of every report; names are RFC 1123 labels, MACs and nonces hex: nothing to escape.
report_query() {
  printf 'host=%s&mac=%s&nonce=%s' "${NODE_NAME}" "${NODE_MAC}" "${PC_NONCE}"
}

# The first line of node0's answer to the last report it accepted (`done`: "ok: switched to OS" once the
# node's link points at its OS).
# shellcheck disable=SC2034 # read by installer/lib/90-finish.sh (other profiles do not use it)
PC_REPORT_ANSWER=""

# Each phase report's number in this boot, sent as seq=BOOT.N (BOOT: the kernel's boot id): a retry of a
# report node0 counted but could not answer (it restarted in between) carries the same number, and node0
# answers it without counting it again. The boot id keeps a new boot's `start` (a boot loop) from passing
# for a retry of the last boot's. report runs in the script's own shell (phase), never in a subshell, so
# the count is the script's one.
PC_REPORT_SEQ=0
PC_BOOT_ID=""

# report PHASE: GET ${PC_PHONE_HOME_URL}/PHASE?host=&mac=&nonce=&seq=BOOT.N. A dead watcher never fails an install;
# a refusal (409: no run was requested for this node, or its run already ended: a boot loop) stops it here,
# before anything is written.
report() {
  local phase="$1" answer code
  answer="$(mktemp)"
  PC_REPORT_SEQ=$((PC_REPORT_SEQ + 1))
  if [ -z "${PC_BOOT_ID}" ]; then
    PC_BOOT_ID="$(tr -dc '0-9a-f' < "${PC_PROCFS:-/proc}/sys/kernel/random/boot_id" 2>/dev/null)" || true
    [[ "${PC_BOOT_ID}" =~ ^[0-9a-f]{32}$ ]] || PC_BOOT_ID="$(od -An -N16 -tx1 /dev/urandom | tr -dc '0-9a-f')"
  fi
  # Retried for up to 2 minutes, refused connections too: node0 restarting (serve's services coming back,
  # a deploy's reload) must not lose a phase, least of all `done`, which alone switches the node's link.
  code="$(curl -sS --max-time 10 --retry 30 --retry-delay 2 --retry-max-time 120 --retry-connrefused -o "${answer}" -w '%{http_code}' \
    -- "${PC_PHONE_HOME_URL}/${phase}?$(report_query)&seq=${PC_BOOT_ID}.${PC_REPORT_SEQ}")" || code=""
  # shellcheck disable=SC2034 # read by installer/lib/90-finish.sh
  case "${code}" in
    2??) PC_REPORT_ANSWER=""; IFS= read -r PC_REPORT_ANSWER < "${answer}" || true ;;
    409) refused "${phase}" "$(head -c 500 -- "${answer}")" ;;
    *) warn "could not report ${phase} to ${PC_PHONE_HOME_URL}${code:+ (HTTP ${code}: $(head -c 200 -- "${answer}"))}" ;;
  esac
  rm -f -- "${answer}"
  return 0
}

# refused PHASE WHY: node0 will not count this install; stop without touching anything (no failed report:
# node0 already knows, and said why).
refused() {
  trap - ERR EXIT
  log "node0 refused ${1}: ${2}" >&2
  log "stopping before anything is written; nothing was changed on this machine" >&2
  log_close
  exit 3
}

# report_progress BYTES TOTAL RATE: where the image download is; short and best effort (never retried).
report_progress() {
  curl -sS --max-time 3 -o /dev/null \
    -- "${PC_PHONE_HOME_URL}/progress?$(report_query)&bytes=${1}&total=${2}&rate=${3}" 2>/dev/null || true
}

# report_post PATH FILE: POST FILE's bytes to ${PC_PHONE_HOME_URL}/PATH. Never fails.
report_post() {
  local path="$1" file="$2"
  curl -fsS --max-time 30 --retry 30 --retry-delay 2 --retry-max-time 120 --retry-connrefused -o /dev/null \
    -H 'Content-Type: text/plain' --data-binary "@${file}" \
    -- "${PC_PHONE_HOME_URL}/${path}" || warn "could not post ${path%%\?*} to ${PC_PHONE_HOME_URL}"
  return 0
}

# phase NAME: marks the start of a phase, for the log, the failure report and node0. Its report is timed
# like a step (a phone-home round trip is time the install spends not moving bytes).
phase() {
  PC_PHASE="$1"
  log "phase ${PC_PHASE}"
  step_as "report:${PC_PHASE}" report "${PC_PHASE}"
}

# Where the install's time goes: every step's start and end in centiseconds since boot, from /proc/uptime
# (monotonic; read with builtins, so timing a step adds no process). The line goes to the log, which node0
# keeps (the `log` upload after `done`, and the `failed` path's); build/lifecycle/steps.ts parses it and
# bench/loop.ts prints the breakdown beside the floor. Steps may nest (a step inside another's function).
_PC_UPTIME=0
uptime_cs() {
  local up
  read -r up _ < "${PC_PROCFS:-/proc}/uptime"
  up="${up/./}"
  _PC_UPTIME=$((10#${up}))
}

# step_boot: the time from the kernel's start to this script (the installer environment's boot), as a step.
step_boot() {
  uptime_cs
  log "step boot 0 ${_PC_UPTIME} ($((_PC_UPTIME / 100)).$((_PC_UPTIME / 10 % 10))$((_PC_UPTIME % 10)) s)"
}

# step FUNCTION [ARG…]: runs FUNCTION in this shell (its variables stay set) and logs
# `step FUNCTION START END (SECONDS s)`. A failure inside ends in fail_install as before, untimed.
step() {
  step_as "$1" "$@"
}

# step_as NAME FUNCTION [ARG…]: the same, logged as NAME (letters, digits and _:.- only).
# Returns FUNCTION's status, so `if step …` tests the step (where set -e does not stop at the failure).
step_as() {
  local name="$1" t0 cs status
  shift
  uptime_cs
  t0="${_PC_UPTIME}"
  "$@"
  status="$?"
  uptime_cs
  cs=$((_PC_UPTIME - t0))
  log "step ${name} ${t0} ${_PC_UPTIME} ($((cs / 100)).$((cs / 10 % 10))$((cs % 10)) s)"
  return "${status}"
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
