# The installer, in order. Every step is a function in common/lib/ or installer/lib/; any failure ends in
# fail_install (reports `failed` with the phase and the log tail, uploads the log). `step` logs each one's
# start and end (10-report.sh): the log node0 keeps says where the time went.
mkdir -p /run/portacluster
log_open
step_boot
trap_errors
trap run_cleanups EXIT

# Reports carry host= and mac=: find out who we are first (an unknown MAC is refused as phase start).
step identify_node
# Then this install's run: its nonce goes with every report. node0 refuses a start it did not request
# (or a boot loop): report stops the installer there, before the disk is touched.
step fetch_run
phase start
# What this machine is, as discovery reports it: node0 keeps it per node, so a swapped disk or NIC shows.
# In the background: it reads only, and is joined before `done`.
step report_inventory_start

phase disk
step node_disk_target
# select_disk only reads /sys and /dev/disk: a refusal here has written nothing.
step choose_target_disk
# Both read only /sys: a write-protected disk or an image that cannot fit is refused before the first write.
step check_disk_writable "${TARGET_DISK_NAME}"
step check_image_fits "${TARGET_DISK_NAME}"
step release_disk "${TARGET_DISK}"

phase partition
step wipe_disk "${TARGET_DISK}"
step partition_disk "${TARGET_DISK}"
step make_filesystems
if [ "${PC_INSTALL_MODE}" = image ]; then
  # Written, checked, given its own UUID and grown before anything mounts it.
  step install_fs_image
  step mount_target
else
  step mount_target
  step install_image
fi

phase configure
step configure_fstab
step configure_identity
step configure_network
step configure_users
step configure_ssh
step configure_serial_console
step install_bootloader
step report_inventory_wait

trap - EXIT
finish_install
