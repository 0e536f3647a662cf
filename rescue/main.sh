# Rescue, in order: a reachable node, then `rescue-ready`. The environment stays up afterwards.
PC_LOG=/var/log/portacluster-rescue.log
log_open
trap_errors
PC_PHASE=rescue
rescue_identify
fetch_run
create_rescue_user
open_firewall
start_sshd
report rescue-ready
log "rescue ready: ssh ${PC_RESCUE_USER}@$(ip -4 -o addr show scope global 2>/dev/null | awk '{print $4}' | head -n 1)"
log_close
