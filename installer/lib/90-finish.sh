# The end of an install: the disk consistent, node0 told, then the plan's power action.

finish_install() {
  run_cleanups
  phase "done"
  log_close
  report_post "log?$(report_query)" "${PC_LOG}"
  log_direct "installed ${PC_OS_NAME} on ${NODE_NAME}; ${PC_AFTER_INSTALL}"
  power_action "${PC_AFTER_INSTALL}"
}
