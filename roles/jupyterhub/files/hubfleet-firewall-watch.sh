#!/bin/sh
# After each start of the engine: start hubfleet-firewall watch on this host unless it
# already runs (it outlives a dockerd restart; a host reboot ends it, and the engine's start
# brings it back). With "restart" (the role, after installing a new program) a running
# watcher (the PID it recorded, checked to be hubfleet-firewall) is ended first; with
# "stop-if-idle" (the role, once a hub's isolation is off or removed) it is ended when no
# hub's settings are left in /etc/hubfleet/firewall, and none is started.
# Returns at once: the supervisor runs its hooks one after the other.
pidfile=/run/hubfleet-firewall-watch.pid
running() {
  [ -f "$pidfile" ] && grep -qs hubfleet-firewall "/proc/$(cat "$pidfile")/cmdline"
}
idle() {
  ! ls /etc/hubfleet/firewall/*.json >/dev/null 2>&1
}
case "${1:-}" in
  restart) end=yes ;;
  stop-if-idle) if idle; then end=yes; else exit 0; fi ;;
  *) end=no ;;
esac
if [ "$end" = yes ] && running; then
  pid=$(cat "$pidfile")
  kill "$pid"
  for _ in 1 2 3 4 5 6 7 8 9 10; do
    [ -d "/proc/$pid" ] || break
    sleep 0.5
  done
  echo "ended hubfleet-firewall watch (pid $pid)"
fi
if [ "${1:-}" = stop-if-idle ] || running; then
  exit 0
fi
setsid /usr/local/sbin/hubfleet-firewall watch </dev/null >>/var/log/hubfleet-firewall.log 2>&1 &
echo $! >"$pidfile"
echo "started hubfleet-firewall watch (pid $!)"
