# Diskless, in order: fetch and verify the golden root, mount it in RAM, give it this node's identity,
# report `diskless-ready`, and ask the built-in /init to switch to it. No disk is opened at any point.
# Any failure ends in fail_install (reports `failed`, unmounts everything; /init then starts its shells).
mkdir -p /run/portacluster
# In /run: the log moves into the running system with it.
PC_LOG=/run/portacluster/diskless.log
log_open
trap_errors
trap run_cleanups EXIT

identify_node
fetch_run
phase start

phase download
fetch_root
load_root_modules
mount_root

phase configure
configure_identity
configure_diskless_fstab
configure_network
configure_users
configure_ssh
configure_serial_console

trap - EXIT
phase diskless-ready
request_switch_root
log_close
