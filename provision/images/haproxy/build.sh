#!/usr/bin/env bash
# Rebuilds the balancer image of compose.yaml locally, without a registry, from
# Debian bookworm's haproxy package (see Dockerfile beside this file).
# Needs root, debootstrap, a Docker engine and Debian's archive.
# Usage: build.sh IMAGE   (e.g. haproxy:2.6-bookworm)
set -euo pipefail

image=${1:?usage: build.sh IMAGE}
here=$(cd "$(dirname "$0")" && pwd)
debian_image=whoami-rebuild/debian:bookworm

"$here/../debian/build.sh" "$debian_image"
printf '==> docker build %s (Debian bookworm haproxy package)\n' "$image"
docker build -q --build-arg DEBIAN_IMAGE="$debian_image" -t "$image" "$here" >/dev/null
printf '==> %s rebuilt locally: %s, %s bytes\n' "$image" \
	"$(docker run --rm "$image" -v | head -1)" "$(docker image inspect -f '{{.Size}}' "$image")"
