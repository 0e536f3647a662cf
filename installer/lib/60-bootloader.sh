# PC_BOOT_FROM=disk: GRUB from the installer environment, written against the target (BIOS: i386-pc in
# the MBR gap or bios_grub partition; UEFI: the removable path EFI/BOOT/BOOTX64.EFI, so no NVRAM entry
# is needed). PC_BOOT_FROM=network: nothing; node0 serves kernel + initramfs with root=LABEL=.

# newest_kernel: "vmlinuz initrd" file names under the image's /boot (Debian: vmlinuz-VER +
# initrd.img-VER; Arch: vmlinuz-linux + initramfs-linux.img).
newest_kernel() {
  local kernel base initrd kernels=()
  kernels=("${PC_TARGET}"/boot/vmlinuz-*)
  [ -e "${kernels[0]}" ] || return 1
  kernel="$(printf '%s\n' "${kernels[@]##*/}" | sort -V | tail -n 1)"
  base="${kernel#vmlinuz-}"
  for initrd in "initrd.img-${base}" "initramfs-${base}.img"; do
    [ -e "${PC_TARGET}/boot/${initrd}" ] && break
  done
  printf '%s %s\n' "${kernel}" "${initrd}"
}

grub_cfg() {
  local kernel="$1" initrd="$2" console="" serial_unit="" speed=""
  if [ -n "${PC_SERIAL_CONSOLE}" ]; then
    console="console=tty0 console=${PC_SERIAL_CONSOLE}"
    serial_unit="${PC_SERIAL_CONSOLE%%,*}"
    serial_unit="${serial_unit#ttyS}"
    speed="${PC_SERIAL_CONSOLE#*,}"
    [ "${speed}" = "${PC_SERIAL_CONSOLE}" ] && speed=115200
    printf 'serial --unit=%s --speed=%s\nterminal_input console serial\nterminal_output console serial\n' "${serial_unit}" "${speed}"
  fi
  printf 'set timeout=1\nsearch --no-floppy --label --set=root %s\n' "${PC_ROOT_LABEL}"
  printf 'menuentry "%s" {\n  linux /boot/%s root=LABEL=%s rw %s %s\n  initrd /boot/%s\n}\n' \
    "${PC_OS_NAME}" "${kernel}" "${PC_ROOT_LABEL}" "${console}" "${PC_KERNEL_ARGS}" "${initrd}"
}

install_bootloader() {
  local kernel initrd efi_dir=""
  if [ "${PC_BOOT_FROM}" != disk ]; then
    log "boot loader: none (${NODE_NAME} boots its kernel from the network, ${PC_HTTP_BASE})"
    return 0
  fi
  read -r kernel initrd < <(newest_kernel) || die "the image has no /boot/vmlinuz-*: cannot boot from disk"
  mkdir -p -- "${PC_TARGET}/boot/grub"
  grub_cfg "${kernel}" "${initrd}" > "${PC_TARGET}/boot/grub/grub.cfg"
  case "${NODE_BOOTED_FIRMWARE}" in
    uefi)
      efi_dir="${PC_TARGET}/boot/efi"
      mountpoint -q -- "${efi_dir}" || die "UEFI boot needs the ESP mounted at /boot/efi"
      run grub-install --target=x86_64-efi --efi-directory="${efi_dir}" --boot-directory="${PC_TARGET}/boot" \
        --removable --no-nvram
      ;;
    *)
      run grub-install --target=i386-pc --boot-directory="${PC_TARGET}/boot" -- "${TARGET_DISK}"
      ;;
  esac
}
