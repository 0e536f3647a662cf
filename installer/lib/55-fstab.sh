# The installed node's fstab: its own partitions by UUID (a diskless root writes its own, 30-root.sh).

# fstab_lines: one line per partition with a filesystem, by UUID (PART_UUIDS from make_filesystems).
fstab_lines() {
  local i fs mnt opts pass
  printf '# /etc/fstab: written by the portacluster installer for %s\n' "${NODE_NAME}"
  for i in "${!PC_PART_FS[@]}"; do
    fs="${PC_PART_FS[${i}]}"
    mnt="${PC_PART_MOUNTS[${i}]}"
    [ -n "${fs}" ] || continue
    case "${fs}" in
      swap) printf 'UUID=%s none swap sw 0 0\n' "${PART_UUIDS[${i}]}"; continue ;;
      vfat) opts='umask=0077' ;;
      *) opts='defaults' ;;
    esac
    [ -n "${mnt}" ] || continue
    if [ "${mnt}" = / ]; then pass=1; elif [ "${fs}" = vfat ]; then pass=0; else pass=2; fi
    printf 'UUID=%s %s %s %s 0 %s\n' "${PART_UUIDS[${i}]}" "${mnt}" "${fs}" "${opts}" "${pass}"
  done
}

configure_fstab() {
  fstab_lines > "${PC_TARGET}/etc/fstab"
  log "fstab:"
  sed 's/^/    /' -- "${PC_TARGET}/etc/fstab"
}
