# shellcheck shell=bash
# The cluster's certificates (openssl): a CA for the cluster, one for etcd
# and one for the aggregation layer's front proxy, a key and certificate per
# component and node, kubeconfigs that embed them. Sourced by cluster.sh.
# shellcheck disable=SC2154 # the settings: settings.sh, which cluster.sh sources first

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
	step "a CA for this cluster and its certificates ($pki)"
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
	# The aggregation layer: the API server forwards a request for an API it
	# does not serve (metrics.k8s.io) with this client certificate, from a CA
	# of its own, and the user in X-Remote-* headers; metrics-server believes
	# those headers only from a certificate of that CA with this name.
	ca front-proxy-ca whoami-front-proxy-ca
	cert front-proxy-client front-proxy-ca /CN=front-proxy-client clientAuth
	# metrics-server's serving certificate: the API server checks it (the
	# APIService's caBundle) rather than skip the check.
	cert metrics-server ca /CN=metrics-server serverAuth "DNS:metrics-server.kube-system.svc"
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
