# The installer, in order. Every step is a function in common/lib/ or installer/lib/; any failure ends in
# fail_install (reports `failed` with the phase and the log tail, uploads the log).
mkdir -p /run/portacluster
log_open
trap_errors
trap run_cleanups EXIT

# Reports carry host= and mac=: find out who we are first (an unknown MAC is refused as phase start).
identify_node
# Then this install's run: its nonce goes with every report. node0 refuses a start it did not request
# (or a boot loop): report stops the installer there, before the disk is touched.
fetch_run
phase start
# What this machine is, as discovery reports it: node0 keeps it per node, so a swapped disk or NIC shows.
inventory_json "${NODE_MAC}" > /run/portacluster/inventory.json
report_post "inventory?$(report_query)" /run/portacluster/inventory.json

phase disk
node_disk_target
# select_disk only reads /sys and /dev/disk: a refusal here has written nothing.
disk_name="$(select_disk 2>/run/portacluster/select-disk.err)" || die "no target disk: $(cat /run/portacluster/select-disk.err)"
TARGET_DISK="${PC_DEVFS}/${disk_name}"
log "target disk ${TARGET_DISK} ($(disk_size_bytes "${disk_name}") bytes)"
# Both read only /sys: a write-protected disk or an image that cannot fit is refused before the first write.
check_disk_writable "${disk_name}"
check_image_fits "${disk_name}"
release_disk "${TARGET_DISK}"

phase partition
wipe_disk "${TARGET_DISK}"
partition_disk "${TARGET_DISK}"
make_filesystems
if [ "${PC_INSTALL_MODE}" = image ]; then
  # Written, checked, given its own UUID and grown before anything mounts it.
  install_fs_image
  mount_target
else
  mount_target
  install_image
fi

phase configure
configure_fstab
configure_identity
configure_network
configure_users
configure_ssh
configure_serial_console
install_bootloader

trap - EXIT
finish_install
