#!/usr/bin/env bash
# Make this machine ready for Hubfleet's real-component tests, idempotently:
# the Docker engine (installed from Debian packages when missing, started when
# not running), debootstrap for registry-free base images, configurable-http-proxy
# and, with --browser, Chromium. Safe to run again; does nothing that is done.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
want_browser=0
for arg in "$@"; do
  case "$arg" in
    --browser) want_browser=1 ;;
    *) echo "bootstrap.sh: unknown argument $arg" >&2; exit 2 ;;
  esac
done

log() { printf '[bootstrap] %s\n' "$*" >&2; }

apt_updated=0
apt_install() {
  if [ "$apt_updated" = 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

missing=()
command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
command -v iptables >/dev/null 2>&1 || missing+=(iptables)
if [ "$want_browser" = 1 ]; then
  command -v chromium >/dev/null 2>&1 || missing+=(chromium chromium-driver fonts-dejavu-core)
  # certutil: the ACME test puts Pebble's root into Chromium's certificate store.
  command -v certutil >/dev/null 2>&1 || missing+=(libnss3-tools)
fi
if [ "${#missing[@]}" -gt 0 ]; then
  log "installing ${missing[*]}"
  apt_install "${missing[@]}"
fi

# The Docker engine: started by hand because these machines have no systemd.
if ! docker info >/dev/null 2>&1; then
  if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
    systemctl start docker
  else
    log "starting dockerd (log: /var/log/dockerd.log)"
    setsid dockerd >/var/log/dockerd.log 2>&1 < /dev/null &
    echo $! > /var/run/hubfleet-dockerd.pid
  fi
  for _ in $(seq 1 60); do
    docker info >/dev/null 2>&1 && break
    sleep 0.5
  done
  docker info >/dev/null 2>&1 || { log "dockerd did not come up; see /var/log/dockerd.log"; exit 1; }
fi

# configurable-http-proxy from the npm registry, kept inside the checkout.
chp_dir="$root/.cache/chp"
if [ ! -x "$chp_dir/node_modules/.bin/configurable-http-proxy" ]; then
  log "installing configurable-http-proxy@5 into $chp_dir"
  mkdir -p "$chp_dir"
  npm install --silent --no-audit --no-fund --prefix "$chp_dir" configurable-http-proxy@5 >/dev/null
fi
log "ready: $(docker version --format 'engine {{.Server.Version}} (API {{.Server.APIVersion}})')"
