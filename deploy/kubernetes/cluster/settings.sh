# shellcheck shell=bash
# The cluster's settings: versions (from the build modules' go.mod files),
# paths, images, addresses, and the small helpers every step uses. Sourced
# by cluster.sh, and by provision/kubernetes.sh, which builds what they name.
# Needs $here (this folder) and provision/lib.sh (load_facts, step, fail).
# shellcheck disable=SC2034,SC2154 # set here for the files that source this one; $here is theirs

# module_version DIR MODULE: its version in DIR/go.mod.
module_version() { awk -v m="$2" '$1 != "//" { for (i = 1; i < NF; i++) if ($i == m) { print $(i + 1); exit } }' "$here/$1/go.mod"; }
k8s_version=$(module_version build k8s.io/kubernetes)
etcd_version=$(module_version build go.etcd.io/etcd/server/v3)
coredns_version=$(module_version coredns github.com/coredns/coredns)
traefik_version=$(module_version traefik github.com/traefik/traefik/v3)
metrics_server_version=$(module_version metrics-server sigs.k8s.io/metrics-server)
# The policy-controller is built from provisioning's sigstore module, with cosign.
sigstore_module=$(cd "$here/../../../provision/sigstore" && pwd)
policy_controller_version=$(module_version ../../../provision/sigstore github.com/sigstore/policy-controller)
bin=${WHOAMI_K8S_BIN:-/usr/local/lib/whoami/kubernetes-$k8s_version-etcd-$etcd_version}
addons=$(dirname "$bin") # coredns-VERSION/, traefik-VERSION/, metrics-server-VERSION/, policy-controller-VERSION/
state=${WHOAMI_K8S_STATE:-/var/lib/whoami-kubernetes}
# The project's registry, from .env.
load_facts "$here/../../.."
registry=${REGISTRY:?} # set by load_facts
pause_image=$registry/kubernetes/pause # tagged with the version of the kubernetes module's build/pause
coredns_image=$registry/kubernetes/coredns:$coredns_version
traefik_image=$registry/kubernetes/traefik:$traefik_version
metrics_server_image=$registry/kubernetes/metrics-server:$metrics_server_version
policy_controller_image=$registry/kubernetes/policy-controller:$policy_controller_version
# The user the registry proxy runs as (policy-controller/webhook.yaml), its
# own: the images here run as 65534, and the bridge's socket is its alone.
registry_proxy_uid=61000

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

# pause_version: the tag of the pause image, from the kubernetes module.
pause_version() {
	local dir
	dir=$(cd "$here/build" && go list -m -f '{{.Dir}}' k8s.io/kubernetes)
	sed -n 's/^TAG ?= //p' "$dir/build/pause/Makefile"
}

# registry_proxy_image: the project's own proxy beside the webhook
# (cmd/registry-proxy), tagged with a sum of its source (its package and
# those it imports that are not Go's) and of the Go that builds it: a change
# builds a new image. A function, as pause_version: Go's cache is root's.
registry_proxy_image() {
	local sum
	sum=$(
		cd "$here/../../.." &&
			{ go version && cat go.mod && go list -deps -f '{{if not .Standard}}{{range .GoFiles}}{{$.Dir}}/{{.}} {{end}}{{end}}' ./cmd/registry-proxy | xargs cat; } | sha256sum
	)
	printf '%s/kubernetes/registry-proxy:%s' "$registry" "${sum:0:12}"
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
