# Rescue: make the node reachable over ssh as PC_RESCUE_USER, in SystemRescue (systemd, sshd.service,
# a firewall that drops ssh) or the built-in environment (no systemd; sshd started by hand).

# rescue_identify: NODE_NAME/NODE_MAC for the reports. Any machine may boot rescue: unknown is fine.
rescue_identify() {
  local index name mac
  NODE_MAC="$(boot_mac)"
  if [ -z "${NODE_MAC}" ]; then
    while read -r name mac; do
      if node_index "${mac}" >/dev/null; then NODE_MAC="${mac}"; break; fi
      [ -n "${NODE_MAC}" ] || NODE_MAC="${mac}"
    done < <(nic_macs)
  fi
  if index="$(node_index "${NODE_MAC}")"; then NODE_NAME="${PC_NODE_NAMES[${index}]}"; else NODE_NAME=""; fi
  log "rescue on ${NODE_NAME:-an unknown node} (${NODE_MAC:-no MAC})"
}

# create_rescue_user: the user, its keys, passwordless sudo where sudo exists. Without sudo (the built-in
# environment has none) the keys also go to root, or the admin could not repair anything.
create_rescue_user() {
  local name="${PC_RESCUE_USER}" home
  getent passwd "${name}" >/dev/null || run useradd --create-home --user-group --shell /bin/bash -- "${name}"
  usermod -p '*' -- "${name}"
  home="$(getent passwd "${name}" | cut -d: -f6)"
  install -d -m 0700 -o "${name}" -g "$(id -g -- "${name}")" -- "${home}/.ssh"
  printf '%s\n' "${PC_RESCUE_KEYS}" > "${home}/.ssh/authorized_keys"
  chown "${name}:$(id -g -- "${name}")" -- "${home}/.ssh/authorized_keys"
  chmod 0600 -- "${home}/.ssh/authorized_keys"
  if command -v sudo >/dev/null; then
    mkdir -p /etc/sudoers.d
    printf '%s ALL=(ALL:ALL) NOPASSWD: ALL\n' "${name}" > "/etc/sudoers.d/90-portacluster-${name}"
    chmod 0440 -- "/etc/sudoers.d/90-portacluster-${name}"
    if command -v visudo >/dev/null; then visudo -c -q -f "/etc/sudoers.d/90-portacluster-${name}"; fi
  else
    warn "no sudo here: the rescue keys are authorized for root too"
    install -d -m 0700 /root/.ssh
    printf '%s\n' "${PC_RESCUE_KEYS}" >> /root/.ssh/authorized_keys
    chmod 0600 /root/.ssh/authorized_keys
  fi
  log "rescue user ${name}: $(grep -c . "${home}/.ssh/authorized_keys") ssh key(s)"
}

open_firewall() {
  # SystemRescue boots rescue with nofirewall; this covers a firewall started anyway.
  if command -v iptables >/dev/null; then
    iptables -C INPUT -p tcp --dport 22 -j ACCEPT 2>/dev/null || iptables -I INPUT -p tcp --dport 22 -j ACCEPT || warn "iptables refused the ssh rule"
  fi
}

start_sshd() {
  if systemd_is_pid1 && command -v systemctl >/dev/null; then
    run systemctl start sshd.service
    return 0
  fi
  install -d -m 0755 /run/sshd
  ssh-keygen -A >/dev/null
  if [ -s /run/sshd.pid ] && kill -0 "$(cat /run/sshd.pid)" 2>/dev/null; then
    log "sshd already running"
    return 0
  fi
  run /usr/sbin/sshd -o PidFile=/run/sshd.pid -o PermitRootLogin=prohibit-password
}
