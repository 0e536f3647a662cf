# The end of an install: the disk consistent, node0 told, then the plan's power action.

finish_install() {
  run_cleanups
  # The last write: the root gets the label the OS boots by (30-disk.sh). A power cut before it leaves a
  # root nothing boots; after it, a whole, configured one.
  label_root_complete
  phase "done"
  log_close
  report_post "log?$(report_query)" "${PC_LOG}"
  log_direct "installed ${PC_OS_NAME} on ${NODE_NAME}; ${PC_AFTER_INSTALL}"
  power_action "${PC_AFTER_INSTALL}"
}
