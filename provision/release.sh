# shellcheck shell=bash
# What make release needs besides the engine, provisioned: the project's
# registry with its credentials, a current BuildKit, the SBOM generator,
# emulators for the platforms this machine is not, cosign and the key that
# signs. Sourced by provision.sh,
# which sets $bin, $registry and $golang_image.
# shellcheck disable=SC2154

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
	registry_client ping "$registry" ||
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

# cosign, built from the Go module proxy at the version of provision/sigstore
# (the module of the cluster's policy-controller too: one build list, so that
# the verifier of make release is the cluster's), as $bin/cosign, where a
# user's `cosign verify` finds it.
ensure_cosign() {
	local want have=""
	want=$(awk '$1 == "github.com/sigstore/cosign/v2" { print $2; exit }' provision/sigstore/go.mod)
	[ ! -x "$bin/cosign" ] || have=$("$bin/cosign" version --json 2>/dev/null | sed -n 's/.*"gitVersion": *"\([^"]*\)".*/\1/p')
	if [ "$have" != "$want" ]; then
		need_root "cosign $want is missing"
		step "go build github.com/sigstore/cosign/v2/cmd/cosign@$want -> $bin/cosign (provision/sigstore; about 4 min the first time)"
		local t0 tmp
		t0=$(date +%s)
		tmp=$(mktemp -d)
		(cd provision/sigstore && CGO_ENABLED=0 GOFLAGS=-buildvcs=false go build -trimpath -o "$tmp/cosign" \
			-ldflags "-s -w -X sigs.k8s.io/release-utils/version.gitVersion=$want" github.com/sigstore/cosign/v2/cmd/cosign) >"$tmp/log" 2>&1 ||
			{
				tail -20 "$tmp/log" >&2
				rm -rf "$tmp"
				fail "building cosign failed"
			}
		mv "$tmp/cosign" "$bin/cosign" && rm -rf "$tmp"
		step "built in $(($(date +%s) - t0)) s: $(du -m "$bin/cosign" | cut -f1) MB"
	fi
	step "cosign: $want ($bin/cosign)"
}

# The key pair that signs releases, made once like the registry's
# credentials: the private key readable by root only, never on a command
# line nor in the repository; the public key beside it, readable by all
# (users verify with it, the cluster's policy gets it). Its password is
# empty: the file's mode is what guards it, as the registry's password is
# guarded; set COSIGN_PASSWORD for a key of your own that has one. Delete
# the folder to make a new pair: the next release is signed with it.
ensure_signing_key() {
	local key=$SIGNING_KEY dir
	dir=$(dirname "$key")
	if [ -s "$key" ] && [ -s "${key%.key}.pub" ]; then
		step "signing key: $key (root only), ${key%.key}.pub"
		return
	fi
	need_root "the signing key $key is missing"
	step "make the signing key pair: cosign generate-key-pair -> $key (root only), ${key%.key}.pub"
	(
		umask 077
		mkdir -p "$dir"
		cd "$dir" && rm -f "$key" "${key%.key}.pub" &&
			COSIGN_PASSWORD='' "$bin/cosign" generate-key-pair --output-key-prefix "$(basename "${key%.key}")" >/dev/null 2>&1
	) || fail "cosign generate-key-pair in $dir failed"
	chmod 755 "$dir" && chmod 600 "$key" && chmod 644 "${key%.key}.pub"
}
