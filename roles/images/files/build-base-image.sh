#!/usr/bin/env bash
# Build a Debian base image from Debian packages alone (no image registry needed):
# debootstrap a minbase rootfs with Python and CA certificates, then `docker import` it.
#
#   build-base-image.sh [REPOSITORY] [SUITE]
#
# The tag is a hash of everything that decides the rootfs (suite, package list, this
# script), so a rerun with the same inputs finds the image and skips the build.
# Prints the image reference (REPOSITORY:TAG) on stdout; progress goes to stderr.
set -euo pipefail

repository=${1:-hubfleet/debian-base}
suite=${2:-bookworm}
mirror=${HUBFLEET_DEBIAN_MIRROR:-http://deb.debian.org/debian}
packages=python3,python3-venv,python3-pip,ca-certificates,tini

tag=$( { echo "$suite $packages $mirror"; cat "$0"; } | sha256sum | cut -c1-16)
image="$repository:$tag"

if docker image inspect "$image" >/dev/null 2>&1; then
  echo "$image"
  exit 0
fi

command -v debootstrap >/dev/null 2>&1 || {
  echo "build-base-image.sh: debootstrap is not installed (apt-get install debootstrap)" >&2
  exit 1
}

rootfs=$(mktemp -d /tmp/hubfleet-rootfs.XXXXXX)
trap 'rm -rf "$rootfs"' EXIT
echo "building $image from Debian $suite packages (debootstrap, about a minute)" >&2
debootstrap --variant=minbase --include="$packages" "$suite" "$rootfs" "$mirror" >&2
# Keep the image lean: package caches and lists are rebuilt by `apt-get update` when needed.
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
tar -C "$rootfs" -c . | docker import \
  --change 'ENV LANG=C.UTF-8 PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'CMD ["/bin/bash"]' \
  --change "LABEL org.hubfleet.image=debian-base org.hubfleet.suite=$suite" \
  - "$image" >&2
echo "$image"
