#!/usr/bin/env bash
# Makes this machine ready for the image targets, the container tests and the
# benchmarks: a Docker engine that answers, BuildKit, wrk, and the golang base
# image (pulled, or rebuilt locally when no registry answers).
#
# Idempotent: every step checks first and is skipped when already done, so
# `make` runs it before each image target at almost no cost. It installs
# packages only as root on a machine with apt-get (Debian, Ubuntu), and only
# when something is missing; set PROVISION=no to forbid that. Elsewhere it
# stops with one line that says what to do.
#
# Usage: scripts/provision.sh [GOLANG_IMAGE]   (default: golang:<go.mod version>-bookworm)
set -euo pipefail
cd "$(dirname "$0")/.."

golang_image=${1:-golang:$(sed -n 's/^go //p' go.mod)-bookworm}
buildx_version=v0.38.2 # the buildx CLI plugin, built from the Go module proxy when missing

step() { printf '==> %s\n' "$*"; }
fail() { printf 'whoami: %s\n' "$*" >&2; exit 1; }
may_install() { [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null && [ "${PROVISION:-auto}" != no ]; }
apt_install() {
	may_install || fail "$1 is missing: install it with apt-get install -y $2 (as root), then rerun"
	step "apt-get install $2"
	if [ -z "${apt_updated:-}" ]; then apt-get update -qq; apt_updated=1; fi
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$2" >/dev/null
}

# 1. A Docker engine.
if ! docker info >/dev/null 2>&1; then
	may_install || fail "no Docker engine answers: start Docker (e.g. sudo service docker start), or run scripts/provision.sh as root on Debian/Ubuntu to install and start one"
	command -v dockerd >/dev/null || apt_install dockerd docker.io
	step "start dockerd in the background (log: /var/log/dockerd.log)"
	setsid -f dockerd >/var/log/dockerd.log 2>&1 </dev/null
	for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
	docker info >/dev/null 2>&1 || fail "dockerd did not answer within 60 s: see /var/log/dockerd.log"
fi
step "Docker engine $(docker version -f '{{.Server.Version}}'), storage driver $(docker info -f '{{.Driver}}')"

# 2. BuildKit, through the buildx plugin that `docker build` uses. Without it
#    the client falls back to the legacy builder, which refuses the
#    multistage Dockerfile's --platform=$BUILDPLATFORM and RUN --mount.
if ! docker buildx version >/dev/null 2>&1; then
	command -v go >/dev/null || fail "docker buildx is missing and there is no go to build it: install the docker-buildx plugin"
	if [ "$(id -u)" = 0 ]; then plugins=/usr/local/lib/docker/cli-plugins; else plugins=${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins; fi
	step "go install github.com/docker/buildx/cmd/buildx@$buildx_version -> $plugins (a few minutes the first time)"
	tmp=$(mktemp -d)
	GOBIN=$tmp GOFLAGS=-buildvcs=false go install \
		-ldflags "-X github.com/docker/buildx/version.Version=$buildx_version" \
		"github.com/docker/buildx/cmd/buildx@$buildx_version" >"$tmp/log" 2>&1 ||
		{ tail -20 "$tmp/log" >&2; fail "building docker buildx failed"; }
	mkdir -p "$plugins" && mv "$tmp/buildx" "$plugins/docker-buildx" && rm -rf "$tmp"
fi
step "BuildKit: $(docker buildx version)"

# 3. wrk, the load generator of `make bench` (and only of it: its absence
#    stops nothing else).
if ! command -v wrk >/dev/null; then
	if may_install; then apt_install wrk wrk; else step "wrk not found: make bench needs it (apt-get install wrk)"; fi
fi

# 4. The golang base image of both Dockerfiles.
if docker image inspect "$golang_image" >/dev/null 2>&1; then
	step "$golang_image is in the local image store"
else
	step "docker pull $golang_image"
	if ! timeout 300 docker pull -q "$golang_image"; then
		step "no registry answers: rebuilding $golang_image locally from the official recipe"
		command -v debootstrap >/dev/null || apt_install debootstrap debootstrap
		[ "$(id -u)" = 0 ] || fail "rebuilding $golang_image needs root (debootstrap): rerun as root"
		scripts/golang-image/build.sh "$golang_image"
	fi
fi
