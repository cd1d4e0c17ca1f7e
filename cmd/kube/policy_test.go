//go:build cluster

package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"whoami/internal/command"
	"whoami/internal/dockercli"
	"whoami/internal/facts"
	"whoami/internal/probe"
	"whoami/internal/registry"
)

// The image policy (deploy/kubernetes/cluster/policy-controller), tried as
// an attacker would try it. The invariant: in a namespace that opts in (the
// tests' namespaces inherit the label from the manifests), a workload runs
// an image only if a signature of the release key, found next to that image
// in its own repository, verifies for that image's digest; whatever the
// image is called, whatever else is attached to it, and when the webhook
// cannot answer, nothing new runs. The released image itself is admitted:
// every other cluster test deploys it.

// runCosign runs cosign in dir. The keys' password is COSIGN_PASSWORD's
// (the release key's, if it has one; the same for keys made here), so that
// cosign never asks for one.
func runCosign(t *testing.T, ctx context.Context, dir string, args ...string) string {
	t.Helper()
	c := command.Cmd{Name: "cosign", Args: args, Dir: dir, Env: []string{"COSIGN_PASSWORD=" + os.Getenv("COSIGN_PASSWORD")}}
	out, _, err := command.Exec{Timeout: 2 * time.Minute}.Run(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// copyImage copies src alone (none of the signatures next to it) to a
// repository of its own in the project's registry, and returns the copy by
// tag and by digest: the same bytes as src, so the same digest.
func copyImage(t *testing.T, ctx context.Context, src string) (tagged, byDigest string) {
	t.Helper()
	tagged = registryHost + "/whoami-k8s-test-copy-" + dockercli.RandomName() + ":copy"
	if _, _, err := (command.Exec{Timeout: 2 * time.Minute}).Run(ctx, command.Cmd{Name: "docker", Args: []string{"buildx", "imagetools", "create", "--tag", tagged, src}}); err != nil {
		t.Fatalf("copying %s: %v", src, err)
	}
	repo, dgst, err := digest(ctx, tagged)
	if err != nil {
		t.Fatal(err)
	}
	return tagged, repo + "@" + dgst
}

// admit applies the manifests with image in a namespace of the test's own.
func admit(t *testing.T, ctx context.Context, image string) (*kube, error) {
	t.Helper()
	k := newKube()
	t.Cleanup(func() { removeNamespace(t, k) })
	d := k.deployment()
	d.image = image
	_, _, err := k.apply(ctx, d)
	return k, err
}

// refused wants image refused by the policy's webhook, naming the policy
// and reason, and nothing of it in the namespace: no Deployment, no
// ReplicaSet, no pod.
func refused(t *testing.T, ctx context.Context, image, reason string) {
	t.Helper()
	k, err := admit(t, ctx, image)
	t.Logf("kubectl apply -k with %s: %v", image, err)
	for _, want := range []string{`admission webhook "policy.sigstore.dev" denied the request`, "failed policy: whoami-release-key", reason} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("applying the manifests with %s: %v; want the webhook's refusal, with %q", image, err, want)
		}
	}
	if out, err := k.kubectlOut(ctx, "get", "deployments,replicasets,pods", "-o", "name"); err != nil || out != "" {
		t.Errorf("in %s after the refusal: %q %v; want nothing", k.namespace, out, err)
	}
}

func TestAnUnsignedCopyOfTheReleaseIsRefused(t *testing.T) {
	ctx := context.Background()
	tagged, _ := copyImage(t, ctx, released)
	refused(t, ctx, tagged, "no signatures found")
}

func TestAnImageSignedWithAnotherKeyIsRefused(t *testing.T) {
	ctx := context.Background()
	tagged, byDigest := copyImage(t, ctx, released)
	dir := t.TempDir()
	runCosign(t, ctx, dir, "generate-key-pair", "--output-key-prefix", "other")
	runCosign(t, ctx, dir, "sign", "--key", "other.key", "--tlog-upload=false", "--yes", byDigest)
	// The copy carries a signature that verifies, with the other key.
	runCosign(t, ctx, dir, "verify", "--key", "other.pub", "--insecure-ignore-tlog=true", byDigest)
	refused(t, ctx, tagged, "no matching signatures")
}

// The release's own signature, taken from its repository and attached to
// other images: a signature says which digest it is for, and its payload
// cannot be changed to say another.
func TestTheReleaseSignatureOnAnotherImageIsRefused(t *testing.T) {
	ctx := context.Background()
	repo, index, err := digest(ctx, released)
	if err != nil {
		t.Fatal(err)
	}
	var sig struct{ Base64Signature, Payload string }
	if err := json.Unmarshal([]byte(strings.SplitN(runCosign(t, ctx, "", "download", "signature", repo+"@"+index), "\n", 2)[0]), &sig); err != nil {
		t.Fatal(err)
	}
	payload, err := base64.StdEncoding.DecodeString(sig.Payload)
	if err != nil {
		t.Fatal(err)
	}
	// Another image: the release's linux/amd64 image alone, not its index
	// (its digest is the image manifest's; it runs on these nodes).
	host, path, _ := strings.Cut(repo, "/")
	m, _, err := (&registry.Client{Host: host}).Manifest(ctx, path, index)
	if err != nil {
		t.Fatal(err)
	}
	amd64 := ""
	for _, d := range m.Manifests {
		if d.Platform != nil && d.Platform.String() == "linux/amd64" {
			amd64 = d.Digest
		}
	}
	if amd64 == "" {
		t.Fatalf("no linux/amd64 image in %s: %+v", released, m.Manifests)
	}
	attach := func(t *testing.T, payload []byte, image string) {
		t.Helper()
		dir := t.TempDir()
		for name, b := range map[string][]byte{"payload.json": payload, "signature": []byte(sig.Base64Signature)} {
			if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		runCosign(t, ctx, dir, "attach", "signature", "--payload", "payload.json", "--signature", "signature", image)
	}

	t.Run("attached to a copy of the index, as it is, it is admitted", func(t *testing.T) {
		// What the refusals below are measured against: the same attach,
		// on the very digest the signature is for.
		tagged, byDigest := copyImage(t, ctx, released)
		attach(t, payload, byDigest)
		k, err := admit(t, ctx, tagged)
		if err != nil {
			t.Fatalf("the release's signature attached to a copy of the release: %v", err)
		}
		if _, err := k.waitServing(ctx); err != nil {
			t.Error(err)
		}
	})
	t.Run("attached to another image, as it is, it is refused", func(t *testing.T) {
		tagged, byDigest := copyImage(t, ctx, repo+"@"+amd64)
		attach(t, payload, byDigest)
		refused(t, ctx, tagged, "no matching signatures")
	})
	t.Run("its payload altered to name another image, it is refused", func(t *testing.T) {
		tagged, byDigest := copyImage(t, ctx, repo+"@"+amd64)
		altered := strings.ReplaceAll(string(payload), index, amd64)
		if altered == string(payload) {
			t.Fatalf("the payload does not name %s: %s", index, payload)
		}
		attach(t, []byte(altered), byDigest)
		refused(t, ctx, tagged, "invalid signature")
	})
}

// With the webhook down, the policy fails closed: nothing new runs in the
// namespace, and the pods that run keep serving.
func TestWithTheWebhookDownNewPodsAreRefusedAndOldOnesServe(t *testing.T) {
	ctx := context.Background()
	k, ps := deploy(t, ctx)
	webhook := &kube{namespace: "cosign-system"}
	scale := func(n string) error {
		_, err := webhook.kubectlOut(ctx, "scale", "deployment/webhook", "--replicas", n)
		return err
	}
	replicas, err := webhook.kubectlOut(ctx, "get", "deployment/webhook", "-o", "jsonpath={.spec.replicas}")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := scale(replicas); err != nil {
			t.Errorf("the webhook back: %v", err)
		}
		if _, err := webhook.kubectlOut(ctx, "rollout", "status", "deployment/webhook", "--timeout", "2m"); err != nil {
			t.Errorf("the webhook back: %v", err)
		}
	})
	l := startLoads(t, ctx, k, probe.Options{Clients: 2})
	if err := scale("0"); err != nil {
		t.Fatal(err)
	}
	// Not the webhook's lame-duck wait: it is gone either way.
	webhook.kubectlOut(ctx, "delete", "pod", "-l", "role=webhook", "--grace-period", "1", "--wait=false")
	if _, err := webhook.kubectlOut(ctx, "wait", "--for=delete", "pod", "-l", "role=webhook", "--timeout", "2m"); err != nil {
		t.Fatal(err)
	}

	t.Run("a new Deployment is refused", func(t *testing.T) {
		_, err := admit(t, ctx, released)
		if err == nil || !strings.Contains(err.Error(), `failed calling webhook "policy.sigstore.dev"`) {
			t.Errorf("applying the manifests with the webhook down: %v; want the API server's refusal, failed calling the webhook", err)
		}
	})
	t.Run("a pod deleted is not replaced", func(t *testing.T) {
		if _, err := k.kubectlOut(ctx, "delete", "pod", ps[0].Name, "--wait=false"); err != nil {
			t.Fatal(err)
		}
		// The ReplicaSet tries to replace it, and says why it cannot.
		var out string
		for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline) && out == ""; time.Sleep(time.Second) {
			out, _ = k.kubectlOut(ctx, "get", "events", "--field-selector", "reason=FailedCreate", "-o", "jsonpath={.items[*].message}")
		}
		if !strings.Contains(out, `failed calling webhook "policy.sigstore.dev"`) {
			t.Errorf("FailedCreate events: %q; want the webhook that could not be called", out)
		}
		now, err := k.pods(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range now {
			if !slices.Contains(names(ps), p.Name) {
				t.Errorf("pod %s was created with the webhook down (before: %v)", p.Name, names(ps))
			}
		}
	})
	l.Stop()
	noFailures(t, l)
}

// An image that no policy names, from anywhere but the project's registry,
// is denied before anything is fetched.
func TestAnImageNoPolicyNamesIsRefused(t *testing.T) {
	ctx := context.Background()
	_, index, err := digest(ctx, released)
	if err != nil {
		t.Fatal(err)
	}
	k := newKube()
	t.Cleanup(func() { removeNamespace(t, k) })
	if _, err := k.kubectlOut(ctx, "create", "namespace", k.namespace); err != nil {
		t.Fatal(err)
	}
	if _, err := k.kubectlOut(ctx, "label", "namespace", k.namespace, "policy.sigstore.dev/include=true"); err != nil {
		t.Fatal(err)
	}
	// An address nothing serves: the refusal cannot come from a pull.
	image := "127.0.0.2:5000/whoami@" + index
	_, err = k.kubectlOut(ctx, "run", "elsewhere", "--image", image, "--restart", "Never")
	if err == nil || !strings.Contains(err.Error(), "denied the request") || !strings.Contains(err.Error(), "no matching policies") {
		t.Errorf("kubectl run with %s: %v; want the webhook's refusal: no matching policies", image, err)
	}
}

// The policy is the project's: its key is the release key, and its images
// the project's registry; anything else is denied.
func TestThePolicyNamesTheReleaseKeyAndTheRegistry(t *testing.T) {
	ctx := context.Background()
	env, err := facts.Load("../..")
	if err != nil {
		t.Fatal(err)
	}
	pub, err := os.ReadFile(strings.TrimSuffix(env["SIGNING_KEY"], ".key") + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	system := &kube{namespace: "cosign-system"}
	key, err := system.kubectlOut(ctx, "get", "secret", "signing-key", "-o", `jsonpath={.data.cosign\.pub}`)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := base64.StdEncoding.DecodeString(key); string(got) != string(pub) {
		t.Errorf("the policy's key:\n%s\nwant the release key's public half:\n%s", got, pub)
	}
	glob, err := system.kubectlOut(ctx, "get", "clusterimagepolicy", "whoami-release-key", "-o", "jsonpath={.spec.images[*].glob}")
	if err != nil || glob != env["REGISTRY"]+"/**" {
		t.Errorf("the policy's images: %q (%v), want %s/**", glob, err, env["REGISTRY"])
	}
	deny, err := system.kubectlOut(ctx, "get", "configmap", "config-policy-controller", "-o", "jsonpath={.data.no-match-policy}")
	if err != nil || deny != "deny" {
		t.Errorf("no-match-policy: %q (%v), want deny", deny, err)
	}
}

// The registry's bridge (cluster.sh's start_registry_bridge) is for the
// webhook's proxy alone: a socket in a folder that only root and the user
// the proxy runs as can enter (no image here runs as that user), and no
// other way into the registry from the cluster's network. Tried as a pod
// would (from each node's network namespace, where the pods' traffic goes
// through) and as the user every image here runs as.
func TestOnlyTheWebhooksProxyReachesTheRegistrysBridge(t *testing.T) {
	ctx := context.Background()
	webhook := &kube{namespace: "cosign-system"}
	uid, err := webhook.kubectlOut(ctx, "get", "deployment/webhook", "-o",
		`jsonpath={.spec.template.spec.initContainers[?(@.name=="registry")].securityContext.runAsUser}`)
	if err != nil || uid == "" || uid == "0" || uid == "65534" {
		t.Fatalf("the proxy's user: %q, %v; want one of its own", uid, err)
	}
	dir := filepath.Join(filepath.Dir(os.Getenv("KUBECONFIG")), "registry") // the cluster's state
	socket := filepath.Join(dir, "registry.sock")
	for _, f := range []struct {
		path string
		mode os.FileMode
	}{{dir, os.ModeDir | 0o700}, {socket, os.ModeSocket | 0o600}} {
		fi, err := os.Stat(f.path)
		if err != nil {
			t.Fatal(err)
		}
		if owner := fi.Sys().(*syscall.Stat_t).Uid; fi.Mode() != f.mode || strconv.Itoa(int(owner)) != uid {
			t.Errorf("%s: %v, owner %d; want %v and the proxy's user %s", f.path, fi.Mode(), owner, f.mode, uid)
		}
	}
	// curl as USER through the socket: the registry's answer, or curl's
	// error.
	get := func(user string) string {
		out, _ := exec.Command("setpriv", "--reuid="+user, "--regid="+user, "--clear-groups", "--",
			"curl", "--noproxy", "*", "-sS", "-m", "10", "-o", "/dev/null", "-w", "%{http_code}", "--unix-socket", socket, "http://registry/v2/").CombinedOutput()
		return string(out)
	}
	if got := get(uid); got != "401" {
		t.Errorf("the proxy's user through the socket: %q; want 401, the registry asking for its credentials", got)
	}
	if got := get("65534"); !strings.Contains(got, "Couldn't connect") {
		t.Errorf("the images' user through the socket: %q; want no connection", got)
	}
	_, port, err := net.SplitHostPort(registryHost)
	if err != nil {
		t.Fatal(err)
	}
	nodes, _ := filepath.Glob("/run/netns/whoami-node-*")
	if len(nodes) != 2 {
		t.Fatalf("network namespaces of the nodes: %v, want 2", nodes)
	}
	for _, ns := range nodes {
		for _, addr := range []string{"10.87.0.1", "127.0.0.1"} {
			out, err := exec.Command("nsenter", "--net="+ns, "curl", "--noproxy", "*", "-sS", "-m", "5", "-o", "/dev/null",
				"-w", "%{http_code}", "http://"+net.JoinHostPort(addr, port)+"/v2/").CombinedOutput()
			if err == nil {
				t.Errorf("from %s, the registry at %s:%s answered %s; want no connection", filepath.Base(ns), addr, port, out)
			}
		}
	}
}
