#!/usr/bin/env bash
# Makes this machine ready for what a make target needs, and for nothing
# more: each target names what it uses.
#
#   images      a Docker engine, BuildKit (the buildx plugin) and the golang
#               base image of both Dockerfiles: make compare-sizes, image-*
#   lb          images, plus Docker Compose and the HAProxy image: make lb-demo
#   bench       lb, plus wrk: make bench
#   release     images, plus a current BuildKit (buildkitd), the project's
#               registry on 127.0.0.1:5000 with its credentials, the SBOM
#               generator, emulators for the other platforms, cosign and the
#               signing key: make release
#   kubernetes  the engine and the registry, plus containerd, runc, the CNI
#               plugins, and the cluster's binaries and pause image, built
#               from source: make k8s-up
#   lint        shellcheck: make lint
#   all         all of the above (the default): make test, make docker-ready
#
# Idempotent: every step checks first and is skipped when already done, so
# `make` runs it before each target at almost no cost. It installs packages
# only as root on a machine with apt-get (Debian, Ubuntu), and only when
# something is missing; set PROVISION=no to forbid that. Elsewhere it stops
# with one line that says what to do. Images that stand in for official ones
# it cannot pull are rebuilt locally from public recipes, and say so.
#
# Usage: provision/provision.sh [images|lb|bench|release|kubernetes|lint|all]...
# Environment: GOLANG_IMAGE (default golang:<go.mod version>-bookworm), and
# any variable of .env.
set -euo pipefail
cd "$(dirname "$0")/.."

# Versions, names and addresses: .env, shared with the Makefile and Compose.
# shellcheck source=lib.sh
. provision/lib.sh
load_facts .
golang_image=${GOLANG_IMAGE:-golang:$(sed -n 's/^go //p' go.mod)-bookworm}
registry=${REGISTRY:?} # set by load_facts
bin=/usr/local/bin
if [ "$(id -u)" = 0 ]; then plugins=/usr/local/lib/docker/cli-plugins; else plugins=${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins; fi

may_install() { [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null && [ "${PROVISION:-auto}" != no ]; }
apt_install() { # apt_install WHAT PACKAGE...
	local what=$1
	shift
	may_install || fail "$what is missing: install it with apt-get install -y $* (as root), then rerun"
	step "apt-get install $*"
	local log
	log=$(mktemp)
	# apt's own chatter (debconf's notes) goes to the log, shown if it fails.
	if [ -z "${apt_updated:-}" ]; then
		apt-get update -qq >"$log" 2>&1 || {
			cat "$log" >&2
			fail "apt-get update failed"
		}
		apt_updated=1
	fi
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >"$log" 2>&1 || {
		tail -20 "$log" >&2
		fail "apt-get install $* failed"
	}
	rm -f "$log"
}
need_root() { may_install || fail "$1: run provision/provision.sh as root"; }

# go_build_cmd PACKAGE@VERSION OUT [LDFLAGS]: builds a command of a module as
# a dependency of a throwaway module, since `go install` refuses modules
# whose go.mod has exclude directives (Compose, BuildKit). Static binaries.
go_build_cmd() {
	local tmp
	tmp=$(mktemp -d)
	(cd "$tmp" && go mod init throwaway && go get "$1" &&
		CGO_ENABLED=0 GOFLAGS=-buildvcs=false go build -trimpath -o out -ldflags "-s -w ${3:-}" "${1%@*}") >"$tmp/log" 2>&1 ||
		{
			tail -20 "$tmp/log" >&2
			rm -rf "$tmp"
			fail "building ${1} failed"
		}
	mkdir -p "$(dirname "$2")" && mv "$tmp/out" "$2" && rm -rf "$tmp"
}

# A Docker engine that answers: Debian's, installed and started when missing.
# The engine it starts publishes ports with the kernel's NAT rules instead of
# the userland proxy (docker-proxy), which a flood of connections to a
# published port kills; an engine that was already running is left as it is
# (README, Troubleshooting, says what to change there).
ensure_engine() {
	if ! docker info >/dev/null 2>&1; then
		may_install || fail "no Docker engine answers: start Docker (e.g. sudo service docker start), or run provision/provision.sh as root on Debian/Ubuntu to install and start one"
		command -v dockerd >/dev/null || apt_install dockerd docker.io
		step "start dockerd --userland-proxy=false in the background (log: /var/log/dockerd.log)"
		setsid -f dockerd --userland-proxy=false >/var/log/dockerd.log 2>&1 </dev/null
		for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
		docker info >/dev/null 2>&1 || fail "dockerd did not answer within 60 s: see /var/log/dockerd.log"
	fi
	local ports="published ports through docker-proxy (see Troubleshooting: published ports and floods)"
	if pgrep -ax dockerd | grep -q -- '--userland-proxy=false' || grep -qs '"userland-proxy": *false' /etc/docker/daemon.json; then
		ports="published ports through the kernel's NAT"
	fi
	step "Docker engine $(docker version -f '{{.Server.Version}}'), storage driver $(docker info -f '{{.Driver}}'), $ports"
}

# BuildKit, through the buildx plugin that `docker build` uses. Without it
# the client falls back to the legacy builder, which refuses the multistage
# Dockerfile's --platform=$BUILDPLATFORM and RUN --mount.
ensure_buildx() {
	if ! docker buildx version >/dev/null 2>&1; then
		command -v go >/dev/null || fail "docker buildx is missing and there is no go to build it: install the docker-buildx plugin"
		step "go install github.com/docker/buildx/cmd/buildx@$BUILDX_VERSION -> $plugins (a few minutes the first time)"
		local tmp
		tmp=$(mktemp -d)
		GOBIN=$tmp GOFLAGS=-buildvcs=false go install \
			-ldflags "-X github.com/docker/buildx/version.Version=$BUILDX_VERSION" \
			"github.com/docker/buildx/cmd/buildx@$BUILDX_VERSION" >"$tmp/log" 2>&1 ||
			{
				tail -20 "$tmp/log" >&2
				fail "building docker buildx failed"
			}
		mkdir -p "$plugins" && mv "$tmp/buildx" "$plugins/docker-buildx" && rm -rf "$tmp"
	fi
	step "BuildKit: $(docker buildx version)"
}

# Docker Compose v2 or later, as the `docker compose` plugin. Not Debian's
# docker-compose package: that is the retired Python v1.
ensure_compose() {
	if ! docker compose version >/dev/null 2>&1; then
		command -v go >/dev/null || fail "docker compose is missing and there is no go to build it: install the docker-compose-plugin package"
		step "go build github.com/docker/compose/v5/cmd@$COMPOSE_VERSION -> $plugins/docker-compose (a few minutes the first time)"
		go_build_cmd "github.com/docker/compose/v5/cmd@$COMPOSE_VERSION" "$plugins/docker-compose" \
			"-X github.com/docker/compose/v5/internal.Version=$COMPOSE_VERSION"
	fi
	step "Compose: $(docker compose version)"
}

# wrk, the load generator of make bench.
ensure_wrk() {
	command -v wrk >/dev/null || apt_install "wrk (make bench's load generator)" wrk
}

# image NAME REBUILD_SCRIPT: the official image, pulled, or when no registry
# answers, rebuilt locally from its public recipe on a Debian base made with
# debootstrap.
image() {
	local origin
	if docker image inspect "$1" >/dev/null 2>&1; then
		origin=$(docker image inspect -f '{{index .Config.Labels "org.opencontainers.image.description"}}' "$1")
		case "$origin" in *"rebuilt locally"*) origin="rebuilt locally ($2)" ;; *) origin="official image" ;; esac
		step "$1 is in the local image store: $origin"
		return
	fi
	step "docker pull $1"
	timeout 300 docker pull -q "$1" 2>/dev/null && return
	step "no registry answers: rebuilding $1 locally with $2"
	command -v debootstrap >/dev/null || apt_install debootstrap debootstrap
	[ "$(id -u)" = 0 ] || fail "rebuilding $1 needs root (debootstrap): rerun as root"
	"$2" "$1"
}
ensure_golang_image() { image "$golang_image" provision/images/golang/build.sh; }
ensure_haproxy_image() { image "$LB_IMAGE" provision/images/haproxy/build.sh; }

# What make release and make k8s-up need, in files of their own.
# shellcheck source=release.sh
. provision/release.sh
# shellcheck source=kubernetes.sh
. provision/kubernetes.sh

# The linters of make lint that are not Go modules: shellcheck, Debian's.
ensure_shellcheck() {
	command -v shellcheck >/dev/null || apt_install "shellcheck (make lint)" shellcheck
}

# Components by target, in order; each runs once.
declare -A done_=()
ensure() {
	local c
	for c in "$@"; do
		[ -z "${done_[$c]:-}" ] || continue
		done_[$c]=1
		"ensure_$c"
	done
}
provision() {
	case $1 in
	images) ensure engine buildx golang_image ;;
	lb) ensure engine buildx golang_image compose haproxy_image ;;
	bench) ensure engine buildx golang_image compose haproxy_image wrk ;;
	release) ensure engine buildx golang_image registry buildkitd sbom_generator emulators cosign signing_key ;;
	kubernetes) ensure engine registry kubernetes ;;
	lint) ensure shellcheck ;;
	all) for t in images lb release kubernetes lint; do provision $t; done ;;
	*) fail "unknown target '$1': want images, lb, bench, release, kubernetes, lint or all" ;;
	esac
}

[ $# -gt 0 ] || set -- all
for target in "$@"; do provision "$target"; done
