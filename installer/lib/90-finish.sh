# The end of an install: the disk consistent, node0 told, then the plan's power action.

# os_cmdline: the installed OS's kernel command line, as the boot loader (60-bootloader.sh grub_cfg) and
# node0's OS profile (render/pxelinux.ts) give it.
os_cmdline() {
  local words=("root=LABEL=${PC_ROOT_LABEL}" rw)
  [ -z "${PC_SERIAL_CONSOLE}" ] || words+=(console=tty0 "console=${PC_SERIAL_CONSOLE}")
  [ -z "${PC_KERNEL_ARGS}" ] || words+=("${PC_KERNEL_ARGS}")
  printf '%s\n' "${words[*]}"
}

# kexec_load: phoneHome.afterInstall kexec: the installed OS's newest kernel and initramfs loaded while the
# target is still mounted; `kexec --exec` starts it after `done` (no firmware POST, no second PXE round).
# Returns non-zero when it cannot, and the node reboots the usual way instead.
kexec_load() {
  local kernel initrd kernels
  if ! command -v kexec >/dev/null; then
    warn "this installer environment has no kexec: the node reboots instead"
    return 1
  fi
  kernels=("${PC_TARGET}"/boot/vmlinuz-*)
  if [ ! -e "${kernels[0]}" ]; then
    warn "the image has no /boot/vmlinuz-*: the node reboots instead of kexec"
    return 1
  fi
  read -r kernel initrd < <(newest_kernel)
  run kexec --load --initrd="${PC_TARGET}/boot/${initrd}" --command-line="$(os_cmdline)" -- "${PC_TARGET}/boot/${kernel}"
}

finish_install() {
  local after="${PC_AFTER_INSTALL}"
  if [ "${after}" = kexec ] && ! step kexec_load; then after=reboot; fi
  run_cleanups
  # The last write: the root gets the label the OS boots by (30-disk.sh). A power cut before it leaves a
  # root nothing boots; after it, a whole, configured one.
  label_root_complete
  phase "done"
  # kexec only when node0 says the link points at the OS: the next real reboot must boot the OS, not
  # this installer again (which node0 would refuse as a boot loop).
  if [ "${after}" = kexec ] && [[ "${PC_REPORT_ANSWER}" != "ok: switched to "* ]]; then
    warn "node0 did not confirm the switch to the OS (its answer: ${PC_REPORT_ANSWER:-none}): rebooting instead of kexec"
    after=reboot
  fi
  log_close
  report_post "log?$(report_query)" "${PC_LOG}"
  log_direct "installed ${PC_OS_NAME} on ${NODE_NAME}; ${after}"
  power_action "${after}"
}
