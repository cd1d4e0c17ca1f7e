#!/usr/bin/env bash
# Makes this machine ready for what a make target needs, and for nothing
# more: each target names what it uses.
#
#   images      a Docker engine, BuildKit (the buildx plugin) and the golang
#               base image of both Dockerfiles: make compare-sizes, image-*
#   lb          images, plus Docker Compose and the HAProxy image: make lb-demo
#   bench       lb, plus wrk: make bench
#   release     images, plus a current BuildKit (buildkitd), the project's
#               registry on 127.0.0.1:5000 and the SBOM generator: make release
#   kubernetes  the engine and the registry, plus containerd, runc, the CNI
#               plugins, and the cluster's binaries and pause image, built
#               from source: make k8s-up
#   all         all of the above (the default): make test, make docker-ready
#
# Idempotent: every step checks first and is skipped when already done, so
# `make` runs it before each target at almost no cost. It installs packages
# only as root on a machine with apt-get (Debian, Ubuntu), and only when
# something is missing; set PROVISION=no to forbid that. Elsewhere it stops
# with one line that says what to do. Images that stand in for official ones
# it cannot pull are rebuilt locally from public recipes, and say so.
#
# Usage: scripts/provision.sh [images|lb|bench|release|kubernetes|all]...
# Environment: GOLANG_IMAGE (default golang:<go.mod version>-bookworm),
# LB_IMAGE (default compose.yaml's haproxy image).
set -euo pipefail
cd "$(dirname "$0")/.."

golang_image=${GOLANG_IMAGE:-golang:$(sed -n 's/^go //p' go.mod)-bookworm}
lb_image=${LB_IMAGE:-$(sed -n 's/.*image: \${LB_IMAGE:-\(.*\)}$/\1/p' compose.yaml)}
buildx_version=v0.38.2  # the buildx CLI plugin, built from the Go module proxy when missing
compose_version=v5.6.0  # the Compose CLI plugin, likewise (v5.7 asks for a newer Go)
# For make release: a current BuildKit, the CNCF registry, and Syft for the SBOM.
buildkit_version=v0.34.2 registry_version=v3.1.2 syft_version=v1.57.1
registry=127.0.0.1:5000
release_builder=whoami-release
sbom_generator=$registry/whoami/sbom-scanner:syft-$syft_version
bin=/usr/local/bin
if [ "$(id -u)" = 0 ]; then plugins=/usr/local/lib/docker/cli-plugins; else plugins=${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins; fi

step() { printf '==> %s\n' "$*"; }
fail() {
	printf 'whoami: %s\n' "$*" >&2
	exit 1
}
may_install() { [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null && [ "${PROVISION:-auto}" != no ]; }
apt_install() { # apt_install WHAT PACKAGE...
	local what=$1
	shift
	may_install || fail "$what is missing: install it with apt-get install -y $* (as root), then rerun"
	step "apt-get install $*"
	if [ -z "${apt_updated:-}" ]; then
		apt-get update -qq
		apt_updated=1
	fi
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}
need_root() { may_install || fail "$1: run scripts/provision.sh as root"; }

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

answers() { curl -fsS -o /dev/null "$1" 2>/dev/null; }
in_registry() { # in_registry REPOSITORY TAG
	curl -fsS -o /dev/null -H "Accept: application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.index.v1+json" \
		"http://$registry/v2/$1/manifests/$2" 2>/dev/null
}

# A Docker engine that answers: Debian's, installed and started when missing.
# The engine it starts publishes ports with the kernel's NAT rules instead of
# the userland proxy (docker-proxy), which a flood of connections to a
# published port kills; an engine that was already running is left as it is
# (README, Troubleshooting, says what to change there).
ensure_engine() {
	if ! docker info >/dev/null 2>&1; then
		may_install || fail "no Docker engine answers: start Docker (e.g. sudo service docker start), or run scripts/provision.sh as root on Debian/Ubuntu to install and start one"
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
		step "go install github.com/docker/buildx/cmd/buildx@$buildx_version -> $plugins (a few minutes the first time)"
		local tmp
		tmp=$(mktemp -d)
		GOBIN=$tmp GOFLAGS=-buildvcs=false go install \
			-ldflags "-X github.com/docker/buildx/version.Version=$buildx_version" \
			"github.com/docker/buildx/cmd/buildx@$buildx_version" >"$tmp/log" 2>&1 ||
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
		step "go build github.com/docker/compose/v5/cmd@$compose_version -> $plugins/docker-compose (a few minutes the first time)"
		go_build_cmd "github.com/docker/compose/v5/cmd@$compose_version" "$plugins/docker-compose" \
			"-X github.com/docker/compose/v5/internal.Version=$compose_version"
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
ensure_golang_image() { image "$golang_image" scripts/golang-image/build.sh; }
ensure_haproxy_image() { image "$lb_image" scripts/haproxy-image/build.sh; }

# The project's own registry on 127.0.0.1:5000 (CNCF Distribution), for
# releases and for the cluster's images.
ensure_registry() {
	if ! answers "http://$registry/v2/"; then
		need_root "no registry answers on $registry"
		if [ ! -x $bin/registry ]; then
			step "go build github.com/distribution/distribution/v3/cmd/registry@$registry_version -> $bin/registry (a few minutes the first time)"
			go_build_cmd "github.com/distribution/distribution/v3/cmd/registry@$registry_version" $bin/registry \
				"-X github.com/distribution/distribution/v3/version.version=$registry_version"
		fi
		step "start the registry on $registry in the background (data: /var/lib/whoami-registry, log: /var/log/whoami-registry.log)"
		mkdir -p /var/lib/whoami-registry
		setsid -f $bin/registry serve "$PWD/scripts/release/registry.yml" >/var/log/whoami-registry.log 2>&1 </dev/null
		for _ in $(seq 30); do answers "http://$registry/v2/" && break; sleep 1; done
		answers "http://$registry/v2/" || fail "the registry did not answer within 30 s: see /var/log/whoami-registry.log"
	fi
	step "registry on $registry: $($bin/registry --version 2>/dev/null | awk '{ print $NF }')"
}

# A current BuildKit (buildkitd, with Debian's runc) for make release, which
# buildx reaches as the builder "whoami-release". The engine's embedded
# BuildKit stays the builder of docker build. The golang base is pushed to
# the registry, where buildkitd looks up docker.io images first.
ensure_buildkitd() {
	local socket=/run/whoami-buildkit/buildkitd.sock
	if ! docker buildx inspect $release_builder >/dev/null 2>&1 || ! [ -S $socket ]; then
		need_root "make release needs buildkitd and the builder $release_builder"
		if [ ! -x $bin/buildkitd ]; then
			step "go build github.com/moby/buildkit/cmd/buildkitd@$buildkit_version -> $bin/buildkitd (a few minutes the first time)"
			go_build_cmd "github.com/moby/buildkit/cmd/buildkitd@$buildkit_version" $bin/buildkitd \
				"-X github.com/moby/buildkit/version.Version=$buildkit_version"
		fi
		if ! [ -S $socket ] || ! pgrep -x buildkitd >/dev/null; then
			step "start buildkitd in the background (state: /var/lib/whoami-buildkit, log: /var/log/whoami-buildkitd.log)"
			mkdir -p /run/whoami-buildkit && rm -f $socket
			setsid -f $bin/buildkitd --config "$PWD/scripts/release/buildkitd.toml" >/var/log/whoami-buildkitd.log 2>&1 </dev/null
			for _ in $(seq 30); do [ -S $socket ] && break; sleep 1; done
			[ -S $socket ] || fail "buildkitd did not start within 30 s: see /var/log/whoami-buildkitd.log"
		fi
		if ! docker buildx inspect $release_builder >/dev/null 2>&1; then
			step "docker buildx create --name $release_builder --driver remote unix://$socket"
			docker buildx create --name $release_builder --driver remote "unix://$socket" >/dev/null
		fi
	fi
	step "BuildKit for make release: $(docker buildx inspect --bootstrap $release_builder | awk '/BuildKit version:/ { print $3; exit }') (builder $release_builder)"
	if ! in_registry library/golang "${golang_image#golang:}"; then
		step "docker push $registry/library/$golang_image (the base of the release build)"
		docker tag "$golang_image" "$registry/library/$golang_image"
		docker push -q "$registry/library/$golang_image" >/dev/null
		docker image rm "$registry/library/$golang_image" >/dev/null
	fi
}

# The SBOM generator image that make release names: Syft from the Go module
# proxy in a small wrapper, rebuilt locally (the official generator image
# cannot be pulled here), pushed to the registry.
ensure_sbom_generator() {
	if ! in_registry whoami/sbom-scanner "syft-$syft_version"; then
		need_root "the SBOM generator $sbom_generator is missing"
		step "build the SBOM generator image $sbom_generator (Syft $syft_version from the Go module proxy; rebuilt locally: the official generator image cannot be pulled here)"
		local tmp
		tmp=$(mktemp -d)
		go_build_cmd "github.com/anchore/syft/cmd/syft@$syft_version" "$tmp/syft" "-X main.version=$syft_version"
		CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$tmp/sbom-scanner" ./scripts/release/sbom-scanner
		cp scripts/release/sbom-scanner/Dockerfile "$tmp/"
		docker build -q -t "$sbom_generator" "$tmp" >/dev/null
		docker push -q "$sbom_generator" >/dev/null
		docker image rm "$sbom_generator" >/dev/null
		rm -rf "$tmp"
	fi
	step "SBOM generator: $sbom_generator"
}

# The cluster of make k8s-up: Debian's containerd (a separate instance runs
# per node; Docker's is never touched), runc and CNI plugins, then the
# Kubernetes and etcd binaries and the pause image, built from source by
# deploy/kubernetes/cluster/cluster.sh build (once per machine).
ensure_kubernetes() {
	local missing=()
	command -v containerd >/dev/null || missing+=(containerd)
	command -v runc >/dev/null || missing+=(runc)
	[ -x /usr/lib/cni/bridge ] || missing+=(containernetworking-plugins)
	command -v iptables >/dev/null || missing+=(iptables)
	[ ${#missing[@]} = 0 ] || apt_install "${missing[*]} (for the Kubernetes nodes)" "${missing[@]}"
	need_root "the Kubernetes cluster"
	deploy/kubernetes/cluster/cluster.sh build
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
	release) ensure engine buildx golang_image registry buildkitd sbom_generator ;;
	kubernetes) ensure engine registry kubernetes ;;
	all) for t in images lb release kubernetes; do provision $t; done ;;
	*) fail "unknown target '$1': want images, lb, bench, release, kubernetes or all" ;;
	esac
}

[ $# -gt 0 ] || set -- all
for target in "$@"; do provision "$target"; done
