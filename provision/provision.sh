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
#               generator, and emulators for the other platforms: make release
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

answers() { curl -fsS -o /dev/null "$1" 2>/dev/null; }
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

# The project's own registry on 127.0.0.1:5000 (CNCF Distribution), for
# releases and for the cluster's images. It answers no request without the
# credentials below (401): pushes and deletes, and reads too, since
# Distribution's htpasswd guard covers every request.
ensure_registry() {
	ensure_registry_credentials
	if [ "$(registry_status)" = 200 ]; then
		# Anonymous requests answered: a registry started before credentials.
		pgrep -f "^$bin/registry serve" >/dev/null ||
			fail "the registry on $registry accepts anonymous requests and is not the project's: stop it, then rerun provision/provision.sh release"
		need_root "the registry on $registry accepts anonymous requests"
		step "stop the registry on $registry: it accepts anonymous requests (started before it had credentials)"
		stop_registry
	fi
	if [ "$(registry_status)" != 401 ]; then
		need_root "no registry answers on $registry"
		if [ ! -x "$bin/registry" ]; then
			step "go build github.com/distribution/distribution/v3/cmd/registry@$DISTRIBUTION_VERSION -> $bin/registry (a few minutes the first time)"
			go_build_cmd "github.com/distribution/distribution/v3/cmd/registry@$DISTRIBUTION_VERSION" "$bin/registry" \
				"-X github.com/distribution/distribution/v3/version.version=$DISTRIBUTION_VERSION"
		fi
		step "start the registry on $registry in the background (data: /var/lib/whoami-registry, log: /var/log/whoami-registry.log)"
		mkdir -p /var/lib/whoami-registry
		setsid -f "$bin/registry" serve "$PWD/provision/registry.yml" >/var/log/whoami-registry.log 2>&1 </dev/null
		for _ in $(seq 30); do [ "$(registry_status)" = 401 ] && break; sleep 1; done
		[ "$(registry_status)" = 401 ] || fail "the registry did not answer an anonymous request with 401 within 30 s: see /var/log/whoami-registry.log"
	fi
	if ! grep -qs "\"$registry\"" "${DOCKER_CONFIG:-$HOME/.docker}/config.json"; then
		step "docker login $registry (the credentials in $registry_credentials, for docker, BuildKit and the Go tools)"
		cut -d: -f2- "$registry_credentials/auth" | docker login -u whoami --password-stdin "$registry" >/dev/null 2>&1 ||
			fail "docker login $registry failed: see /var/log/whoami-registry.log"
	fi
	go run ./cmd/registry ping "$registry" ||
		fail "the registry on $registry refuses Docker's credentials for it: run docker logout $registry, then rerun provision/provision.sh (as root)"
	step "registry on $registry: $("$bin/registry" --version 2>/dev/null | awk '{ print $NF }'), anonymous requests refused (401)"
}
# registry_status: the status of an anonymous GET /v2/, 000 if none answers.
registry_status() { curl -s -o /dev/null -w '%{http_code}' "http://$registry/v2/"; }
stop_registry() {
	pkill -f "^$bin/registry serve" || true
	for _ in $(seq 30); do [ "$(registry_status)" = 000 ] && break; sleep 1; done
}

# The registry's credentials, made once, readable by root only, never in
# the repository or an image: in $registry_credentials (provision/lib.sh),
# auth (whoami:password, for docker login), htpasswd (its bcrypt hash, which
# the registry reads) and hosts/ (for the cluster nodes' containerd, ctr
# --hosts-dir).
ensure_registry_credentials() {
	local dir=$registry_credentials
	local hosts=$dir/hosts/$registry/hosts.toml
	if [ -s "$dir/auth" ] && [ -s "$dir/htpasswd" ] && [ -s "$hosts" ]; then
		step "registry credentials: $dir (root only)"
		return
	fi
	[ ! -d "$dir" ] || [ -r "$dir" ] || fail "the registry's credentials in $dir are readable by root only: run this as root"
	need_root "the registry's credentials are missing"
	command -v htpasswd >/dev/null || apt_install "htpasswd (the registry's password file)" apache2-utils
	step "make the registry's credentials in $dir: user whoami, a random password (root only)"
	local password
	password=$(head -c 18 /dev/urandom | base64 | tr '+/' '-_')
	(
		umask 077
		mkdir -p "$dir" "$(dirname "$hosts")"
		chmod 700 "$dir"
		printf 'whoami:%s\n' "$password" >"$dir/auth"
		htpasswd -niB whoami <<<"$password" | sed '/^$/d' >"$dir/htpasswd"
		cat >"$hosts" <<EOF
# The project's registry for containerd (ctr --hosts-dir), with its
# credentials: made by provision/provision.sh.
server = "http://$registry"
[host."http://$registry"]
  capabilities = ["pull", "resolve"]
  [host."http://$registry".header]
    Authorization = "Basic $(printf 'whoami:%s' "$password" | base64 -w0)"
EOF
	)
	# New credentials: the registry reads them when it starts, and Docker
	# logs in again.
	if pgrep -f "^$bin/registry serve" >/dev/null; then
		step "stop the registry on $registry: it has the old credentials"
		stop_registry
	fi
	docker logout "$registry" >/dev/null 2>&1 || true
}

# A current BuildKit (buildkitd, with Debian's runc) for make release, which
# buildx reaches as the builder "whoami-release". The engine's embedded
# BuildKit stays the builder of docker build. The golang base is pushed to
# the registry, where buildkitd looks up docker.io images first.
ensure_buildkitd() {
	local socket=/run/whoami-buildkit/buildkitd.sock
	# A socket outlives a killed buildkitd: both must be there.
	buildkitd_runs() { [ -S $socket ] && pgrep -f "^$bin/buildkitd " >/dev/null; }
	if ! docker buildx inspect "$RELEASE_BUILDER" >/dev/null 2>&1 || ! buildkitd_runs; then
		need_root "make release needs buildkitd and the builder $RELEASE_BUILDER"
		if [ ! -x "$bin/buildkitd" ]; then
			step "go build github.com/moby/buildkit/cmd/buildkitd@$BUILDKIT_VERSION -> $bin/buildkitd (a few minutes the first time)"
			go_build_cmd "github.com/moby/buildkit/cmd/buildkitd@$BUILDKIT_VERSION" "$bin/buildkitd" \
				"-X github.com/moby/buildkit/version.Version=$BUILDKIT_VERSION"
		fi
		if ! buildkitd_runs; then
			step "start buildkitd in the background (state: /var/lib/whoami-buildkit, log: /var/log/whoami-buildkitd.log)"
			mkdir -p /run/whoami-buildkit && rm -f $socket
			setsid -f "$bin/buildkitd" --config "$PWD/provision/buildkitd.toml" >/var/log/whoami-buildkitd.log 2>&1 </dev/null
			for _ in $(seq 30); do [ -S $socket ] && break; sleep 1; done
			[ -S $socket ] || fail "buildkitd did not start within 30 s: see /var/log/whoami-buildkitd.log"
		fi
		if ! docker buildx inspect "$RELEASE_BUILDER" >/dev/null 2>&1; then
			step "docker buildx create --name $RELEASE_BUILDER --driver remote unix://$socket"
			docker buildx create --name "$RELEASE_BUILDER" --driver remote "unix://$socket" >/dev/null
		fi
	fi
	local version
	version=$(docker buildx inspect --bootstrap "$RELEASE_BUILDER" 2>/dev/null | awk '/BuildKit version:/ { print $3; exit }')
	[ -n "$version" ] || fail "the builder $RELEASE_BUILDER does not answer: see /var/log/whoami-buildkitd.log, or stop buildkitd and rerun"
	step "BuildKit for make release: $version (builder $RELEASE_BUILDER)"
	if ! in_registry "$registry/library/$golang_image"; then
		step "docker push $registry/library/$golang_image (the base of the release build)"
		docker tag "$golang_image" "$registry/library/$golang_image"
		docker push -q "$registry/library/$golang_image" >/dev/null
		docker image rm "$registry/library/$golang_image" >/dev/null
	fi
}

# Emulators for the platforms of a release that this machine cannot run
# (.env's PLATFORMS): the release tests start every platform's image.
# Debian's qemu-user-static, registered with the kernel's binfmt_misc with
# the F flag (the interpreter is opened once, so it works inside containers).
# A registration that is already there, made by anyone, is left as it is.
ensure_emulators() {
	local native p arch archs=() missing=()
	native=linux/$(go env GOARCH)
	for p in ${PLATFORMS//,/ }; do
		[ "$p" != "$native" ] || continue
		case $p in
		linux/arm64*) arch=aarch64 ;;
		linux/arm/*) arch=arm ;;
		linux/ppc64le | linux/s390x | linux/riscv64) arch=${p#linux/} ;;
		*) fail "no emulator known for $p (PLATFORMS): remove it, or register one with binfmt_misc yourself" ;;
		esac
		archs+=("$arch")
		[ -e "/proc/sys/fs/binfmt_misc/qemu-$arch" ] || missing+=("$arch")
	done
	if [ ${#missing[@]} -gt 0 ]; then
		need_root "emulators for ${missing[*]} are not registered"
		if ! command -v update-binfmts >/dev/null || [ ! -x /usr/bin/qemu-aarch64-static ]; then
			apt_install "qemu-user-static (emulators for the release tests)" qemu-user-static binfmt-support
		fi
		if ! mountpoint -q /proc/sys/fs/binfmt_misc; then
			step "mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc"
			mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
		fi
		for arch in "${missing[@]}"; do
			[ ! -e "/proc/sys/fs/binfmt_misc/qemu-$arch" ] || continue # there once mounted
			step "update-binfmts --enable qemu-$arch"
			update-binfmts --enable "qemu-$arch"
		done
	fi
	local line=""
	for arch in "${archs[@]}"; do
		line+=" qemu-$arch ($(sed -n 's/^flags: //p' "/proc/sys/fs/binfmt_misc/qemu-$arch"))"
	done
	step "emulators registered for PLATFORMS:${line:- none needed}"
}

# The SBOM generator image that make release names: Syft from the Go module
# proxy in a small wrapper, rebuilt locally (the official generator image
# cannot be pulled here), pushed to the registry.
ensure_sbom_generator() {
	if ! in_registry "$SBOM_GENERATOR"; then
		need_root "the SBOM generator $SBOM_GENERATOR is missing"
		step "build the SBOM generator image $SBOM_GENERATOR (Syft $SYFT_VERSION from the Go module proxy; rebuilt locally: the official generator image cannot be pulled here)"
		local tmp
		tmp=$(mktemp -d)
		go_build_cmd "github.com/anchore/syft/cmd/syft@$SYFT_VERSION" "$tmp/syft" "-X main.version=$SYFT_VERSION"
		CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$tmp/sbom-scanner" ./provision/images/sbom-scanner
		cp provision/images/sbom-scanner/Dockerfile "$tmp/"
		docker build -q -t "$SBOM_GENERATOR" "$tmp" >/dev/null
		docker push -q "$SBOM_GENERATOR" >/dev/null
		docker image rm "$SBOM_GENERATOR" >/dev/null
		rm -rf "$tmp"
	fi
	step "SBOM generator: $SBOM_GENERATOR"
}

# The cluster of make k8s-up: Debian's containerd (a separate instance runs
# per node; Docker's is never touched), runc and CNI plugins, then the
# Kubernetes and etcd binaries, the pause image, CoreDNS and Traefik, built from source by
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
	release) ensure engine buildx golang_image registry buildkitd sbom_generator emulators ;;
	kubernetes) ensure engine registry kubernetes ;;
	lint) ensure shellcheck ;;
	all) for t in images lb release kubernetes lint; do provision $t; done ;;
	*) fail "unknown target '$1': want images, lb, bench, release, kubernetes, lint or all" ;;
	esac
}

[ $# -gt 0 ] || set -- all
for target in "$@"; do provision "$target"; done
