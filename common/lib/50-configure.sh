# Per-node identity and access, written into the root under PC_TARGET (an installed disk or a diskless
# overlay): host name, machine-id, network, users, ssh, serial console. Works for Debian and Arch images
# alike: where they differ (networkd or ifupdown, ssh.service or sshd.service) the image's own files decide.

# hosts_lines: localhost, this node (by its plan IP when it has one), and every other node with an IP.
hosts_lines() {
  local i
  printf '127.0.0.1\tlocalhost\n'
  [ -n "${NODE_IP}" ] || printf '127.0.1.1\t%s.%s %s\n' "${NODE_NAME}" "${PC_DOMAIN}" "${NODE_NAME}"
  for i in "${!PC_NODE_NAMES[@]}"; do
    [ -n "${PC_NODE_IPS[${i}]}" ] || continue
    printf '%s\t%s.%s %s\n' "${PC_NODE_IPS[${i}]}" "${PC_NODE_NAMES[${i}]}" "${PC_DOMAIN}" "${PC_NODE_NAMES[${i}]}"
  done
  printf '::1\tlocalhost ip6-localhost ip6-loopback\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n'
}

# networkd_unit: DHCP on the boot NIC, matched by MAC so the kernel's name for it does not matter.
networkd_unit() {
  printf '# Written by the portacluster installer: DHCP on the NIC %s booted from.\n' "${NODE_NAME}"
  printf '[Match]\nMACAddress=%s\n\n[Network]\nDHCP=ipv4\n\n[DHCPv4]\nUseHostname=false\n' "${NODE_MAC}"
}

# target_has PATH…: any of these exists in the image (usr-merged or not).
target_has() {
  local p
  for p in "$@"; do
    [ -e "${PC_TARGET}/${p}" ] || [ -L "${PC_TARGET}/${p}" ] && return 0
  done
  return 1
}

# unit_path NAME: where the image ships a systemd unit, as an absolute path inside the image.
unit_path() {
  local d
  for d in /usr/lib/systemd/system /lib/systemd/system /etc/systemd/system; do
    [ -e "${PC_TARGET}${d}/$1" ] && printf '%s/%s\n' "${d}" "$1" && return 0
  done
  return 1
}

# enable_unit NAME TARGET [INSTANCE]: what `systemctl enable` does, without systemctl (the built-in
# environment has none): a wants link. INSTANCE enables NAME@INSTANCE from the template NAME@.
enable_unit() {
  local name="$1" wanted_by="$2" instance="${3:-}" path link
  path="$(unit_path "${name}")" || { warn "the image has no ${name}"; return 1; }
  link="${name}"
  [ -n "${instance}" ] && link="${name%@.*}@${instance}.${name##*.}"
  mkdir -p -- "${PC_TARGET}/etc/systemd/system/${wanted_by}.wants"
  ln -sfn -- "${path}" "${PC_TARGET}/etc/systemd/system/${wanted_by}.wants/${link}"
}

configure_identity() {
  printf '%s\n' "${NODE_NAME}" > "${PC_TARGET}/etc/hostname"
  hosts_lines > "${PC_TARGET}/etc/hosts"
  # Empty, not absent: systemd generates the machine-id on first boot and runs first-boot units.
  rm -f -- "${PC_TARGET}/etc/machine-id"
  : > "${PC_TARGET}/etc/machine-id"
  chmod 0444 -- "${PC_TARGET}/etc/machine-id"
  if [ -d "${PC_TARGET}/var/lib/dbus" ]; then
    ln -sfn /etc/machine-id "${PC_TARGET}/var/lib/dbus/machine-id"
  fi
  rm -f -- "${PC_TARGET}/var/lib/systemd/random-seed"
}

configure_network() {
  if target_has usr/lib/systemd/systemd-networkd lib/systemd/systemd-networkd && ! target_has sbin/ifup usr/sbin/ifup; then
    mkdir -p -- "${PC_TARGET}/etc/systemd/network"
    networkd_unit > "${PC_TARGET}/etc/systemd/network/20-portacluster-boot.network"
    enable_unit systemd-networkd.service multi-user.target
    enable_unit systemd-networkd.socket sockets.target || true
    enable_unit systemd-networkd-wait-online.service network-online.target || true
    log "network: systemd-networkd, DHCP on ${NODE_MAC}"
  elif target_has sbin/ifup usr/sbin/ifup; then
    # ifupdown names interfaces: give the boot NIC a fixed one by MAC (a .link file, read by udev).
    mkdir -p -- "${PC_TARGET}/etc/systemd/network" "${PC_TARGET}/etc/network/interfaces.d"
    printf '[Match]\nMACAddress=%s\n\n[Link]\nName=boot0\n' "${NODE_MAC}" > "${PC_TARGET}/etc/systemd/network/10-portacluster-boot.link"
    printf '# Written by the portacluster installer.\nauto boot0\niface boot0 inet dhcp\n' > "${PC_TARGET}/etc/network/interfaces.d/portacluster"
    log "network: ifupdown, DHCP on boot0 (${NODE_MAC})"
  else
    warn "the image has neither systemd-networkd nor ifupdown: no network configured"
  fi
  # Without resolved, nothing writes resolv.conf: start from the installer environment's (from DHCP).
  if ! target_has etc/resolv.conf && ! unit_path systemd-resolved.service >/dev/null && [ -s /etc/resolv.conf ]; then
    cp -- /etc/resolv.conf "${PC_TARGET}/etc/resolv.conf"
  fi
}

# The image's sudo validates drop-ins itself when visudo is present; a broken one would lock admins out.
write_sudoers() {
  local name="$1" file="${PC_TARGET}/etc/sudoers.d/90-portacluster-$1"
  mkdir -p -- "${PC_TARGET}/etc/sudoers.d"
  printf '%s ALL=(ALL:ALL) NOPASSWD: ALL\n' "${name}" > "${file}"
  chmod 0440 -- "${file}"
  if [ -x "${PC_TARGET}/usr/sbin/visudo" ]; then
    chroot "${PC_TARGET}" /usr/sbin/visudo -c -q -f "/etc/sudoers.d/90-portacluster-${name}"
  else
    warn "the image has no visudo: ${file##*/} not checked (is sudo installed?)"
  fi
}

configure_users() {
  local i name entry home uid gid
  for i in "${!PC_USER_NAMES[@]}"; do
    name="${PC_USER_NAMES[${i}]}"
    # '*': no password login, yet not "locked" ('!'), which sshd refuses even for keys without PAM.
    # One getent gives uid, gid and home: each chroot'ed command is a fork and exec (bench/loop.ts).
    if ! entry="$(chroot "${PC_TARGET}" getent passwd "${name}")"; then
      run chroot "${PC_TARGET}" useradd --create-home --user-group --password '*' --shell "${PC_USER_SHELLS[${i}]}" -- "${name}"
      entry="$(chroot "${PC_TARGET}" getent passwd "${name}")"
    else
      chroot "${PC_TARGET}" usermod -p '*' -- "${name}"
    fi
    IFS=: read -r _ _ uid gid _ home _ <<< "${entry}"
    install -d -m 0700 -o "${uid}" -g "${gid}" -- "${PC_TARGET}${home}/.ssh"
    printf '%s\n' "${PC_USER_KEYS[${i}]}" > "${PC_TARGET}${home}/.ssh/authorized_keys"
    chown "${uid}:${gid}" -- "${PC_TARGET}${home}/.ssh/authorized_keys"
    chmod 0600 -- "${PC_TARGET}${home}/.ssh/authorized_keys"
    [ "${PC_USER_SUDO[${i}]}" = 1 ] && write_sudoers "${name}"
    log "user ${name}: $(grep -c . "${PC_TARGET}${home}/.ssh/authorized_keys") ssh key(s)$([ "${PC_USER_SUDO[${i}]}" = 1 ] && echo ', sudo')"
  done
}

# Host keys are per node: none in the image, made on first boot before sshd starts.
configure_ssh() {
  local unit
  rm -f -- "${PC_TARGET}"/etc/ssh/ssh_host_*
  if unit_path ssh.service >/dev/null; then unit=ssh.service; elif unit_path sshd.service >/dev/null; then unit=sshd.service; else
    warn "the image has no ssh.service or sshd.service"
    return 0
  fi
  mkdir -p -- "${PC_TARGET}/etc/systemd/system"
  cat > "${PC_TARGET}/etc/systemd/system/portacluster-ssh-keygen.service" <<UNIT
[Unit]
Description=Generate this node's ssh host keys (portacluster)
Before=${unit}
ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key

[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -A

[Install]
WantedBy=multi-user.target
UNIT
  enable_unit portacluster-ssh-keygen.service multi-user.target
  enable_unit "${unit}" multi-user.target
}

configure_serial_console() {
  local tty="${PC_SERIAL_CONSOLE%%,*}"
  [ -n "${tty}" ] || return 0
  if enable_unit serial-getty@.service getty.target "${tty}"; then log "serial console: getty on ${tty}"; fi
}
