#!/bin/sh
# After each start of the engine: start hubfleet-firewall watch on this fleet node unless it
# already runs (it outlives a dockerd restart; a host reboot ends it, and the engine's start
# brings it back). Returns at once: the supervisor runs its hooks one after the other.
pidfile=/run/hubfleet-firewall-watch.pid
if [ -f "$pidfile" ] && grep -qs hubfleet-firewall "/proc/$(cat "$pidfile")/cmdline"; then
  exit 0
fi
setsid /usr/local/sbin/hubfleet-firewall watch </dev/null >>/var/log/hubfleet-firewall.log 2>&1 &
echo $! >"$pidfile"
echo "started hubfleet-firewall watch (pid $!)"
