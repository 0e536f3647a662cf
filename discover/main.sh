# Discover, in order: which machine this is, its inventory to node0, then power off (or wait). No disk is
# opened for writing at any point; a failure reports `failed` like every other profile.
mkdir -p /run/portacluster
PC_LOG=/run/portacluster/discover.log
log_open
trap_errors
PC_PHASE=discover
discover_identify
discover_report /run/portacluster/inventory.json
log_close
discover_then "${PC_DISCOVER_THEN}"
