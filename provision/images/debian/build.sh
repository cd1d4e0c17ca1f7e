#!/usr/bin/env bash
# Makes the debian:bookworm base of the locally rebuilt images (the golang
# base and the HAProxy balancer) without a registry: a root filesystem made by
# debootstrap --variant=minbase from this machine's own apt mirror, with the
# apt settings the official debian image ships for containers, imported as one
# layer. Skipped when the image is already there.
# Needs root, debootstrap and a Docker engine.
# Usage: build.sh [IMAGE]   (default: whoami-rebuild/debian:bookworm)
set -euo pipefail

debian_image=${1:-whoami-rebuild/debian:bookworm}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# shellcheck source=../../lib.sh
. "$(dirname "$0")/../../lib.sh" # step, fail

# The archive this machine already uses (never a host written in this repo).
sources=/etc/apt/sources.list.d/debian.sources
mirror=$(awk '/^URIs:/ {print $2; exit}' "$sources")
security=$(awk '/^URIs:/ {u=$2} /^Suites:.*-security/ {print u; exit}' "$sources")
[ -n "$mirror" ] || fail "no URIs: line in $sources: rebuilding needs Debian's archive"

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
