# Inventory: what this machine is, read from /sys, /proc, /dev/disk and (when one answers) the local BMC,
# without writing to any disk: nothing here opens a block device for writing, mounts or probes with a
# tool that could (lsblk and udev's by-id/by-path links only read).
#
# inventory_json prints one JSON object; the watcher validates it against a schema before storing it, so
# this side only has to be correct JSON: every string goes through json_str.

PC_SYSFS="${PC_SYSFS:-/sys}"
PC_PROCFS="${PC_PROCFS:-/proc}"
PC_DEVFS="${PC_DEVFS:-/dev}"

# json_str TEXT: TEXT as a JSON string literal (quotes and backslashes escaped, control characters dropped).
json_str() {
  local s="$1"
  s="${s//\\/\\\\}"
  s="${s//\"/\\\"}"
  # A bash pattern, not tr: the inventory calls this ~40 times, and a process each costs seconds in a VM.
  s="${s//[[:cntrl:]]/}"
  printf '"%s"' "${s}"
}

# json_num TEXT: TEXT if it is a non-negative integer, else null.
json_num() {
  if [[ "$1" =~ ^[0-9]+$ ]]; then printf '%s' "$1"; else printf 'null'; fi
}

# sysfs_word FILE: the first line of a sysfs file with trailing blanks removed, or nothing.
sysfs_word() {
  [ -r "$1" ] || return 0
  local line=""
  IFS= read -r line < "$1" 2>/dev/null || true
  printf '%s' "${line%"${line##*[![:space:]]}"}"
}

# links_to DIR DEV: the names in DIR (/dev/disk/by-id) that resolve to DEV, as a JSON array.
links_to() {
  local dir="$1" dev="$2" link sep="" out="["
  if [ -d "${dir}" ]; then
    for link in "${dir}"/*; do
      [ -L "${link}" ] || continue
      if [ "$(readlink -f -- "${link}")" = "${dev}" ]; then
        out+="${sep}$(json_str "${link##*/}")"
        sep=","
      fi
    done
  fi
  printf '%s]' "${out}"
}

inventory_disks() {
  local block name dev sep="" size model serial pttype parts
  printf '['
  for block in "${PC_SYSFS}"/block/*; do
    name="${block##*/}"
    case "${name}" in loop* | ram* | zram* | sr* | fd* | md* | dm-* | nbd*) continue ;; esac
    [ -e "${block}/device" ] || continue
    dev="${PC_DEVFS}/${name}"
    size="$(sysfs_word "${block}/size")"
    model="$(sysfs_word "${block}/device/model")"
    serial="$(sysfs_word "${block}/device/serial")"
    # virtio-blk keeps its serial in the disk's own directory; SCSI/ATA in device/ (or only in udev's links).
    [ -n "${serial}" ] || serial="$(sysfs_word "${block}/serial")"
    pttype="$(lsblk -dno PTTYPE -- "${dev}" 2>/dev/null || true)"
    parts="$(find "${block}" -mindepth 1 -maxdepth 1 -name "${name}*" -type d 2>/dev/null | wc -l)"
    printf '%s{"name":%s,"path":%s,"sizeBytes":%s,"model":%s,"serial":%s,"rotational":%s,"removable":%s,"byId":%s,"byPath":%s,"partitionTable":%s,"partitions":%s}' \
      "${sep}" "$(json_str "${name}")" "$(json_str "${dev}")" "$([[ "${size}" =~ ^[0-9]+$ ]] && printf '%s' "$((size * 512))" || printf 'null')" \
      "$(json_str "${model}")" "$(json_str "${serial}")" \
      "$([ "$(sysfs_word "${block}/queue/rotational")" = 1 ] && printf true || printf false)" \
      "$([ "$(sysfs_word "${block}/removable")" = 1 ] && printf true || printf false)" \
      "$(links_to "${PC_DEVFS}/disk/by-id" "${dev}")" "$(links_to "${PC_DEVFS}/disk/by-path" "${dev}")" \
      "$([ -n "${pttype}" ] && json_str "${pttype}" || printf 'null')" "$(json_num "${parts}")"
    sep=","
  done
  printf ']'
}

# inventory_nics BOOT_MAC: every NIC with a device (not lo, bridges or tunnels).
inventory_nics() {
  local boot="$1" dev name mac driver speed sep=""
  printf '['
  for dev in "${PC_SYSFS}"/class/net/*; do
    [ -e "${dev}/device" ] || continue
    name="${dev##*/}"
    mac="$(sysfs_word "${dev}/address")"
    driver=""
    [ -L "${dev}/device/driver" ] && driver="$(basename -- "$(readlink -- "${dev}/device/driver")")"
    # Reading speed of a link that is down fails (EINVAL): unknown, not an error.
    speed="$(sysfs_word "${dev}/speed" 2>/dev/null || true)"
    printf '%s{"name":%s,"mac":%s,"driver":%s,"speedMbps":%s,"operstate":%s,"boot":%s}' "${sep}" "$(json_str "${name}")" "$(json_str "${mac}")" \
      "$(json_str "${driver}")" "$(json_num "${speed}")" "$(json_str "$(sysfs_word "${dev}/operstate")")" "$([ "${mac}" = "${boot}" ] && printf true || printf false)"
    sep=","
  done
  printf ']'
}

# inventory_bmc: {"ip":…,"mac":…} of the BMC on LAN channel 1 when one answers within 10 s, else null.
inventory_bmc() {
  local text="" ip="" mac=""
  if command -v ipmitool >/dev/null 2>&1; then
    modprobe -q ipmi_si 2>/dev/null || true
    modprobe -q ipmi_devintf 2>/dev/null || true
    text="$(timeout 10 ipmitool lan print 1 2>/dev/null || true)"
  fi
  ip="$(printf '%s\n' "${text}" | sed -n 's/^IP Address[[:space:]]*:[[:space:]]*\([0-9.]*\).*/\1/p' | head -n 1)"
  mac="$(printf '%s\n' "${text}" | sed -n 's/^MAC Address[[:space:]]*:[[:space:]]*\([0-9a-fA-F:]*\).*/\1/p' | head -n 1)"
  if [ -n "${ip}${mac}" ]; then printf '{"ip":%s,"mac":%s}' "$(json_str "${ip}")" "$(json_str "${mac}")"; else printf 'null'; fi
}

# inventory_json BOOT_MAC: the whole inventory.
inventory_json() {
  local boot="$1" cpu_model cpus mem_kib firmware=bios
  cpu_model="$(sed -n 's/^model name[[:space:]]*:[[:space:]]*//p' "${PC_PROCFS}/cpuinfo" 2>/dev/null | head -n 1)"
  cpus="$(grep -c '^processor' "${PC_PROCFS}/cpuinfo" 2>/dev/null || true)"
  mem_kib="$(sed -n 's/^MemTotal:[[:space:]]*\([0-9]*\) kB$/\1/p' "${PC_PROCFS}/meminfo" 2>/dev/null)"
  [ -d "${PC_SYSFS}/firmware/efi" ] && firmware=uefi
  printf '{"version":1,"bootMac":%s,"firmware":%s,' "$(json_str "${boot}")" "$(json_str "${firmware}")"
  printf '"dmi":{"vendor":%s,"product":%s,"serial":%s,"boardVendor":%s,"boardName":%s},' \
    "$(json_str "$(sysfs_word "${PC_SYSFS}/class/dmi/id/sys_vendor")")" "$(json_str "$(sysfs_word "${PC_SYSFS}/class/dmi/id/product_name")")" \
    "$(json_str "$(sysfs_word "${PC_SYSFS}/class/dmi/id/product_serial")")" "$(json_str "$(sysfs_word "${PC_SYSFS}/class/dmi/id/board_vendor")")" \
    "$(json_str "$(sysfs_word "${PC_SYSFS}/class/dmi/id/board_name")")"
  printf '"cpu":{"model":%s,"count":%s},"memoryBytes":%s,' "$(json_str "${cpu_model}")" "$(json_num "${cpus}")" "$([[ "${mem_kib}" =~ ^[0-9]+$ ]] && printf '%s' "$((mem_kib * 1024))" || printf 'null')"
  printf '"disks":%s,"nics":%s,"bmc":%s}\n' "$(inventory_disks)" "$(inventory_nics "${boot}")" "$(inventory_bmc)"
}

# report_inventory: the inventory to node0 (kept per node, so a swapped disk or NIC shows). Best effort.
report_inventory() {
  inventory_json "${NODE_MAC}" > /run/portacluster/inventory.json
  report_post "inventory?$(report_query)" /run/portacluster/inventory.json
}

# report_inventory_start: report_inventory in the background (it only reads /sys, /proc and /dev/disk, and
# loading ipmi_si to ask for a BMC that is not there takes seconds: 5.4 s of a BIOS lab install when it
# ran in line). Never fails the install; report_inventory_wait joins it before `done`.
_PC_INVENTORY_PID=""
report_inventory_start() {
  (
    trap - ERR EXIT
    set +e
    report_inventory
  ) &
  _PC_INVENTORY_PID="$!"
}

report_inventory_wait() {
  [ -n "${_PC_INVENTORY_PID}" ] || return 0
  wait "${_PC_INVENTORY_PID}" || warn "the inventory report ended with status $?"
  _PC_INVENTORY_PID=""
}
# A failing install still lets the report finish (each of its tools has a timeout) before the log closes.
on_cleanup report_inventory_wait
