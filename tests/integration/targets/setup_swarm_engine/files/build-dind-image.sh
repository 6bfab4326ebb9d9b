#!/bin/sh
# Build (once, cached by this script's hash) a Debian image that runs its own dockerd, for
# Docker-in-Docker swarm hosts: debootstrap from Debian packages, then `docker import`
# (no registry). Prints the image reference. Label: hubfleet.test=swarm-dind-image.
set -eu
tag=$(sha256sum "$0" | cut -c1-12)
image="hubfleet-test/swarm-dind:$tag"
if ! docker image inspect "$image" >/dev/null 2>&1; then
  command -v debootstrap >/dev/null 2>&1 || { echo "debootstrap is not installed (apt-get install debootstrap)" >&2; exit 1; }
  root=$(mktemp -d /tmp/hubfleet-dind.XXXXXX)
  trap 'rm -rf "$root"' EXIT
  debootstrap --variant=minbase --include=docker.io,iptables,ca-certificates bookworm "$root" >&2
  rm -rf "$root/var/cache/apt/archives"/*.deb "$root/var/lib/apt/lists"/*
  tar -C "$root" -c . | docker import \
    --change 'LABEL hubfleet.test=swarm-dind-image' \
    --change 'CMD ["dockerd", "-H", "unix:///var/run/docker.sock", "-H", "tcp://0.0.0.0:2375"]' \
    - "$image" >/dev/null
fi
echo "$image"
