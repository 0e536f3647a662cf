# Which node is this? The boot MAC (BOOTIF= on the kernel command line, from pxelinux SYSAPPEND 2),
# else each NIC's MAC, looked up in the plan's PC_NODE_MACS.

PC_CMDLINE_FILE="${PC_CMDLINE_FILE:-/proc/cmdline}"
PC_SYSFS="${PC_SYSFS:-/sys}"

# normalize_mac TEXT: aa:bb:cc:dd:ee:ff from BOOTIF's 01-AA-BB-… or any colon/dash form; empty if not a MAC.
normalize_mac() {
  local m="${1,,}"
  m="${m//-/:}"
  if [[ "${m}" =~ ^01:([0-9a-f]{2}(:[0-9a-f]{2}){5})$ ]]; then
    m="${BASH_REMATCH[1]}"
  fi
  if [[ "${m}" =~ ^[0-9a-f]{2}(:[0-9a-f]{2}){5}$ ]]; then
    printf '%s\n' "${m}"
  fi
}

# boot_mac: the MAC in BOOTIF= of the kernel command line, or nothing.
boot_mac() {
  local word words=()
  [ -r "${PC_CMDLINE_FILE}" ] || return 0
  read -r -a words < "${PC_CMDLINE_FILE}" || true
  for word in "${words[@]}"; do
    case "${word}" in
      BOOTIF=*) normalize_mac "${word#BOOTIF=}"; return 0 ;;
    esac
  done
}

# nic_macs: "name mac" of each physical NIC (one with a device link), in name order.
nic_macs() {
  local dev mac
  for dev in "${PC_SYSFS}"/class/net/*; do
    [ -e "${dev}/device" ] || continue
    mac="$(normalize_mac "$(cat -- "${dev}/address" 2>/dev/null)")"
    [ -n "${mac}" ] && printf '%s %s\n' "${dev##*/}" "${mac}"
  done
  return 0
}

# node_index MAC: index of MAC in PC_NODE_MACS, or status 1.
node_index() {
  local mac="$1" i
  for i in "${!PC_NODE_MACS[@]}"; do
    if [ "${PC_NODE_MACS[${i}]}" = "${mac}" ]; then
      printf '%s\n' "${i}"
      return 0
    fi
  done
  return 1
}

# identify_node: sets NODE_INDEX, NODE_NAME, NODE_MAC, NODE_IP, NODE_FIRMWARE and NODE_NIC (the kernel
# name of the boot NIC here, if found). Refuses an unknown MAC.
identify_node() {
  local candidates=() line name mac index="" seen=""
  mac="$(boot_mac)"
  if [ -n "${mac}" ]; then
    candidates=("${mac}")
  else
    while read -r name mac; do
      candidates+=("${mac}")
    done < <(nic_macs)
  fi
  for mac in "${candidates[@]}"; do
    seen="${seen:+${seen} }${mac}"
    if index="$(node_index "${mac}")"; then
      NODE_INDEX="${index}"
      NODE_MAC="${mac}"
      break
    fi
  done
  if [ -z "${index}" ]; then
    # Reported with the first MAC seen, so node0 can tell which machine it was.
    NODE_MAC="${candidates[0]:-unknown}"
    die "unknown node: no MAC of this machine (${seen:-none found}) is in the plan"
  fi
  NODE_NAME="${PC_NODE_NAMES[${NODE_INDEX}]}"
  # shellcheck disable=SC2034 # read by the configure library (the rescue script does not use it)
  NODE_IP="${PC_NODE_IPS[${NODE_INDEX}]}"
  NODE_FIRMWARE="${PC_NODE_FIRMWARES[${NODE_INDEX}]}"
  NODE_NIC=""
  while read -r name line; do
    [ "${line}" = "${NODE_MAC}" ] && NODE_NIC="${name}" && break
  done < <(nic_macs)
  # The firmware this machine really booted with wins over the plan for the boot loader.
  if [ -d "${PC_SYSFS}/firmware/efi" ]; then NODE_BOOTED_FIRMWARE=uefi; else NODE_BOOTED_FIRMWARE=bios; fi
  log "this is ${NODE_NAME} (${NODE_MAC}${NODE_NIC:+ on ${NODE_NIC}}), ${NODE_FIRMWARE} in the plan, booted ${NODE_BOOTED_FIRMWARE}"
}
