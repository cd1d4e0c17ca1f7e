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
	for image in "$coredns_image" "$traefik_image" "$metrics_server_image" "$policy_controller_image"; do load "$image"; done
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
	start_policy
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

# start_policy: sigstore's policy-controller, from the very module it was
# built from (its config/, with kustomization.yaml's changes), with the
# registry's credentials and the release key's public half, then the
# project's policy. The webhook must answer before the policy is applied:
# the policy-controller checks policies too, and fails closed.
start_policy() {
	step "image policy: sigstore policy-controller $policy_controller_version; where whoami runs, only images signed by ${SIGNING_KEY%.key}.pub"
	[ -s "${SIGNING_KEY%.key}.pub" ] || fail "no public key ${SIGNING_KEY%.key}.pub to admit images with: run provision/provision.sh release (as root), which makes the key pair"
	local upstream tmp=$state/policy-controller t0 proxy
	t0=$(date +%s.%N)
	proxy=$(registry_proxy_image)
	load "$proxy"
	upstream=$(module_dir ../../../provision/sigstore github.com/sigstore/policy-controller)
	[ -d "$upstream/config" ] || fail "the policy-controller module could not be downloaded: cd provision/sigstore && go mod download"
	rm -rf "$tmp" && mkdir -p "$tmp"
	cp -r "$upstream/config" "$tmp/upstream" && chmod -R u+w "$tmp/upstream"
	cp "$here"/policy-controller/{kustomization,webhook}.yaml "${SIGNING_KEY%.key}.pub" "$tmp/"
	(
		umask 077
		printf '{"auths":{"%s":{"auth":"%s"}}}\n' "$registry" "$(tr -d '\n' <"$registry_credentials/auth" | base64 -w0)" >"$tmp/config.json"
	)
	kubectl kustomize "$tmp" |
		sed -e "s|@IMAGE@|$policy_controller_image|" -e "s|@PROXY_IMAGE@|$proxy|" -e "s|@REGISTRY_SOCKET_DIR@|$state/registry|" |
		kubectl apply -f - >/dev/null
	rm -f "$tmp/config.json"
	kubectl -n cosign-system rollout status deployment/webhook --timeout 120s >/dev/null
	template "$here/policy-controller/clusterimagepolicy.yaml" "$tmp/clusterimagepolicy.yaml" REGISTRY="$registry"
	# Until the webhook has written its certificate into its configurations,
	# the API server cannot call it, and refuses the policy.
	wait_for "the policy-controller to take the policy" 60 kubectl apply -f "$tmp/clusterimagepolicy.yaml"
	step "the policy-controller Ready and the policy applied in $(since "$t0") s"
}

# front_door: the URL of whoami through the front door from this machine: the
# Traefik of the node that carries the route into the cluster.
front_door() { printf 'http://%s:%s/whoami' "${node_ip[$tunnel_node]}" "$node_port"; }
