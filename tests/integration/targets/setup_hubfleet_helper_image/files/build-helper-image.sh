#!/bin/sh
# Build (once, cached by the binary's hash) a tiny image holding only the host's
# `sleep` and the libraries it links: no registry needed, and containers from it can
# run (to hold a volume or a network) or just exist (for the archive API).
# Prints the image reference. Label: hubfleet.test=collection-helper-image.
set -eu
binary=$(command -v sleep)
tag=$(cat "$binary" "$0" | sha256sum | cut -c1-12)
image="hubfleet-test/volume-helper:$tag"
if ! docker image inspect "$image" >/dev/null 2>&1; then
  root=$(mktemp -d)
  trap 'rm -rf "$root"' EXIT
  mkdir -p "$root/bin"
  cp "$binary" "$root/bin/sleep"
  for lib in $(ldd "$binary" | grep -o '/[^ ]*'); do
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
  done
  tar -C "$root" -c . | docker import \
    --change 'LABEL hubfleet.test=collection-helper-image' \
    --change 'CMD ["/bin/sleep", "infinity"]' - "$image" >/dev/null
fi
echo "$image"
