#!/bin/sh
# Keep dockerd running on a host without systemd: start it, and start it again when it
# exits (crash or a deliberate restart after a daemon.json change), pausing briefly so a
# daemon that cannot start does not spin.
log=${1:-/var/log/dockerd.log}
while :; do
  echo "$(date -u +%FT%TZ) hubfleet-dockerd-supervise: starting dockerd" >>"$log"
  dockerd >>"$log" 2>&1
  echo "$(date -u +%FT%TZ) hubfleet-dockerd-supervise: dockerd exited with $?" >>"$log"
  sleep 2
done
