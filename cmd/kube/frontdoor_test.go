//go:build cluster

package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"whoami/internal/dockercli"
	"whoami/internal/probe"
)

// The cluster as its users run it: names resolved by its DNS, whoami
// reached through a Gateway API front door that retries what it may, and an
// API server that answers no one it does not know.

func TestClusterDNSResolvesTheServiceInAPodAndOnThisMachine(t *testing.T) {
	ctx := context.Background()
	k, _ := deploy(t, ctx)
	ip, err := k.kubectlOut(ctx, "get", "service", "whoami", "-o", "jsonpath={.spec.clusterIP}")
	if err != nil {
		t.Fatal(err)
	}
	fqdn := "whoami." + k.namespace + ".svc.cluster.local"

	t.Run("in a pod", func(t *testing.T) {
		image := resolveImage(t, ctx)
		// The short names go through the pod's search list, as an
		// application's would.
		out := runPod(t, ctx, k, "resolve", image, fqdn, "whoami", "kubernetes.default")
		want := []string{fqdn + " " + ip, "whoami " + ip, "kubernetes.default 10.89.0.1"}
		if got := strings.Split(out, "\n"); !slices.Equal(got, want) {
			t.Errorf("resolve in a pod printed:\n%s\nwant:\n%s", out, strings.Join(want, "\n"))
		}
	})
	t.Run("on this machine", func(t *testing.T) {
		dns, err := (&kube{namespace: "kube-system"}).kubectlOut(ctx, "get", "service", "kube-dns", "-o", "jsonpath={.spec.clusterIP}")
		if err != nil {
			t.Fatal(err)
		}
		r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, net.JoinHostPort(dns, "53"))
		}}
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		addrs, err := r.LookupHost(ctx, fqdn)
		t.Logf("%s from kube-dns at %s: %v %v", fqdn, dns, addrs, err)
		if err != nil || !slices.Equal(addrs, []string{ip}) {
			t.Errorf("%s through kube-dns (%s): %v, %v; want the ClusterIP %s", fqdn, dns, addrs, err, ip)
		}
	})
}

// resolveImage builds ./resolve into an image FROM scratch, pushes it to the
// project's registry, signs it with the release key (the namespace admits
// nothing else), loads it into the nodes, and returns it by digest.
func resolveImage(t *testing.T, ctx context.Context) string {
	t.Helper()
	dir := t.TempDir()
	tagged := registryHost + "/whoami-k8s-test-resolve:" + dockercli.RandomName()
	build := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", dir+"/resolve", "./resolve")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	docker := exec.CommandContext(ctx, "docker", "build", "-q", "-t", tagged, "-f", "-", dir)
	docker.Stdin = strings.NewReader("FROM scratch\nCOPY resolve /resolve\nUSER 65534:65534\nENTRYPOINT [\"/resolve\"]\n")
	for _, cmd := range []*exec.Cmd{build, docker, exec.CommandContext(ctx, "docker", "push", "-q", tagged), exec.CommandContext(ctx, "docker", "image", "rm", tagged)} {
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, out)
		}
	}
	repo, dgst, err := digest(ctx, tagged)
	if err != nil {
		t.Fatal(err)
	}
	ref := repo + "@" + dgst
	runCosign(t, ctx, "", "sign", "--key", signingKey, "--tlog-upload=false", "--yes", ref)
	if out, err := exec.CommandContext(ctx, clusterScript, "load", ref).CombinedOutput(); err != nil {
		t.Fatalf("%s load %s: %v\n%s", clusterScript, ref, err, out)
	}
	return ref
}

// runPod runs a pod of one container with args, as the namespace's Pod
// Security ("restricted") allows, and returns its output once it has
// succeeded.
func runPod(t *testing.T, ctx context.Context, k *kube, name, image string, args ...string) string {
	t.Helper()
	quoted := make([]string, len(args))
	for i, a := range args {
		quoted[i] = fmt.Sprintf("%q", a)
	}
	pod := `{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "` + name + `"}, "spec": {
		"restartPolicy": "Never", "automountServiceAccountToken": false,
		"securityContext": {"runAsNonRoot": true, "runAsUser": 65534, "seccompProfile": {"type": "RuntimeDefault"}},
		"containers": [{"name": "` + name + `", "image": "` + image + `", "imagePullPolicy": "IfNotPresent",
			"args": [` + strings.Join(quoted, ", ") + `],
			"securityContext": {"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true, "capabilities": {"drop": ["ALL"]}}}]}}`
	if _, warnings, err := k.kubectlIn(ctx, pod, "create", "-f", "-"); err != nil || warnings != "" {
		t.Fatalf("kubectl create pod %s: %v %s", name, err, warnings)
	}
	var phase string
	err := probe.Until(ctx, 2*time.Minute, "pod "+name+" to finish", func(ctx context.Context) (bool, error) {
		var err error
		phase, err = k.kubectlOut(ctx, "get", "pod", name, "-o", "jsonpath={.status.phase}")
		return phase == "Succeeded" || phase == "Failed", err
	})
	logs, _ := k.kubectlOut(ctx, "logs", name)
	if err != nil || phase != "Succeeded" {
		t.Fatalf("pod %s: %s %v\n%s", name, phase, err, logs)
	}
	return logs
}

func TestTheAPIServerRefusesAnonymousRequests(t *testing.T) {
	ctx := context.Background()
	k := &kube{namespace: "default"}
	server, err := k.kubectlOut(ctx, "config", "view", "--minify", "-o", "jsonpath={.clusters[0].cluster.server}")
	if err != nil {
		t.Fatal(err)
	}
	ca, err := k.kubectlOut(ctx, "config", "view", "--minify", "--raw", "-o", "jsonpath={.clusters[0].cluster.certificate-authority-data}")
	if err != nil {
		t.Fatal(err)
	}
	pem, err := base64.StdEncoding.DecodeString(ca)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		t.Fatal("no certificate in the kubeconfig's certificate-authority-data")
	}
	// The cluster's CA, but no client certificate: anonymous.
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	for _, path := range []string{"/version", "/healthz", "/livez", "/readyz", "/api/v1/namespaces"} {
		_, code, err := probe.Get(ctx, c, server+path)
		t.Logf("GET %s%s without credentials: %d %v", server, path, code, err)
		if err != nil || code != http.StatusUnauthorized {
			t.Errorf("GET %s without credentials: %d %v; want 401", path, code, err)
		}
	}
}

func TestTheFrontDoorRetriesOnlyIdempotentRequests(t *testing.T) {
	ctx := context.Background()
	k, ps := deploy(t, ctx)
	live, refusing := ps[0], ps[1]
	// A Service of three endpoints: a pod that answers, another on a port
	// where nothing listens (refused), and an address in node-2's pod range
	// that nothing has (the front door's dial time-out), all of them ready
	// as far as the front door knows. The route is moved onto it.
	const dead = "10.88.2.250"
	objects := `{"apiVersion": "v1", "kind": "List", "items": [
		{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "half-dead"},
		 "spec": {"ports": [{"name": "http", "port": 80}]}},
		{"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
		 "metadata": {"name": "half-dead-1", "labels": {"kubernetes.io/service-name": "half-dead", "endpointslice.kubernetes.io/managed-by": "whoami-tests"}},
		 "addressType": "IPv4", "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
		 "endpoints": [{"addresses": ["` + live.IP + `"], "conditions": {"ready": true}}, {"addresses": ["` + dead + `"], "conditions": {"ready": true}}]},
		{"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
		 "metadata": {"name": "half-dead-2", "labels": {"kubernetes.io/service-name": "half-dead", "endpointslice.kubernetes.io/managed-by": "whoami-tests"}},
		 "addressType": "IPv4", "ports": [{"name": "http", "port": 1, "protocol": "TCP"}],
		 "endpoints": [{"addresses": ["` + refusing.IP + `"], "conditions": {"ready": true}}]}]}`
	if _, _, err := k.kubectlIn(ctx, objects, "create", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	// The Service itself, not through a TraefikService: the retries alone,
	// without the passive health check that would drop the dead endpoints.
	patch := `[{"op": "replace", "path": "/spec/rules/0/backendRefs/0", "value": {"name": "half-dead", "port": 80}},
		{"op": "replace", "path": "/spec/rules/1/backendRefs/0", "value": {"name": "half-dead", "port": 80}}]`
	if _, err := k.kubectlOut(ctx, "patch", "httproute", "whoami", "--type", "json", "-p", patch); err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	send := func(method string) (int, string) {
		req, err := http.NewRequestWithContext(ctx, method, k.frontDoor, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Host = k.host
		resp, err := c.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, strings.TrimSpace(string(b))
	}
	// The route has moved once a POST meets a dead endpoint.
	if err := probe.Until(ctx, time.Minute, "the route to move to the half-dead Service", func(context.Context) (bool, error) {
		code, _ := send(http.MethodPost)
		return code >= 500, nil
	}); err != nil {
		t.Fatal(err)
	}
	codes := map[string]map[int]int{}
	var slowest time.Duration
	// The GETs, then the POSTs: the round robin is shared, and each GET
	// takes as many pods as it needs, so POSTs sent in between would always
	// meet the same ones.
	for _, m := range []string{http.MethodGet, http.MethodPost} {
		for range 30 {
			t0 := time.Now()
			code, body := send(m)
			if m == http.MethodGet {
				slowest = max(slowest, time.Since(t0))
				if code == http.StatusOK && body != live.Name {
					t.Errorf("GET answered by %q, want %s", body, live.Name)
				}
			}
			if codes[m] == nil {
				codes[m] = map[int]int{}
			}
			codes[m][code]++
		}
	}
	t.Logf("30 GET and 30 POST through the front door to a pod, a refused port and an absent address: status codes %v; slowest GET %.2f s", codes, slowest.Seconds())
	if codes["GET"][http.StatusOK] != 30 {
		t.Errorf("GET: %v, want 30 × 200: the retry middleware should send each one on to the live pod", codes["GET"])
	}
	if codes["POST"][http.StatusMethodNotAllowed] == 0 || codes["POST"][http.StatusMethodNotAllowed] == 30 {
		t.Errorf("POST: %v; want some 405 from the live pod and the others failed: a POST is never sent twice", codes["POST"])
	}
}
