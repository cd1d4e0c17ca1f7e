#!/usr/bin/env bash
# Rebuilds golang:<GO_VERSION>-bookworm locally, without a registry, from the
# same public recipe as the official image (see Dockerfile beside this file).
# Needs root, debootstrap, a Docker engine with BuildKit, and Debian's archive.
# Usage: build.sh IMAGE   (e.g. golang:1.26-bookworm)
set -euo pipefail

image=${1:?usage: build.sh IMAGE}
here=$(cd "$(dirname "$0")" && pwd)
go_minor=${image#golang:}; go_minor=${go_minor%%-*} # golang:1.26-bookworm -> 1.26
debian_image=whoami-rebuild/debian:bookworm
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# shellcheck source=../../lib.sh
. "$here/../../lib.sh" # step, fail

# 1. debian:bookworm, made with debootstrap (skipped when already there).
"$here/../debian/build.sh" "$debian_image"

# 2. The official Go distribution: this machine's GOROOT when it is the same
#    release line (it is the official tarball, unpacked), else the checksum-
#    verified toolchain module from the Go module proxy.
goversion=$(go env GOVERSION 2>/dev/null || true) # e.g. go1.26.8
case "$goversion" in
go"$go_minor".*)
	step "Go distribution: $(go env GOROOT) ($goversion)"
	cp -a "$(go env GOROOT)" "$work/go"
	;;
*)
	goversion=go${GOLANG_VERSION:?set GOLANG_VERSION to a $go_minor.x release, e.g. ${go_minor}.0}
	module=golang.org/toolchain@v0.0.1-$goversion.linux-$(go env GOARCH)
	step "Go distribution: $module from the Go module proxy"
	dir=$(go mod download -json "$module" | awk -F'"' '/"Dir":/ {print $4}')
	cp -a "$dir" "$work/go"
	chmod -R u+w "$work/go"
	chmod +x "$work"/go/bin/* "$work"/go/pkg/tool/*/*
	;;
esac

# 3. buildpack-deps:bookworm-curl, buildpack-deps:bookworm-scm, golang.
step "docker build $image (apt layers from Debian's archive; takes a few minutes)"
cp "$here/Dockerfile" "$work/Dockerfile"
docker build -q --build-arg DEBIAN_IMAGE="$debian_image" \
	--build-arg GOLANG_VERSION="${goversion#go}" -t "$image" "$work" >/dev/null
step "$image rebuilt locally: $(docker image inspect -f '{{.Size}}' "$image") bytes"
