# The end of a script that leaves the machine: power off or reboot, the way the environment can.

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
