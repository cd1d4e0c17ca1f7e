# shellcheck shell=bash
# The cluster's processes: the control plane on the host, containerd,
# kubelet and kube-proxy in each node's network namespace, each in its own
# session with its log and PID under $state, the nodes' cgroups, and how
# each is stopped. Sourced by cluster.sh.
# shellcheck disable=SC2154 # the settings: settings.sh, which cluster.sh sources first

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
	step "etcd $etcd_version on 127.0.0.1:2379"
	start etcd -- "$bin/etcd" --name whoami --data-dir "$state/etcd" \
		--listen-client-urls https://127.0.0.1:2379 --advertise-client-urls https://127.0.0.1:2379 \
		--listen-peer-urls https://127.0.0.1:2380 --initial-advertise-peer-urls https://127.0.0.1:2380 \
		--initial-cluster whoami=https://127.0.0.1:2380 \
		--cert-file "$pki/etcd.crt" --key-file "$pki/etcd.key" --trusted-ca-file "$pki/etcd-ca.crt" --client-cert-auth \
		--peer-cert-file "$pki/etcd.crt" --peer-key-file "$pki/etcd.key" --peer-trusted-ca-file "$pki/etcd-ca.crt" --peer-client-cert-auth
	wait_for "etcd healthy" 30 curl -fsS --cacert "$pki/etcd-ca.crt" --cert "$pki/apiserver-etcd-client.crt" \
		--key "$pki/apiserver-etcd-client.key" https://127.0.0.1:2379/health

	step "kube-apiserver $k8s_version on $api"
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
		--requestheader-client-ca-file "$pki/front-proxy-ca.crt" --requestheader-allowed-names front-proxy-client \
		--requestheader-username-headers X-Remote-User --requestheader-group-headers X-Remote-Group \
		--requestheader-extra-headers-prefix X-Remote-Extra- \
		--proxy-client-cert-file "$pki/front-proxy-client.crt" --proxy-client-key-file "$pki/front-proxy-client.key" \
		--enable-aggregator-routing=true \
		--anonymous-auth=false --profiling=false
	wait_for "kube-apiserver ready" 60 kubectl get --raw /readyz
	# The API server's client certificate may use every kubelet's API (logs, exec).
	kubectl create clusterrolebinding whoami:apiserver-kubelet-client \
		--clusterrole system:kubelet-api-admin --user kube-apiserver-kubelet-client >/dev/null

	step "kube-controller-manager and kube-scheduler on 127.0.0.1"
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

# start_registry_bridge: the project's registry, which listens on this
# machine's 127.0.0.1 only, on a socket too, for the pods of the image
# policy's webhook (policy-controller/webhook.yaml mounts its folder): a
# socat that only root and the webhook's proxy (its own user) can connect
# to, in a folder only they can enter. No pod reaches the registry through
# the network.
start_registry_bridge() {
	local dir=$state/registry
	step "the registry $registry on $dir/registry.sock too, for the image policy's webhook alone (socat, user $registry_proxy_uid)"
	mkdir -p "$dir"
	chown "$registry_proxy_uid:$registry_proxy_uid" "$dir"
	chmod 700 "$dir"
	start registry-bridge -- socat "UNIX-LISTEN:$dir/registry.sock,fork,unlink-early,user=$registry_proxy_uid,mode=600" "TCP:$registry"
	wait_for "the registry bridge's socket" 10 test -S "$dir/registry.sock"
}

start_node() {
	local node=$1 dir=$state/$1
	step "$node: containerd, kubelet and kube-proxy in network namespace $(netns "$node") (${node_ip[$node]}, pods ${pod_cidr[$node]})"
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
			step "$1 did not stop within 10 s of SIGTERM: SIGKILL"
			kill -9 "$pid" 2>/dev/null || true
			while alive "$pid"; do sleep 0.1; done
		fi
	fi
	rm -f "$f"
}
