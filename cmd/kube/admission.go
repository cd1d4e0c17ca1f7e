package main

import (
	"context"
	"fmt"
	"slices"
	"time"

	"whoami/internal/dockercli"
)

// admission measures what the image policy adds to the creation of a pod:
// n server-side dry runs (kubectl create --dry-run=server: the API server
// admits the pod, webhooks included, and stores nothing) of a pod of the
// released image by digest, in a namespace that opts in to the policy and
// in one that does not, taken in turns so that both see the same machine.
// Each time includes kubectl's own start, the same on both sides.
func admission(ctx context.Context, k *kube, image string, n int) error {
	repo, dgst, err := digest(ctx, image)
	if err != nil {
		return err
	}
	ref := repo + "@" + dgst
	base := "whoami-admission-" + dockercli.RandomName()
	on, off := &kube{namespace: base + "-on"}, &kube{namespace: base + "-off"}
	defer func() {
		// The namespaces are empty: nothing was stored in them.
		ctx := context.WithoutCancel(ctx)
		for _, ns := range []*kube{on, off} {
			ns.kubectlOut(ctx, "delete", "namespace", ns.namespace, "--ignore-not-found", "--wait=false")
		}
	}()
	for _, ns := range []*kube{on, off} {
		if _, err := ns.kubectlOut(ctx, "create", "namespace", ns.namespace); err != nil {
			return err
		}
	}
	if _, err := on.kubectlOut(ctx, "label", "namespace", on.namespace, "policy.sigstore.dev/include=true"); err != nil {
		return err
	}
	pod := `{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "admission"},
		"spec": {"containers": [{"name": "whoami", "image": "` + ref + `"}]}}`
	create := func(ns *kube) (time.Duration, error) {
		t0 := time.Now()
		_, _, err := ns.kubectlIn(ctx, pod, "create", "--dry-run=server", "-f", "-", "-o", "name")
		return time.Since(t0), err
	}
	k.printf("==> %d server-side dry runs of a pod of %s each in %s (policy on) and %s (off), in turns, after one of each to warm up\n",
		n, ref, on.namespace, off.namespace)
	times := map[*kube][]float64{}
	for i := -1; i < n; i++ {
		order := []*kube{on, off}
		if i%2 != 0 {
			order = []*kube{off, on}
		}
		for _, ns := range order {
			d, err := create(ns)
			if err != nil {
				return fmt.Errorf("creating a pod in %s (dry run): %v", ns.namespace, err)
			}
			if i >= 0 {
				times[ns] = append(times[ns], d.Seconds()*1000)
			}
		}
	}
	k.printf("\n%-8s %8s %8s %8s %8s\n", "policy", "min ms", "median", "p90", "max")
	median := map[*kube]float64{}
	for _, ns := range []*kube{on, off} {
		s := slices.Sorted(slices.Values(times[ns]))
		median[ns] = s[len(s)/2]
		k.printf("%-8s %8.0f %8.0f %8.0f %8.0f\n", map[*kube]string{on: "on", off: "off"}[ns], s[0], median[ns], s[len(s)*9/10], s[len(s)-1])
	}
	k.printf("\nthe policy adds %.0f ms to the median admission of a pod (%d runs each)\n", median[on]-median[off], n)
	return nil
}
