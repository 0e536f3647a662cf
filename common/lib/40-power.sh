# The end of a script that leaves the machine: power off or reboot, the way the environment can.

# power_action poweroff|reboot|kexec (kexec: the kernel kexec_load loaded; a reboot if that fails)
power_action() {
  local action="$1"
  case "${action}" in poweroff | reboot | kexec) ;; *) warn "unknown power action ${action}; powering off"; action=poweroff ;; esac
  sync
  if [ "${action}" = kexec ]; then
    kexec --exec || warn "kexec --exec failed (status $?): rebooting"
    action=reboot
  fi
  if systemd_is_pid1 && command -v systemctl >/dev/null; then
    systemctl "${action}" || "${action}"
  else
    "${action}"
  fi
}
