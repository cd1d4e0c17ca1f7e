# shellcheck shell=bash
# The cluster of make k8s-up, provisioned: Debian's containerd (a separate
# instance runs per node; Docker's is never touched), runc, CNI plugins and
# socat (the image policy's way to the registry),
# then the Kubernetes and etcd binaries, the pause image, CoreDNS, Traefik,
# metrics-server and sigstore's policy-controller, built from source once per machine (the modules of
# deploy/kubernetes/cluster, whose settings.sh names them), and the
# project's proxy beside the policy-controller (cmd/registry-proxy). Sourced
# by provision.sh.
# shellcheck disable=SC2030,SC2031 # build_kubernetes reads the settings in its subshell, and calls build_addon there

ensure_kubernetes() {
	local missing=()
	command -v containerd >/dev/null || missing+=(containerd)
	command -v runc >/dev/null || missing+=(runc)
	[ -x /usr/lib/cni/bridge ] || missing+=(containernetworking-plugins)
	command -v iptables >/dev/null || missing+=(iptables)
	command -v socat >/dev/null || missing+=(socat)
	[ ${#missing[@]} = 0 ] || apt_install "${missing[*]} (for the Kubernetes nodes)" "${missing[@]}"
	need_root "the Kubernetes cluster"
	build_kubernetes
}

# build_kubernetes: in a subshell of its own, since the cluster's settings
# name their own $bin.
build_kubernetes() (
	here=$PWD/deploy/kubernetes/cluster
	# shellcheck source=../deploy/kubernetes/cluster/settings.sh
	. "$here/settings.sh"
	command -v go >/dev/null || fail "no go command to build the cluster with: install Go $(sed -n 's/^go //p' "$here/build/go.mod") or newer"
	if [ -x "$bin/kubectl" ] && [ -x "$bin/etcd" ]; then
		step "Kubernetes $k8s_version and etcd $etcd_version: $bin"
	else
		step "go build Kubernetes $k8s_version and etcd $etcd_version -> $bin (about 8 min on 2 cores the first time, a minute with Go's build cache)"
		local t0 ld='' pkg tmp
		t0=$(date +%s.%N)
		local minor=${k8s_version#v*.}
		minor=${minor%%.*}
		local major=${k8s_version#v}
		major=${major%%.*}
		# Without these, every component says it is v0.0.0-master.
		for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
			ld="$ld -X $pkg.gitVersion=$k8s_version -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
		done
		tmp=$bin.partial
		rm -rf "$tmp" && mkdir -p "$tmp"
		(cd "$here/build" && CGO_ENABLED=0 GOFLAGS=-buildvcs=false go build -trimpath -ldflags "-s -w$ld" -o "$tmp/" tool ./etcd) >"$tmp.log" 2>&1 ||
			{
				tail -20 "$tmp.log" >&2
				fail "building Kubernetes failed: the lines above, all of it in $tmp.log"
			}
		rm -f "$tmp.log"
		mv "$tmp" "$bin"
		step "built in $(since "$t0") s: $(cd "$bin" && printf '%s ' *)"
	fi

	local tag
	tag=$(pause_version)
	if in_registry "$pause_image:$tag"; then
		step "pause image: $pause_image:$tag"
	else
		command -v gcc >/dev/null || fail "gcc is missing (it builds the pause image): apt-get install gcc libc6-dev"
		step "build the pause image $pause_image:$tag from the kubernetes module's build/pause (rebuilt locally: the official registry cannot be reached here)"
		local dir ctx
		dir=$(cd "$here/build" && go list -m -f '{{.Dir}}' k8s.io/kubernetes)
		ctx=$(mktemp -d)
		mkdir -p "$ctx/bin"
		gcc -Os -Wall -Werror -static -DVERSION="v$tag-$k8s_version" -o "$ctx/bin/pause-linux-amd64" "$dir/build/pause/linux/pause.c"
		docker build -q --build-arg BASE=scratch --build-arg ARCH=amd64 \
			--label "org.opencontainers.image.description=pause $tag, rebuilt locally from k8s.io/kubernetes@$k8s_version build/pause" \
			-f "$dir/build/pause/Dockerfile" -t "$pause_image:$tag" "$ctx" >/dev/null
		docker push -q "$pause_image:$tag" >/dev/null
		docker image rm "$pause_image:$tag" >/dev/null
		rm -rf "$ctx"
	fi
	build_addon coredns "$coredns_version" "$coredns_image" "about 2 min the first time"
	build_addon traefik "$traefik_version" "$traefik_image" "about 4 min and 3 GB of memory the first time" \
		"-X github.com/traefik/traefik/v3/pkg/version.Version=$traefik_version"
	build_addon metrics-server "$metrics_server_version" "$metrics_server_image" "about 3 min the first time" \
		"-X k8s.io/client-go/pkg/version.gitVersion=$metrics_server_version"
	# The admission webhook of sigstore's policy-controller, from the module
	# that cosign is built from too (make release): one build list, so the
	# cluster checks signatures with the very code that makes them.
	build_addon policy-controller "$policy_controller_version" "$policy_controller_image" "about 2 min after cosign, 5 without" \
		"" "$sigstore_module" github.com/sigstore/policy-controller/cmd/webhook
	# Beside it, the project's own proxy to the registry (cmd/registry-proxy).
	local proxy
	proxy=$(registry_proxy_image)
	build_addon registry-proxy "${proxy##*:}" "$proxy" "seconds" "" "$PWD" ./cmd/registry-proxy
)

# build_addon NAME VERSION IMAGE HOW_LONG [LDFLAGS [MODULE PACKAGE]]: the tool
# of the module in NAME/ (its one command, NAME), or PACKAGE of MODULE (a
# folder), built into $addons/NAME-VERSION/NAME, and IMAGE, the binary alone
# FROM scratch as our own image is, pushed to the registry.
build_addon() {
	local name=$1 version=$2 image=$3 dir=$addons/$1-$2 module=${6:-$here/$1} pkg=${7:-tool}
	if in_registry "$image"; then
		step "$name image: $image"
		return
	fi
	if [ -x "$dir/$name" ]; then
		step "$name $version: $dir"
	else
		step "go build $name $version -> $dir ($4)"
		local t0 tmp=$dir.partial
		t0=$(date +%s.%N)
		rm -rf "$tmp" && mkdir -p "$tmp"
		(cd "$module" && CGO_ENABLED=0 GOFLAGS=-buildvcs=false go build -trimpath -ldflags "-s -w ${5:-}" -o "$tmp/$name" "$pkg") >"$tmp.log" 2>&1 ||
			{
				tail -20 "$tmp.log" >&2
				fail "building $name failed: the lines above, all of it in $tmp.log"
			}
		rm -f "$tmp.log"
		mv "$tmp" "$dir"
		step "built in $(since "$t0") s: $(du -m "$dir/$name" | cut -f1) MB"
	fi
	local origin="rebuilt locally from the Go module proxy: no container registry can be reached here" label="rebuilt locally from its Go module"
	if [ "$module" = "$PWD" ]; then
		origin="this repository's own" label="built from this repository"
	fi
	step "build the image $image: $name alone, FROM scratch ($origin)"
	docker build -q --label "org.opencontainers.image.description=$name $version, $label" \
		-t "$image" -f - "$dir" >/dev/null <<EOF
FROM scratch
COPY $name /$name
USER 65534:65534
ENTRYPOINT ["/$name"]
EOF
	docker push -q "$image" >/dev/null
	docker image rm "$image" >/dev/null
}
