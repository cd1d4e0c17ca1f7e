#!/usr/bin/env bash
# Makes this machine ready for the image targets, the container tests and the
# benchmarks: a Docker engine that answers, BuildKit, Docker Compose, wrk, and
# the two images the project starts from: the golang base of both Dockerfiles
# and the HAProxy balancer of compose.yaml (each pulled, or rebuilt locally
# when no registry answers); and for make release, a current BuildKit, the
# project's own registry on 127.0.0.1:5000 and an SBOM generator image.
#
# Idempotent: every step checks first and is skipped when already done, so
# `make` runs it before each image target at almost no cost. It installs
# packages only as root on a machine with apt-get (Debian, Ubuntu), and only
# when something is missing; set PROVISION=no to forbid that. Elsewhere it
# stops with one line that says what to do.
#
# Usage: scripts/provision.sh [GOLANG_IMAGE [LB_IMAGE]]
#   (defaults: golang:<go.mod version>-bookworm, and compose.yaml's haproxy image)
set -euo pipefail
cd "$(dirname "$0")/.."

golang_image=${1:-golang:$(sed -n 's/^go //p' go.mod)-bookworm}
lb_image=${2:-$(sed -n 's/.*image: \${LB_IMAGE:-\(.*\)}$/\1/p' compose.yaml)}
buildx_version=v0.38.2  # the buildx CLI plugin, built from the Go module proxy when missing
compose_version=v5.6.0  # the Compose CLI plugin, likewise (v5.7 asks for a newer Go)
# For make release: a current BuildKit, the CNCF registry, and Syft for the SBOM.
buildkit_version=v0.34.2 registry_version=v3.1.2 syft_version=v1.57.1
registry=127.0.0.1:5000
release_builder=whoami-release
sbom_generator=$registry/whoami/sbom-scanner:syft-$syft_version

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
if [ "$(id -u)" = 0 ]; then plugins=/usr/local/lib/docker/cli-plugins; else plugins=${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins; fi
if ! docker buildx version >/dev/null 2>&1; then
	command -v go >/dev/null || fail "docker buildx is missing and there is no go to build it: install the docker-buildx plugin"
	step "go install github.com/docker/buildx/cmd/buildx@$buildx_version -> $plugins (a few minutes the first time)"
	tmp=$(mktemp -d)
	GOBIN=$tmp GOFLAGS=-buildvcs=false go install \
		-ldflags "-X github.com/docker/buildx/version.Version=$buildx_version" \
		"github.com/docker/buildx/cmd/buildx@$buildx_version" >"$tmp/log" 2>&1 ||
		{ tail -20 "$tmp/log" >&2; fail "building docker buildx failed"; }
	mkdir -p "$plugins" && mv "$tmp/buildx" "$plugins/docker-buildx" && rm -rf "$tmp"
fi
step "BuildKit: $(docker buildx version)"

# go_build_cmd PACKAGE@VERSION OUT [LDFLAGS]: builds a command of a module as
# a dependency of a throwaway module, since `go install` refuses modules
# whose go.mod has exclude directives (Compose, BuildKit). Static binaries.
go_build_cmd() {
	local tmp
	tmp=$(mktemp -d)
	(cd "$tmp" && go mod init throwaway && go get "$1" &&
		CGO_ENABLED=0 GOFLAGS=-buildvcs=false go build -trimpath -o out -ldflags "-s -w ${3:-}" "${1%@*}") >"$tmp/log" 2>&1 ||
		{ tail -20 "$tmp/log" >&2; rm -rf "$tmp"; fail "building ${1} failed"; }
	mkdir -p "$(dirname "$2")" && mv "$tmp/out" "$2" && rm -rf "$tmp"
}

# 3. Docker Compose v2 or later, as the `docker compose` plugin. Not Debian's
#    docker-compose package: that is the retired Python v1. `go install` of
#    Compose refuses its go.mod's exclude directives, so it is built as a
#    dependency of a throwaway module.
if ! docker compose version >/dev/null 2>&1; then
	command -v go >/dev/null || fail "docker compose is missing and there is no go to build it: install the docker-compose-plugin package"
	step "go build github.com/docker/compose/v5/cmd@$compose_version -> $plugins/docker-compose (a few minutes the first time)"
	go_build_cmd "github.com/docker/compose/v5/cmd@$compose_version" "$plugins/docker-compose" \
		"-X github.com/docker/compose/v5/internal.Version=$compose_version"
fi
step "Compose: $(docker compose version)"

# 4. wrk, the load generator of `make bench` (and only of it: its absence
#    stops nothing else).
if ! command -v wrk >/dev/null; then
	if may_install; then apt_install wrk wrk; else step "wrk not found: make bench needs it (apt-get install wrk)"; fi
fi

# 5. The golang base image of both Dockerfiles, and the balancer's image of
#    compose.yaml: the official images, or, when no registry answers, rebuilt
#    locally from their public recipes on a Debian base made with debootstrap.
image() { # image NAME REBUILD_SCRIPT
	local origin
	if docker image inspect "$1" >/dev/null 2>&1; then
		origin=$(docker image inspect -f '{{index .Config.Labels "org.opencontainers.image.description"}}' "$1")
		case "$origin" in *"rebuilt locally"*) origin="rebuilt locally ($2)" ;; *) origin="official image" ;; esac
		step "$1 is in the local image store: $origin"
		return
	fi
	step "docker pull $1"
	timeout 300 docker pull -q "$1" && return
	step "no registry answers: rebuilding $1 locally with $2"
	command -v debootstrap >/dev/null || apt_install debootstrap debootstrap
	[ "$(id -u)" = 0 ] || fail "rebuilding $1 needs root (debootstrap): rerun as root"
	"$2" "$1"
}
image "$golang_image" scripts/golang-image/build.sh
image "$lb_image" scripts/haproxy-image/build.sh

# 6. For make release: buildkitd (a current BuildKit, with Debian's runc),
#    the project's own registry on 127.0.0.1:5000 (CNCF Distribution), the
#    golang base pushed there (buildkitd looks up docker.io images in it
#    first), and the SBOM generator image. The engine's embedded BuildKit
#    stays the builder of docker build: buildx reaches this one as the
#    builder "whoami-release". Only as root; elsewhere make release says
#    what is missing.
if ! may_install; then
	if curl -fsS -o /dev/null "http://$registry/v2/" 2>/dev/null && docker buildx inspect $release_builder >/dev/null 2>&1; then
		step "make release: the registry on $registry and the builder $release_builder answer"
	else
		step "make release needs buildkitd and a registry on $registry: run scripts/provision.sh as root"
	fi
	exit 0
fi
bin=/usr/local/bin
if [ ! -x $bin/buildkitd ]; then
	step "go build github.com/moby/buildkit/cmd/buildkitd@$buildkit_version -> $bin/buildkitd (a few minutes the first time)"
	go_build_cmd "github.com/moby/buildkit/cmd/buildkitd@$buildkit_version" $bin/buildkitd \
		"-X github.com/moby/buildkit/version.Version=$buildkit_version"
fi
if [ ! -x $bin/registry ]; then
	step "go build github.com/distribution/distribution/v3/cmd/registry@$registry_version -> $bin/registry (a few minutes the first time)"
	go_build_cmd "github.com/distribution/distribution/v3/cmd/registry@$registry_version" $bin/registry \
		"-X github.com/distribution/distribution/v3/version.version=$registry_version"
fi
if ! curl -fsS -o /dev/null "http://$registry/v2/" 2>/dev/null; then
	step "start the registry on $registry in the background (data: /var/lib/whoami-registry, log: /var/log/whoami-registry.log)"
	mkdir -p /var/lib/whoami-registry
	setsid -f $bin/registry serve "$PWD/scripts/release/registry.yml" >/var/log/whoami-registry.log 2>&1 </dev/null
	for _ in $(seq 30); do curl -fsS -o /dev/null "http://$registry/v2/" 2>/dev/null && break; sleep 1; done
	curl -fsS -o /dev/null "http://$registry/v2/" || fail "the registry did not answer within 30 s: see /var/log/whoami-registry.log"
fi
step "registry: $($bin/registry --version 2>/dev/null | awk '{ print $NF }') on $registry"
socket=/run/whoami-buildkit/buildkitd.sock
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
step "BuildKit for make release: $(docker buildx inspect --bootstrap $release_builder | awk '/BuildKit version:/ { print $3; exit }') (builder $release_builder)"
in_registry() { curl -fsS -o /dev/null -H "Accept: application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.index.v1+json" "http://$registry/v2/$1/manifests/$2"; }
if ! in_registry library/golang "${golang_image#golang:}"; then
	step "docker push $registry/library/$golang_image (the base of the release build)"
	docker tag "$golang_image" "$registry/library/$golang_image"
	docker push -q "$registry/library/$golang_image" >/dev/null
	docker image rm "$registry/library/$golang_image" >/dev/null
fi
if ! in_registry whoami/sbom-scanner "syft-$syft_version"; then
	step "build the SBOM generator image $sbom_generator (Syft $syft_version from the Go module proxy; rebuilt locally: the official generator image cannot be pulled here)"
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
