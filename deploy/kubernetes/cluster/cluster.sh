#!/usr/bin/env bash
# The project's own Kubernetes cluster: a control plane and two nodes on this
# machine, each node in a network namespace of its own with its own
# containerd, kubelet and kube-proxy. Built from source (build/), secured as a
# real cluster is (TLS everywhere from a CA made for each cluster, RBAC, Node
# authorization, no anonymous kubelet), and all of its state under one
# directory, so that `down` leaves nothing behind.
#
# Usage: cluster.sh COMMAND
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
# both built from source by provisioning (provision/kubernetes.sh). up notes every kernel parameter; down puts
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
# shellcheck source=../../../provision/lib.sh
. "$here/../../../provision/lib.sh"
# shellcheck source=settings.sh
. "$here/settings.sh"
# shellcheck source=pki.sh
. "$here/pki.sh"
# shellcheck source=network.sh
. "$here/network.sh"
# shellcheck source=processes.sh
. "$here/processes.sh"
# shellcheck source=addons.sh
. "$here/addons.sh"
# shellcheck source=teardown.sh
. "$here/teardown.sh"

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
	step "resident memory: $(((total + others) / 1024)) MB in all; in MB:${line#,}, containers and their shims $((others / 1024))"
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

up() {
	if status; then
		step "the cluster already runs"
		usage
		return
	fi
	preflight
	if [ -e "$state" ] || ip link show "$bridge" >/dev/null 2>&1; then
		step "leftovers of an earlier cluster: removing them first"
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
	start_registry_bridge
	for node in "${nodes[@]}"; do start_node "$node"; done
	step "waiting for both nodes to be Ready"
	wait_for "both nodes Ready" 120 status
	wait_for "the default service account" 60 kubectl get serviceaccount default
	start_addons
	step "cluster up in $(since "$t0") s"
	kubectl get nodes -o wide
	usage
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
	step "loaded $1 into ${nodes[*]}"
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
*) fail "unknown command '$cmd': want up, down, status, env, load, run, exec, partition or heal (see the top of $0)" ;;
esac
