# Discovery: a machine the spec does not know booted the discover profile. It reports what it is (the
# inventory, common/lib/30-inventory.sh) under its boot MAC and then does what the plan says; nothing
# here opens a disk for writing.

# discover_identify: NODE_MAC = the boot MAC (BOOTIF=), else the first NIC's; NODE_NAME = the spec's name
# if this MAC is a node after all (it booted discover because its link is missing), else empty.
discover_identify() {
  local mac index
  NODE_MAC="$(boot_mac)"
  if [ -z "${NODE_MAC}" ]; then
    while read -r _ mac; do
      NODE_MAC="${mac}"
      break
    done < <(nic_macs)
  fi
  [ -n "${NODE_MAC}" ] || die "no network interface with a MAC address"
  if index="$(node_index "${NODE_MAC}")"; then
    NODE_NAME="${PC_NODE_NAMES[${index}]}"
  fi
  log "this machine: boot MAC ${NODE_MAC}${NODE_NAME:+ (spec node ${NODE_NAME})}"
}

# discover_report FILE: writes the inventory to FILE and posts it to node0's watcher.
discover_report() {
  local file="$1"
  inventory_json "${NODE_MAC}" > "${file}"
  log "inventory: $(wc -c < "${file}") bytes; $(grep -o '"byId"' "${file}" | wc -l) disks, $(grep -o '"operstate"' "${file}" | wc -l) NICs"
  report_post "inventory?$(report_query)" "${file}"
}

# discover_then poweroff|wait
discover_then() {
  case "$1" in
    wait) log_direct "inventory reported; waiting to be enrolled (portacluster discovered, then portacluster enroll ${NODE_MAC} --name …)" ;;
    *) power_action poweroff ;;
  esac
}
