#!/usr/bin/env bash
# The project's own Kubernetes cluster: a control plane and two nodes on this
# machine, each node in a network namespace of its own with its own
# containerd, kubelet and kube-proxy. Built from source (build/), secured as a
# real cluster is (TLS everywhere from a CA made for each cluster, RBAC, Node
# authorization, no anonymous kubelet), and all of its state under one
# directory, so that `down` leaves nothing behind.
#
# Usage: cluster.sh COMMAND
#   build     build the Kubernetes and etcd binaries and the pause image, if missing
#   up        start the cluster (a no-op when it runs) and wait until both nodes are Ready
#   down      stop everything `up` started and remove everything it made
#   status    exit 0 if the cluster answers and both nodes are Ready, with its
#             nodes and its memory (-q: silently)
#   env       print the export lines that point kubectl at the cluster, and
#             WHOAMI_URL, whoami through the front door from this machine
#   load REF  pull an image from the project's registry into both nodes
#   exec CMD… run CMD with kubectl, KUBECONFIG and WHOAMI_URL for the cluster (it must run)
#   run CMD…  the same, but start the cluster first and stop it after if it
#             was not running
#   partition NODE, heal NODE
#             cut a node off the network (its link down), and join it again
#
# Besides Kubernetes, up starts what users run on a cluster: its DNS
# (CoreDNS, coredns/) and a Gateway API front door (Traefik, traefik/),
# both built from source by build. up notes every kernel parameter; down puts
# back those that changed (the kubelets set some for the whole machine) and
# fails if anything differs from what up found.
#
# The layout, with the defaults below:
#
#   host (control plane: etcd, kube-apiserver, -controller-manager, -scheduler)
#    │ bridge whoami-k8s 10.87.0.1 ── route to the Service range through node-1
#    ├── netns whoami-node-1: eth0 10.87.0.11, pods 10.88.1.0/24 on cni0
#    └── netns whoami-node-2: eth0 10.87.0.12, pods 10.88.2.0/24 on cni0
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

# module_version DIR MODULE: its version in DIR/go.mod.
module_version() { awk -v m="$2" '$1 != "//" { for (i = 1; i < NF; i++) if ($i == m) { print $(i + 1); exit } }' "$here/$1/go.mod"; }
k8s_version=$(module_version build k8s.io/kubernetes)
etcd_version=$(module_version build go.etcd.io/etcd/server/v3)
coredns_version=$(module_version coredns github.com/coredns/coredns)
traefik_version=$(module_version traefik github.com/traefik/traefik/v3)
bin=${WHOAMI_K8S_BIN:-/usr/local/lib/whoami/kubernetes-$k8s_version-etcd-$etcd_version}
addons=$(dirname "$bin") # coredns-VERSION/, traefik-VERSION/
state=${WHOAMI_K8S_STATE:-/var/lib/whoami-kubernetes}
# The project's registry, from .env.
# shellcheck source=../../../provision/lib.sh
. "$here/../../../provision/lib.sh"
load_facts "$here/../../.."
registry=${REGISTRY:?} # set by load_facts
pause_image=$registry/kubernetes/pause # tagged with the version of the kubernetes module's build/pause
coredns_image=$registry/kubernetes/coredns:$coredns_version
traefik_image=$registry/kubernetes/traefik:$traefik_version

bridge=whoami-k8s
# What the nodes' programs make outside $state, where no setting moves it: the
# kubelet's device-plugin socket and its links to container logs, the CNI
# library's cache, ip netns's directory (a mount), the shims' sockets. up
# notes those that do not exist yet; down removes them.
host_paths=(/var/lib/kubelet /var/log/containers /var/lib/cni /run/netns /run/containerd)
host_ip=10.87.0.1
nodes=(node-1 node-2)
declare -A node_ip=([node-1]=10.87.0.11 [node-2]=10.87.0.12)
declare -A pod_cidr=([node-1]=10.88.1.0/24 [node-2]=10.88.2.0/24)
cluster_cidr=10.88.0.0/16
service_cidr=10.89.0.0/16
service_api_ip=10.89.0.1 # the first address of the range: the "kubernetes" Service
dns_ip=10.89.0.10         # kube-dns, the cluster's DNS (CoreDNS)
node_port=30080           # the front door (Traefik) on every node
tunnel_node="node-1"     # the host reaches the Service range through this node
api=https://$host_ip:6443
pki=$state/pki
admin=$state/admin.kubeconfig

say() { printf '==> %s\n' "$*"; }
fail() {
	printf 'cluster: %s\n' "$*" >&2
	exit 1
}
kubectl() { "$bin/kubectl" --kubeconfig "$admin" --cache-dir "$state/kubectl-cache" "$@"; }
netns() { printf 'whoami-%s' "$1"; }
in_node() { # in_node NODE CMD...: only the network namespace, so /sys (cgroups) stays the host's
	local node=$1
	shift
	nsenter --net="/run/netns/$(netns "$node")" -- "$@"
}
containerd_sock() { printf '%s/%s/containerd/containerd.sock' "$state" "$1"; }
ctr() { # ctr NODE ARGS...
	local node=$1
	shift
	command ctr --address "$(containerd_sock "$node")" --namespace k8s.io "$@"
}

# since SECONDS0: seconds elapsed, with one decimal.
since() { awk -v t0="$1" -v t1="$(date +%s.%N)" 'BEGIN { printf "%.1f", t1 - t0 }'; }

# wait_for WHAT SECONDS CMD...: runs CMD every 0.2 s until it succeeds.
wait_for() {
	local what=$1 limit=$2 deadline=$((SECONDS + $2))
	shift 2
	until "$@" >/dev/null 2>&1; do
		[ $SECONDS -lt $deadline ] || fail "$what did not happen within $limit s: see the logs in $state/logs"
		sleep 0.2
	done
}

# ---------------------------------------------------------------- build

pause_version() {
	local dir
	dir=$(cd "$here/build" && go list -m -f '{{.Dir}}' k8s.io/kubernetes)
	sed -n 's/^TAG ?= //p' "$dir/build/pause/Makefile"
}

build() {
	[ "$(id -u)" = 0 ] || fail "building the cluster needs root: sudo make k8s-up"
	command -v go >/dev/null || fail "no go command to build the cluster with: install Go $(sed -n 's/^go //p' "$here/build/go.mod") or newer"
	if [ -x "$bin/kubectl" ] && [ -x "$bin/etcd" ]; then
		say "Kubernetes $k8s_version and etcd $etcd_version: $bin"
	else
		say "go build Kubernetes $k8s_version and etcd $etcd_version -> $bin (about 8 min on 2 cores the first time, a minute with Go's build cache)"
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
		say "built in $(since "$t0") s: $(cd "$bin" && printf '%s ' *)"
	fi

	local tag
	tag=$(pause_version)
	if in_registry "$pause_image:$tag"; then
		say "pause image: $pause_image:$tag"
	else
		command -v gcc >/dev/null || fail "gcc is missing (it builds the pause image): apt-get install gcc libc6-dev"
		say "build the pause image $pause_image:$tag from the kubernetes module's build/pause (rebuilt locally: registry.k8s.io cannot be reached here)"
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
}

# build_addon NAME VERSION IMAGE HOW_LONG [LDFLAGS]: the tool of the module in
# NAME/ (its one command, NAME) built into $addons/NAME-VERSION, and IMAGE, the
# binary alone FROM scratch as our own image is, pushed to the registry.
build_addon() {
	local name=$1 version=$2 image=$3 dir=$addons/$1-$2
	if in_registry "$image"; then
		say "$name image: $image"
		return
	fi
	if [ -x "$dir/$name" ]; then
		say "$name $version: $dir"
	else
		say "go build $name $version -> $dir ($4)"
		local t0 tmp=$dir.partial
		t0=$(date +%s.%N)
		rm -rf "$tmp" && mkdir -p "$tmp"
		(cd "$here/$name" && CGO_ENABLED=0 GOFLAGS=-buildvcs=false go build -trimpath -ldflags "-s -w ${5:-}" -o "$tmp/" tool) >"$tmp.log" 2>&1 ||
			{
				tail -20 "$tmp.log" >&2
				fail "building $name failed: the lines above, all of it in $tmp.log"
			}
		rm -f "$tmp.log"
		mv "$tmp" "$dir"
		say "built in $(since "$t0") s: $(du -m "$dir/$name" | cut -f1) MB"
	fi
	say "build the image $image: $name alone, FROM scratch (rebuilt locally from the Go module proxy: no container registry can be reached here)"
	docker build -q --label "org.opencontainers.image.description=$name $version, rebuilt locally from its Go module" \
		-t "$image" -f - "$dir" >/dev/null <<EOF
FROM scratch
COPY $name /$name
USER 65534:65534
ENTRYPOINT ["/$name"]
EOF
	docker push -q "$image" >/dev/null
	docker image rm "$image" >/dev/null
}

# ---------------------------------------------------------------- status

status() {
	[ -r "$admin" ] && [ -x "$bin/kubectl" ] || return 1
	local ready
	ready=$(kubectl get nodes --request-timeout 5s \
		-o jsonpath='{range .items[*]}{.metadata.name}={.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' 2>/dev/null) || return 1
	[ "$(grep -c '=True$' <<<"$ready")" = "${#nodes[@]}" ]
}

# memory: the resident memory of every process of the cluster: its
# components, the containerd shims, and the containers in the nodes' cgroups.
memory() {
	local f pid rss total=0 line='' node d
	for f in "$state"/pids/*; do
		pid=$(cat "$f")
		rss=$(awk '/^VmRSS/ { print $2 }' "/proc/$pid/status" 2>/dev/null || echo 0)
		total=$((total + rss))
		line="$line, $(basename "$f") $((rss / 1024))"
	done
	local others=0
	for node in "${nodes[@]}"; do
		for pid in $(pgrep -f "containerd-shim-runc-v2 .*-address $(containerd_sock "$node")"); do
			others=$((others + $(awk '/^VmRSS/ { print $2 }' "/proc/$pid/status" 2>/dev/null || echo 0)))
		done
		d=$(cgroup_dirs "$node" | grep -m1 '/memory/\|^/sys/fs/cgroup/whoami-')
		for pid in $(find "$d" -name cgroup.procs -exec cat {} + 2>/dev/null | sort -u); do
			others=$((others + $(awk '/^VmRSS/ { print $2 }' "/proc/$pid/status" 2>/dev/null || echo 0)))
		done
	done
	say "resident memory: $(((total + others) / 1024)) MB in all; in MB:${line#,}, containers and their shims $((others / 1024))"
}

print_env() {
	printf 'export KUBECONFIG=%s KUBECACHEDIR=%s\n' "$admin" "$state/kubectl-cache"
	# shellcheck disable=SC2016 # $PATH is for the shell that evaluates the line
	printf 'export PATH=%s:$PATH\n' "$bin"
	printf 'export WHOAMI_URL=%s\n' "$(front_door)"
	status || printf '# the cluster is not running: make k8s-up\n'
}

usage() {
	cat <<EOF

The cluster runs: $api, nodes ${nodes[*]}, Services on $service_cidr (routed through $tunnel_node).
  eval "\$(make -s k8s-env)"     # kubectl for this cluster (KUBECONFIG, PATH), and WHOAMI_URL
  kubectl get nodes -o wide
  make k8s-demo                  # the released image on 3 pods, 30 requests through the front door
  curl $(front_door)   # then: whoami through the front door (Traefik)
  make k8s-down                  # stop it and remove everything it made
EOF
}

# ---------------------------------------------------------------- up

preflight() {
	[ "$(id -u)" = 0 ] || fail "the cluster needs root (network namespaces, iptables, cgroups): sudo make k8s-up"
	local c
	for c in containerd containerd-shim-runc-v2 runc ctr iptables ip nsenter openssl curl ss; do
		command -v $c >/dev/null || fail "$c is missing: run provision/provision.sh kubernetes (as root)"
	done
	for c in bridge host-local loopback; do
		[ -x /usr/lib/cni/$c ] || fail "the CNI plugin /usr/lib/cni/$c is missing: run provision/provision.sh kubernetes (as root)"
	done
	[ -x "$bin/kube-apiserver" ] || fail "Kubernetes $k8s_version is not built: run provision/provision.sh kubernetes (as root)"
	local image
	for image in "$pause_image:$(pause_version)" "$coredns_image" "$traefik_image"; do
		in_registry "$image" || fail "$image is not in the registry: run provision/provision.sh kubernetes (as root)"
	done
	local port who
	for port in 6443 2379 2380 10257 10259; do
		who=$(ss -Hltnp "sport = :$port" | head -1)
		[ -z "$who" ] || fail "port $port is taken ($(awk '{ print $4, $6 }' <<<"$who")): stop what listens there, then make k8s-up"
	done
}

# cert NAME CA SUBJECT USAGES [SANS]: a key and a certificate signed by CA.
cert() {
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
		-keyout "$pki/$1.key" -subj "$3" \
		-addext "keyUsage=critical,digitalSignature,keyEncipherment" -addext "extendedKeyUsage=$4" \
		${5:+-addext "subjectAltName=$5"} 2>/dev/null |
		openssl x509 -req -CA "$pki/$2.crt" -CAkey "$pki/$2.key" -days 365 -copy_extensions copyall -out "$pki/$1.crt" 2>/dev/null
}

ca() {
	openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
		-keyout "$pki/$1.key" -subj "/CN=$2" -days 365 -out "$pki/$1.crt" 2>/dev/null
}

# kubeconfig FILE USER CERT: a kubeconfig for USER, with its certificate embedded.
kubeconfig() {
	cat >"$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: whoami
  cluster:
    server: $api
    certificate-authority-data: $(base64 -w0 "$pki/ca.crt")
users:
- name: $2
  user:
    client-certificate-data: $(base64 -w0 "$pki/$3.crt")
    client-key-data: $(base64 -w0 "$pki/$3.key")
contexts:
- name: whoami
  context:
    cluster: whoami
    user: $2
current-context: whoami
EOF
}

make_pki() {
	say "a CA for this cluster and its certificates ($pki)"
	mkdir -p "$pki"
	ca ca whoami-kubernetes-ca
	ca etcd-ca whoami-etcd-ca # etcd trusts only its own CA: no node certificate opens it
	cert etcd etcd-ca /CN=etcd serverAuth,clientAuth "IP:127.0.0.1,DNS:localhost"
	cert apiserver-etcd-client etcd-ca /CN=kube-apiserver-etcd-client clientAuth
	cert apiserver ca /CN=kube-apiserver serverAuth \
		"IP:$host_ip,IP:$service_api_ip,IP:127.0.0.1,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
	cert apiserver-kubelet-client ca /CN=kube-apiserver-kubelet-client clientAuth
	cert admin ca "/O=system:masters/CN=whoami-admin" clientAuth
	cert controller-manager ca /CN=system:kube-controller-manager clientAuth
	cert scheduler ca /CN=system:kube-scheduler clientAuth
	cert kube-proxy ca /CN=system:kube-proxy clientAuth
	local node
	for node in "${nodes[@]}"; do
		cert "$node" ca "/O=system:nodes/CN=system:node:$node" clientAuth
		cert "$node-kubelet" ca "/CN=$node" serverAuth "IP:${node_ip[$node]},DNS:$node"
	done
	openssl ecparam -name prime256v1 -genkey -noout -out "$pki/sa.key"
	openssl ec -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null

	kubeconfig "$admin" whoami-admin admin
	kubeconfig "$state/controller-manager.kubeconfig" system:kube-controller-manager controller-manager
	kubeconfig "$state/scheduler.kubeconfig" system:kube-scheduler scheduler
	kubeconfig "$state/kube-proxy.kubeconfig" system:kube-proxy kube-proxy
	for node in "${nodes[@]}"; do
		kubeconfig "$state/$node/kubelet.kubeconfig" "system:node:$node" "$node"
	done
}

# template FILE OUT NAME=VALUE...: FILE with each @NAME@ replaced by VALUE.
template() {
	local in=$1 out=$2 expr=()
	shift 2
	for kv in "$@"; do expr+=(-e "s|@${kv%%=*}@|${kv#*=}|g"); done
	sed "${expr[@]}" "$in" >"$out"
}

# start NAME [NODE] -- CMD...: CMD in the background, in NODE's network
# namespace if given, its own session, its output in logs/NAME.log and its PID
# in pids/NAME.
start() {
	local name=$1 node=''
	shift
	if [ "$1" != -- ]; then
		node=$1
		shift
	fi
	shift
	if [ -n "$node" ]; then
		set -- nsenter --net="/run/netns/$(netns "$node")" -- "$@"
	fi
	setsid "$@" >"$state/logs/$name.log" 2>&1 </dev/null &
	echo $! >"$state/pids/$name"
}

make_network() {
	say "network: bridge $bridge ($host_ip), a namespace per node, routes to the pods and to the Service range"
	ip link add "$bridge" type bridge
	ip addr add "$host_ip/24" dev "$bridge"
	ip link set "$bridge" up
	# Docker sets the host's FORWARD policy to DROP, and the kernel filters
	# bridged frames with it: let the nodes talk to each other.
	iptables -I FORWARD 1 -i "$bridge" -o "$bridge" -j ACCEPT -m comment --comment whoami-kubernetes
	local node other
	for node in "${nodes[@]}"; do
		ip netns add "$(netns "$node")"
		ip link add "$(netns "$node")" type veth peer name eth0 netns "$(netns "$node")"
		ip link set "$(netns "$node")" master "$bridge" up
		in_node "$node" ip addr add "${node_ip[$node]}/24" dev eth0
		in_node "$node" ip link set eth0 up
		in_node "$node" ip link set lo up
		in_node "$node" ip route add default via "$host_ip"
		in_node "$node" sysctl -qw net.ipv4.ip_forward=1
		if in_node "$node" test -e /proc/sys/net/bridge/bridge-nf-call-iptables; then
			in_node "$node" sysctl -qw net.bridge.bridge-nf-call-iptables=1 # kube-proxy's rules see bridged traffic
		fi
		for other in "${nodes[@]}"; do
			[ "$other" = "$node" ] || in_node "$node" ip route add "${pod_cidr[$other]}" via "${node_ip[$other]}"
		done
		ip route add "${pod_cidr[$node]}" via "${node_ip[$node]}"
	done
	# As `minikube tunnel` does: the host reaches ClusterIPs through a node,
	# whose kube-proxy sends the connection on to a pod.
	ip route add "$service_cidr" via "${node_ip[$tunnel_node]}"
}

cgroup_v2() { [ "$(stat -fc %T /sys/fs/cgroup)" = cgroup2fs ]; }

# The cgroup trees a node's kubelet lives under: /whoami-NODE in every
# hierarchy (cgroup v1), or in the one tree (cgroup v2).
cgroup_dirs() {
	if cgroup_v2; then
		echo "/sys/fs/cgroup/whoami-$1"
		return
	fi
	local h
	for h in /sys/fs/cgroup/*/; do
		[ -L "${h%/}" ] || echo "${h%/}/whoami-$1"
	done
}

make_cgroups() {
	local node d
	for node in "${nodes[@]}"; do
		for d in $(cgroup_dirs "$node"); do mkdir -p "$d"; done
		if cgroup_v2; then # not run on our cgroup v1 machines
			sed 's/\([^ ]*\)/+\1/g' /sys/fs/cgroup/cgroup.subtree_control >"/sys/fs/cgroup/whoami-$node/cgroup.subtree_control"
		elif [ -d /sys/fs/cgroup/cpuset ]; then # a new cpuset has no CPU and no memory node
			d=/sys/fs/cgroup/cpuset/whoami-$node
			cat /sys/fs/cgroup/cpuset/cpuset.cpus >"$d/cpuset.cpus"
			cat /sys/fs/cgroup/cpuset/cpuset.mems >"$d/cpuset.mems"
		fi
	done
}

start_control_plane() {
	say "etcd $etcd_version on 127.0.0.1:2379"
	start etcd -- "$bin/etcd" --name whoami --data-dir "$state/etcd" \
		--listen-client-urls https://127.0.0.1:2379 --advertise-client-urls https://127.0.0.1:2379 \
		--listen-peer-urls https://127.0.0.1:2380 --initial-advertise-peer-urls https://127.0.0.1:2380 \
		--initial-cluster whoami=https://127.0.0.1:2380 \
		--cert-file "$pki/etcd.crt" --key-file "$pki/etcd.key" --trusted-ca-file "$pki/etcd-ca.crt" --client-cert-auth \
		--peer-cert-file "$pki/etcd.crt" --peer-key-file "$pki/etcd.key" --peer-trusted-ca-file "$pki/etcd-ca.crt" --peer-client-cert-auth
	wait_for "etcd healthy" 30 curl -fsS --cacert "$pki/etcd-ca.crt" --cert "$pki/apiserver-etcd-client.crt" \
		--key "$pki/apiserver-etcd-client.key" https://127.0.0.1:2379/health

	say "kube-apiserver $k8s_version on $api"
	start kube-apiserver -- "$bin/kube-apiserver" \
		--advertise-address "$host_ip" --bind-address "$host_ip" --secure-port 6443 \
		--etcd-servers https://127.0.0.1:2379 --etcd-cafile "$pki/etcd-ca.crt" \
		--etcd-certfile "$pki/apiserver-etcd-client.crt" --etcd-keyfile "$pki/apiserver-etcd-client.key" \
		--tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" \
		--client-ca-file "$pki/ca.crt" \
		--kubelet-client-certificate "$pki/apiserver-kubelet-client.crt" --kubelet-client-key "$pki/apiserver-kubelet-client.key" \
		--kubelet-certificate-authority "$pki/ca.crt" --kubelet-preferred-address-types InternalIP \
		--authorization-mode Node,RBAC --enable-admission-plugins NodeRestriction \
		--service-cluster-ip-range "$service_cidr" \
		--service-account-issuer https://kubernetes.default.svc.cluster.local \
		--service-account-key-file "$pki/sa.pub" --service-account-signing-key-file "$pki/sa.key" \
		--anonymous-auth=false --profiling=false
	wait_for "kube-apiserver ready" 60 kubectl get --raw /readyz
	# The API server's client certificate may use every kubelet's API (logs, exec).
	kubectl create clusterrolebinding whoami:apiserver-kubelet-client \
		--clusterrole system:kubelet-api-admin --user kube-apiserver-kubelet-client >/dev/null

	say "kube-controller-manager and kube-scheduler on 127.0.0.1"
	start kube-controller-manager -- "$bin/kube-controller-manager" \
		--kubeconfig "$state/controller-manager.kubeconfig" \
		--authentication-kubeconfig "$state/controller-manager.kubeconfig" \
		--authorization-kubeconfig "$state/controller-manager.kubeconfig" \
		--bind-address 127.0.0.1 --leader-elect=false \
		--client-ca-file "$pki/ca.crt" --root-ca-file "$pki/ca.crt" \
		--service-account-private-key-file "$pki/sa.key" --use-service-account-credentials \
		--service-cluster-ip-range "$service_cidr" --profiling=false
	start kube-scheduler -- "$bin/kube-scheduler" \
		--kubeconfig "$state/scheduler.kubeconfig" \
		--authentication-kubeconfig "$state/scheduler.kubeconfig" \
		--authorization-kubeconfig "$state/scheduler.kubeconfig" \
		--bind-address 127.0.0.1 --leader-elect=false --profiling=false
}

start_node() {
	local node=$1 dir=$state/$1
	say "$node: containerd, kubelet and kube-proxy in network namespace $(netns "$node") (${node_ip[$node]}, pods ${pod_cidr[$node]})"
	template "$here/containerd.toml" "$dir/containerd.toml" STATE="$dir" PAUSE="$pause_image:$(pause_version)"
	template "$here/cni.conflist" "$dir/cni/10-whoami.conflist" STATE="$dir" NODE="$node" POD_CIDR="${pod_cidr[$node]}"
	template "$here/kubelet.yaml" "$dir/kubelet.yaml" STATE="$dir" NODE="$node" NODE_IP="${node_ip[$node]}" PKI="$pki" DNS_IP="$dns_ip"
	template "$here/kube-proxy.yaml" "$dir/kube-proxy.yaml" NODE="$node" CLUSTER_CIDR="$cluster_cidr" KUBECONFIG="$state/kube-proxy.kubeconfig"

	start "containerd-$node" "$node" -- containerd --config "$dir/containerd.toml"
	wait_for "containerd of $node" 30 ctr "$node" version
	# The node's loopback is its own: 127.0.0.1:5000 is reached from the
	# host, and the pause image pulled from there, as `kind load` does, with
	# the registry's credentials (hosts.toml, made by provisioning).
	ctr "$node" images pull --hosts-dir "$registry_credentials/hosts" "$pause_image:$(pause_version)" >/dev/null
	start "kubelet-$node" "$node" -- "$bin/kubelet" --config "$dir/kubelet.yaml" \
		--kubeconfig "$dir/kubelet.kubeconfig" --root-dir "$dir/kubelet" \
		--hostname-override "$node" --node-ip "${node_ip[$node]}"
	start "kube-proxy-$node" "$node" -- "$bin/kube-proxy" --config "$dir/kube-proxy.yaml"
}

up() {
	if status; then
		say "the cluster already runs"
		usage
		return
	fi
	preflight
	if [ -e "$state" ] || ip link show "$bridge" >/dev/null 2>&1; then
		say "leftovers of an earlier cluster: removing them first"
		down
	fi
	local t0 node
	t0=$(date +%s.%N)
	mkdir -p "$state/logs" "$state/pids"
	kernel_parameters >"$state/sysctl-before"
	local p
	for p in "${host_paths[@]}"; do [ -e "$p" ] || echo "$p" >>"$state/host-paths"; done
	for node in "${nodes[@]}"; do mkdir -p "$state/$node/cni" "$state/$node/pod-logs"; done
	# Keys and kubeconfigs for root only; not the rest: containerd and the
	# kubelet create what the containers' users must be able to read.
	(umask 077 && make_pki)
	make_network
	make_cgroups
	start_control_plane
	for node in "${nodes[@]}"; do start_node "$node"; done
	say "waiting for both nodes to be Ready"
	wait_for "both nodes Ready" 120 status
	wait_for "the default service account" 60 kubectl get serviceaccount default
	start_addons
	say "cluster up in $(since "$t0") s"
	kubectl get nodes -o wide
	usage
}

# module_dir DIR MODULE: where Go keeps MODULE, as DIR/go.mod requires it
# (downloaded if it is not there).
module_dir() { (cd "$here/$1" && go mod download -json "$2" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p'); }

# start_addons: CoreDNS behind kube-dns, and Traefik behind the Gateway "web",
# with the resource definitions of the Gateway API and of Traefik from the
# very modules Traefik was built with.
start_addons() {
	say "cluster DNS: CoreDNS $coredns_version behind kube-dns ($dns_ip); front door: Traefik $traefik_version, Gateway web, port $node_port of each node"
	local image gateway_api traefik
	for image in "$coredns_image" "$traefik_image"; do load "$image"; done
	gateway_api=$(module_dir traefik sigs.k8s.io/gateway-api)
	traefik=$(module_dir traefik github.com/traefik/traefik/v3)
	if [ ! -d "$gateway_api" ] || [ ! -d "$traefik" ]; then
		fail "the Gateway API and Traefik modules could not be downloaded: cd $here/traefik && go mod download"
	fi
	kubectl apply --server-side -f "$gateway_api/config/crd/standard/" \
		-f "$traefik/docs/content/reference/dynamic-configuration/kubernetes-crd-definition-v1.yml" >/dev/null
	kubectl wait --for condition=Established crd --all --timeout 60s >/dev/null
	template "$here/coredns/coredns.yaml" "$state/coredns.yaml" IMAGE="$coredns_image" DNS_IP="$dns_ip"
	template "$here/traefik/traefik.yaml" "$state/traefik.yaml" IMAGE="$traefik_image" NODE_PORT="$node_port"
	kubectl apply -f "$state/coredns.yaml" -f "$state/traefik.yaml" >/dev/null
	kubectl -n kube-system rollout status deployment/coredns --timeout 120s >/dev/null
	kubectl -n traefik rollout status daemonset/traefik --timeout 120s >/dev/null
	wait_for "the front door on $(front_door)" 60 curl -s -o /dev/null "$(front_door)"
}

# front_door: the URL of whoami through the front door from this machine: the
# Traefik of the node that carries the route into the cluster.
front_door() { printf 'http://%s:%s/whoami' "${node_ip[$tunnel_node]}" "$node_port"; }

# kernel_parameters: every kernel parameter and its value, but those that
# move by themselves.
kernel_parameters() {
	sysctl -a 2>/dev/null |
		grep -Ev '^(fs\.(dentry-state|inode-\S+|file-nr|quota\.\S+)|kernel\.(ns_last_pid|random\.\S+|pty\.nr)|net\.netfilter\.nf_conntrack_count) = ' | sort
}

# restore_kernel_parameters: puts back each parameter that changed since up,
# saying so: the kubelets set kernel.panic, kernel.panic_on_oops,
# vm.overcommit_memory and the keyring quotas for the whole machine.
restore_kernel_parameters() {
	[ -s "$state/sysctl-before" ] || return 0
	local line key value
	while IFS= read -r line; do
		key=${line%% = *} value=${line#* = }
		say "kernel parameter $key: $(sysctl -n "$key" 2>/dev/null | tr '\t' ' ') -> $value, as up found it"
		sysctl -qw "$key=$value" || true
	done < <(comm -23 "$state/sysctl-before" <(kernel_parameters))
	kernel_left=$(comm -3 "$state/sysctl-before" <(kernel_parameters) | sed 's/^\t/  now:    /; t; s/^/  before: /')
}
kernel_left='' # what restore_kernel_parameters could not put back

# ---------------------------------------------------------------- down

# alive PID: the process runs (it may wait for its parent to reap it).
alive() { [ -e "/proc/$1" ] && ! grep -q '^State:.Z' "/proc/$1/status" 2>/dev/null; }

# stop NAME: the process started as NAME, by its PID (if it still is that
# program), SIGTERM then SIGKILL after 10 s.
stop() {
	local f=$state/pids/$1 pid
	[ -f "$f" ] || return 0
	pid=$(cat "$f")
	if alive "$pid" && grep -q "$state\|$bin" "/proc/$pid/cmdline" 2>/dev/null; then
		kill "$pid" 2>/dev/null || true
		for _ in $(seq 100); do alive "$pid" || break; sleep 0.1; done
		if alive "$pid"; then
			say "$1 did not stop within 10 s of SIGTERM: SIGKILL"
			kill -9 "$pid" 2>/dev/null || true
			while alive "$pid"; do sleep 0.1; done
		fi
	fi
	rm -f "$f"
}

down() {
	[ "$(id -u)" = 0 ] || fail "removing the cluster needs root: sudo make k8s-down"
	local node
	if [ -r "$admin" ] && [ -x "$bin/kubectl" ] && kubectl get --raw /readyz --request-timeout 5s >/dev/null 2>&1; then
		# Pods first, while the kubelets run: each one's CNI teardown removes
		# its address and its rules. Cordoned nodes take no replacements.
		say "cordon the nodes and delete every pod"
		kubectl cordon "${nodes[@]}" >/dev/null 2>&1 || true
		kubectl delete pods --all --all-namespaces --grace-period 1 --wait --timeout 60s >/dev/null 2>&1 || true
	fi
	say "stop the processes"
	for node in "${nodes[@]}"; do
		stop "kube-proxy-$node"
		stop "kubelet-$node"
	done
	# Shims outlive their containerd: stop the containers they still hold.
	for node in "${nodes[@]}"; do
		pkill -f "containerd-shim-runc-v2 .*-address $(containerd_sock "$node")( |$)" 2>/dev/null || true
		stop "containerd-$node"
	done
	for c in kube-scheduler kube-controller-manager kube-apiserver etcd; do stop "$c"; done

	say "remove mounts, network namespaces, bridge, firewall rule, cgroups and $state"
	local made=()
	[ ! -r "$state/host-paths" ] || mapfile -t made <"$state/host-paths"
	if [ -d "$state" ]; then
		awk -v s="$state/" 'index($2, s) == 1 { print $2 }' /proc/mounts | sort -r | xargs -r -n1 umount -l
	fi
	for node in "${nodes[@]}"; do
		! ip netns list | grep -qw "$(netns "$node")" || ip netns delete "$(netns "$node")"
	done
	! ip link show "$bridge" >/dev/null 2>&1 || ip link delete "$bridge"
	while iptables -D FORWARD -i "$bridge" -o "$bridge" -j ACCEPT -m comment --comment whoami-kubernetes 2>/dev/null; do :; done
	for node in "${nodes[@]}"; do
		# What still runs in the node's cgroups (containers whose pods were
		# not deleted), then the cgroups, children first; kubelet also makes
		# its tree in the cgroup v1 "unified" hierarchy.
		for d in $(cgroup_dirs "$node"); do
			for _ in $(seq 50); do
				[ -d "$d" ] || break
				find "$d" -name cgroup.procs -exec cat {} + 2>/dev/null | while read -r pid; do kill -9 "$pid" 2>/dev/null; done
				find "$d" -depth -type d -exec rmdir {} + 2>/dev/null || sleep 0.2
			done
		done
		rm -f /var/lib/cni/results/whoami-"$node"-*
	done
	# The kubelets' links to their containers' logs.
	find /var/log/containers -maxdepth 1 -type l -lname "$state/*" -delete 2>/dev/null || true
	# The host paths that up found missing (so no other kubelet uses them):
	# the kubelets' socket, ip netns's mount, then the directories left empty.
	local p
	for p in "${made[@]}"; do
		case $p in
		/var/lib/kubelet) rm -f /var/lib/kubelet/device-plugins/kubelet.sock ;;
		/run/netns) ! mountpoint -q /run/netns || umount /run/netns ;;
		esac
		[ ! -d "$p" ] || find "$p" -depth -type d -empty -delete
	done
	restore_kernel_parameters
	rm -rf "$state"
	leftovers "${made[@]}"
}

# leftovers [HOST_PATH...]: fails with what is left of a cluster, if anything.
leftovers() {
	local left=() node d
	for d in "$@"; do [ ! -e "$d" ] || left+=("$d"); done
	[ ! -e "$state" ] || left+=("$state")
	ip link show "$bridge" >/dev/null 2>&1 && left+=("bridge $bridge")
	for node in "${nodes[@]}"; do
		ip netns list | grep -qw "$(netns "$node")" && left+=("netns $(netns "$node")")
		for d in $(cgroup_dirs "$node"); do [ ! -d "$d" ] || left+=("$d"); done
	done
	iptables -S FORWARD | grep -q whoami-kubernetes && left+=("iptables rule in FORWARD")
	pgrep -f "$state/" >/dev/null && left+=("processes: $(pgrep -f "$state/" | tr '\n' ' ')")
	[ -z "$kernel_left" ] || left+=("kernel parameters that differ from before up:"$'\n'"$kernel_left")
	[ ${#left[@]} = 0 ] || fail "left after down: ${left[*]}"
	say "nothing left of the cluster"
}

# ---------------------------------------------------------------- load, run

load() {
	[ $# = 1 ] || fail "usage: cluster.sh load REGISTRY/NAME@sha256:... (or :tag)"
	status || fail "the cluster is not running: make k8s-up"
	local node
	for node in "${nodes[@]}"; do
		ctr "$node" images pull --hosts-dir "$registry_credentials/hosts" --platform linux/amd64 "$1" >/dev/null ||
			fail "$node could not pull $1 from the registry"
	done
	say "loaded $1 into ${nodes[*]}"
}

# partition NODE / heal NODE: cut the node off the others and the control
# plane (its link to the bridge down), or join it again.
link() {
	if [ $# != 2 ] || [ -z "${node_ip[$2]:-}" ]; then
		fail "usage: cluster.sh partition|heal NODE (one of ${nodes[*]})"
	fi
	[ "$2" != "$tunnel_node" ] || [ "$1" = up ] || fail "$2 carries the route to the Service range: partition another node"
	ip link set "$(netns "$2")" "$1"
}

# with_env CMD...: CMD with kubectl, its KUBECONFIG and its cache for the cluster.
with_env() { KUBECONFIG=$admin KUBECACHEDIR=$state/kubectl-cache PATH=$bin:$PATH WHOAMI_URL=$(front_door) "$@"; }

run() {
	[ $# -gt 0 ] || fail "usage: cluster.sh run CMD..."
	if status; then
		with_env "$@"
		return
	fi
	trap down EXIT # also when up or CMD fails
	up
	with_env "$@"
}

cmd=${1:-}
shift || true
case $cmd in
build) build ;;
up) up ;;
down) down ;;
status)
	if [ "${1:-}" = -q ]; then
		status
	else
		status || fail "the cluster is not running: make k8s-up"
		kubectl get nodes -o wide
		memory
	fi
	;;
env) print_env ;;
load) load "$@" ;;
run) run "$@" ;;
partition) link down "$@" ;;
heal) link up "$@" ;;
exec)
	status || fail "the cluster is not running: make k8s-up"
	with_env "$@"
	;;
*) fail "unknown command '$cmd': want build, up, down, status, env, load, run, exec, partition or heal (see the top of $0)" ;;
esac
