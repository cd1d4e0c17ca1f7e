package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"whoami/internal/command"
	"whoami/internal/probe"
	"whoami/internal/registry"
)

// deployment is the manifests with a released image.
type deployment struct {
	image     string // REGISTRY/NAME:TAG, as make release pushed it
	manifests string // the folder of the manifests and their Kustomization
	cluster   string // the cluster's script, to load the image into the nodes
	// namespace, if set, replaces the manifests' own (the tests use one
	// namespace each), and host, if set, is the only Host the HTTPRoute
	// matches.
	namespace, host string
}

// digest asks the registry for the digest of ref's tag (the image index,
// for every platform), and returns the image's repository with it.
func digest(ctx context.Context, ref string) (repo, dgst string, err error) {
	r, err := registry.ParseRef(ref)
	if err != nil {
		return "", "", err
	}
	dgst, err = (&registry.Client{Host: r.Host}).Digest(ctx, r)
	switch {
	case errors.Is(err, registry.ErrNotFound):
		return "", "", fmt.Errorf("%s is not in the registry: run make release", ref)
	case err != nil:
		return "", "", fmt.Errorf("asking the registry at %s: %v (make release pushes the image, make docker-ready starts the registry)", r.Host, err)
	}
	return r.Host + "/" + r.Repo, dgst, nil
}

// overlay writes a kustomization into dir that takes the manifests and
// their route (gateway/) and sets the image to repo@dgst, as a user's
// overlay would.
func overlay(dir, manifests, namespace, host, repo, dgst string) error {
	// Kustomize takes a base by a relative path only.
	abs, err := filepath.Abs(manifests)
	if err != nil {
		return err
	}
	base, err := filepath.Rel(dir, abs)
	if err != nil {
		return err
	}
	k := fmt.Sprintf(`apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - %s
  - %[1]s/gateway
images:
  - name: whoami
    newName: %s
    digest: %s
`, base, repo, dgst)
	if namespace != "" {
		k += "namespace: " + namespace + "\n"
	}
	if host != "" {
		k += `patches:
  - target: {kind: HTTPRoute}
    patch: '[{"op": "add", "path": "/spec/hostnames", "value": ["` + host + `"]}]'
`
	}
	return os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(k), 0o644)
}

// withOverlay resolves the image's digest, writes the overlay that sets it
// and calls f with the overlay's folder and the image by digest.
func withOverlay(ctx context.Context, d deployment, f func(dir, ref string) error) error {
	repo, dgst, err := digest(ctx, d.image)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "whoami-overlay-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if err := overlay(dir, d.manifests, d.namespace, d.host, repo, dgst); err != nil {
		return err
	}
	return f(dir, repo+"@"+dgst)
}

// apply loads the released image into the nodes, applies the manifests
// with it by digest (kubectl apply -k), and returns the image and
// kubectl's warnings.
func (k *kube) apply(ctx context.Context, d deployment) (ref, warnings string, err error) {
	err = withOverlay(ctx, d, func(dir, r string) error {
		ref = r
		// The nodes' loopback is their own: the cluster's script pulls from
		// the registry on this machine into each node, as `kind load` does.
		if _, _, err := k.exec(ctx, command.Cmd{Name: d.cluster, Args: []string{"load", ref}}); err != nil {
			return err
		}
		var out string
		out, warnings, err = k.kubectl(ctx, "apply", "-k", dir)
		if err == nil {
			k.printf("%s\n", out)
		}
		return err
	})
	return ref, warnings, err
}

// replicas returns the count of pods the Deployment is headed for: its own,
// or its autoscaler's minimum if that is more (a Deployment created without
// a count starts with one pod, until the autoscaler's first pass).
func (k *kube) replicas(ctx context.Context) (int, error) {
	n, err := k.count(ctx, "deployment", "jsonpath={.spec.replicas}")
	if err != nil {
		return 0, err
	}
	least, err := k.count(ctx, "horizontalpodautoscaler", "jsonpath={.spec.minReplicas}")
	return max(n, least), err
}

// count reads a number of the object whoami of a kind, 0 if there is none.
func (k *kube) count(ctx context.Context, kind, jsonpath string) (int, error) {
	out, err := k.kubectlOut(ctx, "get", kind, "whoami", "--ignore-not-found", "-o", jsonpath)
	if err != nil || out == "" {
		return 0, err
	}
	n, err := strconv.Atoi(out)
	if err != nil {
		return 0, fmt.Errorf("the %s's count: %q", kind, out)
	}
	return n, nil
}

// waitServing waits until the Deployment's rollout is complete and both the
// Service and the front door answer from as many serving pods as the
// Deployment wants: right after the Deployment is available, kube-proxy may
// not have its rules yet, nor the front door its route.
func (k *kube) waitServing(ctx context.Context) ([]pod, error) {
	if _, err := k.kubectlOut(ctx, "rollout", "status", "deployment/whoami", "--timeout", "3m"); err != nil {
		return nil, err
	}
	want, err := k.replicas(ctx)
	if err != nil {
		return nil, err
	}
	ts, err := k.targets(ctx)
	if err != nil {
		return nil, err
	}
	var ps []pod
	seen := make([]map[string]bool, len(ts)) // by target, the pods that answered
	for i := range seen {
		seen[i] = map[string]bool{}
	}
	err = probe.Until(ctx, 2*time.Minute, fmt.Sprintf("the Service and the front door to answer from %d pods", want), func(ctx context.Context) (bool, error) {
		var err error
		if ps, err = k.pods(ctx); err != nil {
			return false, err
		}
		ps = serving(ps)
		all := len(ps) == want
		for i, t := range ts {
			counts, _ := probe.CountAs(ctx, t.url, t.host, 3)
			for name := range counts {
				seen[i][name] = true
			}
			for _, p := range ps {
				all = all && seen[i][p.Name]
			}
		}
		return all, nil
	})
	return ps, err
}

// demo deploys the released image and shows that every pod answers
// through the Service.
func demo(ctx context.Context, k *kube, d deployment, n int) error {
	k.printf("==> kubectl apply -k (the manifests of %s, with %s by digest)\n", d.manifests, d.image)
	t0 := time.Now()
	ref, warnings, err := k.apply(ctx, d)
	if err != nil {
		return err
	}
	if warnings != "" {
		k.printf("%s\n", warnings)
	}
	ps, err := k.waitServing(ctx)
	if err != nil {
		return err
	}
	// When the Deployment was already there, apply may have started a
	// rollout (it removes the restartedAt annotation of make k8s-rollout):
	// the old pods still answer during their preStop wait. Count once they
	// are gone, so that every answer comes from a pod listed below.
	if err := k.waitOnly(ctx, ps); err != nil {
		return err
	}
	url := k.frontDoor
	k.printf("==> %d pods Ready and answering %.1f s after kubectl apply; image %s\n", len(ps), time.Since(t0).Seconds(), ref)
	k.printf("==> %d requests to %s (the front door: Traefik, through the Gateway API HTTPRoute)\n\n", n, url)
	counts, failed := probe.Count(ctx, url, n)
	printPods(k.out, ps, counts)
	known := 0
	for _, p := range ps {
		known += counts[p.Name]
	}
	if other := n - failed - known; other > 0 {
		k.printf("%-24s %-8s %-12s %-12s %d\n", "(not a pod)", "", "", "", other)
	}
	nodes := byNode(ps)
	k.printf("\n%d requests: %d answered by the %d pods on %d nodes, %d failed.\n", n, known, len(ps), len(nodes), failed)
	k.printf("whoami keeps running: curl %s, make k8s-rollout, make k8s-drain, make k8s-down to stop the cluster.\n", url)
	k.printf("(eval \"$(make -s k8s-env)\" sets WHOAMI_URL to that address, and kubectl for the cluster.)\n")
	if known != n {
		return fmt.Errorf("%d of %d requests were not answered by a pod of the Deployment", n-known, n)
	}
	return nil
}

// rolloutUnderLoad restarts every pod (kubectl rollout restart) while a load
// runs, and waits until the old pods are gone. It returns the old pods, how
// long until the new ones served, and until the old ones were gone.
func (k *kube) rolloutUnderLoad(ctx context.Context) (old []pod, serving, gone time.Duration, err error) {
	if old, err = k.pods(ctx); err != nil {
		return nil, 0, 0, err
	}
	t0 := time.Now()
	if _, err := k.kubectlOut(ctx, "rollout", "restart", "deployment/whoami"); err != nil {
		return nil, 0, 0, err
	}
	if _, err := k.waitServing(ctx); err != nil {
		return nil, 0, 0, err
	}
	serving = time.Since(t0)
	// The old pods still serve during their preStop wait, then shut down:
	// keep counting until they are gone.
	err = k.waitGone(ctx, old)
	return old, serving, time.Since(t0), err
}

// waitOnly waits until the pods of the namespace are exactly ps.
func (k *kube) waitOnly(ctx context.Context, ps []pod) error {
	return probe.Until(ctx, 3*time.Minute, fmt.Sprintf("pods other than %v to be gone", names(ps)), func(ctx context.Context) (bool, error) {
		now, err := k.pods(ctx)
		return slices.Equal(names(now), names(ps)), err
	})
}

// waitGone waits until none of ps exists any more.
func (k *kube) waitGone(ctx context.Context, ps []pod) error {
	return probe.Until(ctx, 3*time.Minute, fmt.Sprintf("pods %v to be gone", names(ps)), func(ctx context.Context) (bool, error) {
		now, err := k.pods(ctx)
		return !slices.ContainsFunc(now, func(p pod) bool { return slices.Contains(names(ps), p.Name) }), err
	})
}

// load is the clients of one target.
type load struct {
	target
	*probe.Load
}

// loads are the same clients on each target.
type loads []load

// startLoads starts o.Clients clients on each target, each request on a new
// connection, so that kube-proxy chooses a pod for each.
func (k *kube) startLoads(ctx context.Context, o probe.Options) (loads, error) {
	ts, err := k.targets(ctx)
	if err != nil || o.Clients == 0 {
		return nil, err
	}
	var ls loads
	o.NewConnections = true
	for _, t := range ts {
		o.Host = t.host
		ls = append(ls, load{t, probe.Start(ctx, t.url, o)})
	}
	return ls, nil
}

func (ls loads) Stop() {
	for _, l := range ls {
		l.Stop()
	}
}

// Bodies are the answers of every target, by body.
func (ls loads) Bodies() map[string]int {
	m := map[string]int{}
	for _, l := range ls {
		for b, n := range l.Bodies() {
			m[b] += n
		}
	}
	return m
}

func rollout(ctx context.Context, k *kube, clients int) error {
	ls, err := k.startLoads(ctx, probe.Options{Clients: clients})
	if err != nil {
		return err
	}
	defer ls.Stop()
	k.printf("==> kubectl rollout restart deployment/whoami, while %d clients load the Service and %d the front door\n", clients, clients)
	old, took, gone, err := k.rolloutUnderLoad(ctx)
	if err != nil {
		return err
	}
	ls.Stop()
	ps, err := k.pods(ctx)
	if err != nil {
		return err
	}
	k.printf("rollout restart of %d pods: %.1f s to %d new pods Ready and serving; the old ones gone after %.1f s\n\n",
		len(old), took.Seconds(), len(serving(ps)), gone.Seconds())
	for i := range old {
		old[i].Gone = true
	}
	printPods(k.out, append(old, ps...), ls.Bodies())
	k.printf("\n")
	return reportLoad(k, ls, clients)
}

// reportLoad prints the counts of each load and fails if a request failed.
func reportLoad(k *kube, ls loads, clients int) error {
	if len(ls) == 0 {
		k.printf("no requests (-clients 0)\n")
		return nil
	}
	failed := 0
	for _, l := range ls {
		k.printf("meanwhile %d clients through %s (%s) sent ", clients, l.name, l.url)
		if k.out != nil {
			l.Report(k.out)
		}
		_, f := l.Counts()
		failed += f
	}
	if failed > 0 {
		return fmt.Errorf("%d requests failed", failed)
	}
	return nil
}
