# shellcheck shell=bash
# The cluster's network: a bridge on the host, a network namespace per node
# with a veth on it, routes to the pods and to the Service range; and the
# partition of a node (its link down). Sourced by cluster.sh.
# shellcheck disable=SC2154 # the settings: settings.sh, which cluster.sh sources first

make_network() {
	step "network: bridge $bridge ($host_ip), a namespace per node, routes to the pods and to the Service range"
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

# partition NODE / heal NODE: cut the node off the others and the control
# plane (its link to the bridge down), or join it again.
link() {
	if [ $# != 2 ] || [ -z "${node_ip[$2]:-}" ]; then
		fail "usage: cluster.sh partition|heal NODE (one of ${nodes[*]})"
	fi
	[ "$2" != "$tunnel_node" ] || [ "$1" = up ] || fail "$2 carries the route to the Service range: partition another node"
	ip link set "$(netns "$2")" "$1"
}
