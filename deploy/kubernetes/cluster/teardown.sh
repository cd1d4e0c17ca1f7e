# shellcheck shell=bash
# down: everything up started stopped and everything it made removed, the
# kernel parameters it changed put back, and a check that nothing is left.
# Sourced by cluster.sh.
# shellcheck disable=SC2154 # the settings: settings.sh, which cluster.sh sources first

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
		step "kernel parameter $key: $(sysctl -n "$key" 2>/dev/null | tr '\t' ' ') -> $value, as up found it"
		sysctl -qw "$key=$value" || true
	done < <(comm -23 "$state/sysctl-before" <(kernel_parameters))
	kernel_left=$(comm -3 "$state/sysctl-before" <(kernel_parameters) | sed 's/^\t/  now:    /; t; s/^/  before: /')
}
kernel_left='' # what restore_kernel_parameters could not put back

down() {
	[ "$(id -u)" = 0 ] || fail "removing the cluster needs root: sudo make k8s-down"
	local node
	if [ -r "$admin" ] && [ -x "$bin/kubectl" ] && kubectl get --raw /readyz --request-timeout 5s >/dev/null 2>&1; then
		# Pods first, while the kubelets run: each one's CNI teardown removes
		# its address and its rules. Cordoned nodes take no replacements.
		step "cordon the nodes and delete every pod"
		kubectl cordon "${nodes[@]}" >/dev/null 2>&1 || true
		kubectl delete pods --all --all-namespaces --grace-period 1 --wait --timeout 60s >/dev/null 2>&1 || true
	fi
	step "stop the processes"
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
	# The registry's bridge, and the connections its forks still carry.
	stop registry-bridge
	pkill -f "^socat UNIX-LISTEN:$state/registry/" 2>/dev/null || true

	step "remove mounts, network namespaces, bridge, firewall rule, cgroups and $state"
	local made=()
	[ ! -r "$state/host-paths" ] || mapfile -t made <"$state/host-paths"
	if [ -d "$state" ]; then
		awk -v s="$state/" 'index($2, s) == 1 { print $2 }' /proc/mounts | sort -r | xargs -r -n1 umount -l
	fi
	for node in "${nodes[@]}"; do
		# The node's veth first: deleting one end removes the pair at once,
		# where deleting the namespace leaves the kernel to remove it later
		# (with its kernel parameters, which the check below would find).
		! ip link show "$(netns "$node")" >/dev/null 2>&1 || ip link delete "$(netns "$node")"
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
	# Any other CNI result for a sandbox of this cluster's, such as the
	# loopback of a DaemonSet's pod made again on a cordoned node while
	# down deleted the pods.
	{ grep -lF "\"sandbox\":\"$state/" /var/lib/cni/results/* 2>/dev/null || true; } | xargs -r rm -f
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
		ip link show "$(netns "$node")" >/dev/null 2>&1 && left+=("veth $(netns "$node")")
		for d in $(cgroup_dirs "$node"); do [ ! -d "$d" ] || left+=("$d"); done
	done
	iptables -S FORWARD | grep -q whoami-kubernetes && left+=("iptables rule in FORWARD")
	pgrep -f "$state/" >/dev/null && left+=("processes: $(pgrep -f "$state/" | tr '\n' ' ')")
	[ -z "$kernel_left" ] || left+=("kernel parameters that differ from before up:"$'\n'"$kernel_left")
	[ ${#left[@]} = 0 ] || fail "left after down: ${left[*]}"
	step "nothing left of the cluster"
}
