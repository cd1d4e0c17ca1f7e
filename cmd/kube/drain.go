package main

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"whoami/internal/command"
	"whoami/internal/probe"
)

// busiest returns the node that runs the most of ps (the last by name on a tie).
func busiest(ps []pod) string {
	n := byNode(ps)
	nodes := slices.Sorted(maps.Keys(n))
	best := ""
	for _, node := range nodes {
		if best == "" || n[node] >= n[best] {
			best = node
		}
	}
	return best
}

// watchServing counts the serving pods every 100 ms until stop is called,
// and returns the fewest it saw: what a PodDisruptionBudget must hold.
func (k *kube) watchServing(ctx context.Context) (stop func() int) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	fewest := -1
	wg.Go(func() {
		for ctx.Err() == nil {
			if ps, err := k.pods(ctx); err == nil {
				if n := len(serving(ps)); fewest < 0 || n < fewest {
					fewest = n
				}
			}
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	})
	return func() int {
		cancel()
		wg.Wait()
		return fewest
	}
}

// drainNode runs kubectl drain of node, its output on k.out, and returns
// how long it took and the fewest serving pods seen meanwhile.
func (k *kube) drainNode(ctx context.Context, node string) (took time.Duration, fewest int, err error) {
	stop := k.watchServing(ctx)
	t0 := time.Now()
	_, _, err = k.exec(ctx, command.Cmd{Name: "kubectl", Args: []string{"drain", node, "--ignore-daemonsets", "--delete-emptydir-data", "--timeout", "3m"}, Stream: k.out})
	return time.Since(t0), stop(), err
}

func drain(ctx context.Context, k *kube, node string, clients int) error {
	ps, err := k.pods(ctx)
	if err != nil {
		return err
	}
	if len(ps) == 0 {
		return fmt.Errorf("no whoami pod in namespace %s: deploy it first (make k8s-demo)", k.namespace)
	}
	if node == "" {
		node = busiest(ps)
	}
	k.printf("==> the pods before\n")
	printPods(k.out, ps, nil)
	ls, err := k.startLoads(ctx, probe.Options{Clients: clients})
	if err != nil {
		return err
	}
	defer ls.Stop()
	// Uncordon even if the drain fails: never leave a node unschedulable.
	defer k.kubectlOut(context.WithoutCancel(ctx), "uncordon", node)

	k.printf("\n==> kubectl drain %s, while %d clients load the Service and %d the front door (the budget lets one pod go at a time)\n", node, clients, clients)
	took, fewest, err := k.drainNode(ctx, node)
	if err != nil {
		return err
	}
	if _, err := k.waitServing(ctx); err != nil {
		return err
	}
	ps, err = k.pods(ctx)
	if err != nil {
		return err
	}
	k.printf("\ndrained %s in %.1f s; never fewer than %d pods Ready meanwhile\n", node, took.Seconds(), fewest)
	printPods(k.out, ps, ls.Bodies())

	k.printf("\n==> kubectl uncordon %s, then kubectl rollout restart to spread the pods again\n", node)
	if _, err := k.kubectlOut(ctx, "uncordon", node); err != nil {
		return err
	}
	if _, _, _, err := k.rolloutUnderLoad(ctx); err != nil {
		return err
	}
	ls.Stop()
	if ps, err = k.pods(ctx); err != nil {
		return err
	}
	printPods(k.out, ps, ls.Bodies())
	k.printf("\n")
	return reportLoad(k, ls, clients)
}
