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

step() { printf '==> %s\n' "$*"; }

# The archive this machine already uses (never a host written in this repo).
sources=/etc/apt/sources.list.d/debian.sources
mirror=$(awk '/^URIs:/ {print $2; exit}' "$sources")
security=$(awk '/^URIs:/ {u=$2} /^Suites:.*-security/ {print u; exit}' "$sources")
[ -n "$mirror" ] || { echo "no URIs: line in $sources" >&2; exit 1; }

# 1. debian:bookworm: one layer, debootstrap minbase, plus the apt settings
#    the official image ships for containers.
if ! docker image inspect "$debian_image" >/dev/null 2>&1; then
	step "debootstrap --variant=minbase bookworm (from the mirror in $sources)"
	root=$work/rootfs
	debootstrap --variant=minbase bookworm "$root" "$mirror" >"$work/debootstrap.log" 2>&1 ||
		{ tail -20 "$work/debootstrap.log" >&2; exit 1; }
	cat >"$root/etc/apt/sources.list.d/debian.sources" <<SOURCES
Types: deb
URIs: $mirror
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
${security:+
Types: deb
URIs: $security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg}
SOURCES
	rm -f "$root/etc/apt/sources.list"
	printf '%s\n' 'DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };' \
		'APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };' \
		'Dir::Cache::pkgcache ""; Dir::Cache::srcpkgcache "";' >"$root/etc/apt/apt.conf.d/docker-clean"
	echo 'Acquire::GzipIndexes "true";' >"$root/etc/apt/apt.conf.d/docker-gzip-indexes"
	echo 'Acquire::Languages "none";' >"$root/etc/apt/apt.conf.d/docker-no-languages"
	echo 'Apt::AutoRemove::SuggestsImportant "false";' >"$root/etc/apt/apt.conf.d/docker-autoremove-suggests"
	printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d" && chmod +x "$root/usr/sbin/policy-rc.d"
	rm -rf "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/var/log/*.log "$root"/var/log/apt/*
	step "docker import -> $debian_image"
	tar -C "$root" --numeric-owner -c . | docker import --change 'CMD ["bash"]' - "$debian_image" >/dev/null
fi

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
