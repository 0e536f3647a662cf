# The end of an install: the disk consistent, node0 told, then the plan's power action.

finish_install() {
  run_cleanups
  phase "done"
  log_close
  report_post "log?$(report_query)" "${PC_LOG}"
  log_direct "installed ${PC_OS_NAME} on ${NODE_NAME}; ${PC_AFTER_INSTALL}"
  power_action "${PC_AFTER_INSTALL}"
}

# power_action poweroff|reboot
power_action() {
  local action="$1"
  case "${action}" in poweroff | reboot) ;; *) warn "unknown power action ${action}; powering off"; action=poweroff ;; esac
  sync
  if systemd_is_pid1 && command -v systemctl >/dev/null; then
    systemctl "${action}" || "${action}"
  else
    "${action}"
  fi
}
