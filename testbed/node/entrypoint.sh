#!/bin/sh
# Start this test host's dockerd. With HUBFLEET_NODE_API_ALLOW=<address> the engine's API is
# also served on TCP port 2375 (plain HTTP, through socat to the unix socket), but the
# firewall accepts it only from that one address: the test machine's end of the test
# bridge. Containers running inside this host can never reach it.
set -eu

if [ -n "${HUBFLEET_NODE_API_ALLOW:-}" ]; then
  iptables -I INPUT -p tcp --dport 2375 ! -s "$HUBFLEET_NODE_API_ALLOW" -j DROP
  socat TCP-LISTEN:2375,fork,reuseaddr UNIX-CONNECT:/var/run/docker.sock &
fi

# HUBFLEET_NODE_DOCKERD=role: the docker_engine role starts dockerd (under its supervisor,
# testbed/host.py applies the role); once installed, the supervisor starts dockerd at every
# boot of this host, as an init system would.
if [ "${HUBFLEET_NODE_DOCKERD:-}" = role ]; then
  if [ -x /usr/local/sbin/hubfleet-dockerd-supervise ]; then
    setsid /usr/local/sbin/hubfleet-dockerd-supervise /var/log/dockerd.log </dev/null >/dev/null 2>&1 &
  fi
  exec sleep infinity
fi

exec dockerd --host unix:///var/run/docker.sock ${HUBFLEET_DOCKERD_ARGS:-}
