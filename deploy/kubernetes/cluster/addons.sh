# shellcheck shell=bash
# What users run on a cluster besides Kubernetes: its DNS (CoreDNS), a
# Gateway API front door (Traefik) and its resource metrics (metrics-server,
# for kubectl top and the autoscaler). Sourced by cluster.sh.
# shellcheck disable=SC2154 # the settings: settings.sh, which cluster.sh sources first

# module_dir DIR MODULE: where Go keeps MODULE, as DIR/go.mod requires it
# (downloaded if it is not there).
module_dir() { (cd "$here/$1" && go mod download -json "$2" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p'); }

# start_addons: CoreDNS behind kube-dns, and Traefik behind the Gateway "web",
# with the resource definitions of the Gateway API and of Traefik from the
# very modules Traefik was built with.
start_addons() {
	step "cluster DNS: CoreDNS $coredns_version behind kube-dns ($dns_ip); front door: Traefik $traefik_version, Gateway web, port $node_port of each node"
	local image gateway_api traefik
	for image in "$coredns_image" "$traefik_image" "$metrics_server_image"; do load "$image"; done
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
	start_metrics
}

# start_metrics: metrics-server behind the Metrics API, its serving
# certificate from the cluster's CA, which the APIService checks.
start_metrics() {
	step "resource metrics: metrics-server $metrics_server_version behind metrics.k8s.io (kubectl top, the autoscaler)"
	kubectl -n kube-system create secret tls metrics-server-tls \
		--cert "$pki/metrics-server.crt" --key "$pki/metrics-server.key" >/dev/null
	template "$here/metrics-server/metrics-server.yaml" "$state/metrics-server.yaml" \
		IMAGE="$metrics_server_image" CA_BUNDLE="$(base64 -w0 "$pki/ca.crt")"
	kubectl apply -f "$state/metrics-server.yaml" >/dev/null
	kubectl -n kube-system rollout status deployment/metrics-server --timeout 120s >/dev/null
	kubectl wait --for condition=Available apiservice/v1beta1.metrics.k8s.io --timeout 60s >/dev/null
}

# front_door: the URL of whoami through the front door from this machine: the
# Traefik of the node that carries the route into the cluster.
front_door() { printf 'http://%s:%s/whoami' "${node_ip[$tunnel_node]}" "$node_port"; }
