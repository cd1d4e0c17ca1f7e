// Command kube drives whoami on the project's Kubernetes cluster
// (deploy/kubernetes/cluster): it deploys the released image by digest,
// shows which pod answers through the cluster's front door, and replaces or
// moves the pods under load, through the front door and the Service. It is
// what `make k8s-demo`, `make k8s-rollout` and `make k8s-drain` run, and its
// tests check the cluster with real pods and real requests.
//
//	go run ./cmd/kube demo -image REGISTRY/whoami:v1.2.3   # make k8s-demo: the release of this commit
//	go run ./cmd/kube rollout
//	go run ./cmd/kube drain
//
// It runs the kubectl it finds on PATH with the usual KUBECONFIG, and sends
// requests only to the front door at WHOAMI_URL (a node's address) and to
// the Service's ClusterIP, which the cluster routes from this machine
// (`eval "$(make -s k8s-env)"` sets all three). Every run is bounded in
// requests and in time.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "kube: %v\n", err)
		os.Exit(1)
	}
}

const usage = `Usage: kube demo|rollout|drain [flags]

  demo     deploy the manifests with -image by digest (kubectl apply -k),
           wait for 3 Ready pods, send -n requests through the front door
           (WHOAMI_URL) and print which pod answered how many
  rollout  kubectl rollout restart while -clients clients load the Service
           and as many the front door; fails if a single request failed
  drain    kubectl drain of one node (-node, default the one with the most
           pods) under the same load, then uncordon it and spread the pods
           again with a rollout; fails if a single request failed

Flags:
`

func run(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("kube", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	image := fs.String("image", "", "demo: the released image, REGISTRY/NAME:TAG (make k8s-demo: the one make release pushed)")
	n := fs.Int("n", 30, "demo: how many requests to send")
	clients := fs.Int("clients", 4, "rollout, drain: concurrent clients (0: no load)")
	node := fs.String("node", "", "drain: the node to drain (default: the one running the most pods)")
	namespace := fs.String("namespace", "whoami", "the namespace of the manifests")
	manifests := fs.String("manifests", "deploy/kubernetes", "the folder of the manifests and their Kustomization (and of gateway/, the route)")
	cluster := fs.String("cluster", "deploy/kubernetes/cluster/cluster.sh", "the cluster's script (it loads the image into the nodes)")
	timeout := fs.Duration("timeout", 5*time.Minute, "give up after this long")
	// The command comes first (kube demo -image ...), or after the flags.
	var cmd string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, usage)
			fs.SetOutput(stdout)
			fs.PrintDefaults()
			return nil
		}
		return fmt.Errorf("%v (see kube -h)", err)
	}
	rest := fs.Args()
	if cmd == "" && len(rest) > 0 {
		cmd, rest = rest[0], rest[1:]
	}
	if cmd == "" || len(rest) > 0 {
		return errors.New("want one command, demo, rollout or drain (see kube -h)")
	}
	if *n < 1 || *clients < 0 {
		return errors.New("-n must be at least 1, -clients at least 0")
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	k := &kube{namespace: *namespace, out: stdout, frontDoor: os.Getenv("WHOAMI_URL")}
	switch cmd {
	case "demo", "rollout", "drain":
		if err := k.ping(ctx); err != nil {
			return err
		}
		if k.frontDoor == "" {
			return errors.New("WHOAMI_URL, whoami through the cluster's front door, is not set: eval \"$(make -s k8s-env)\" (the make k8s-* targets set it themselves)")
		}
		switch cmd {
		case "demo":
			if *image == "" {
				return errors.New("demo needs -image REGISTRY/NAME:TAG (make k8s-demo passes the one make release pushed)")
			}
			return demo(ctx, k, deployment{image: *image, manifests: *manifests, cluster: *cluster}, *n)
		case "rollout":
			return rollout(ctx, k, *clients)
		default:
			return drain(ctx, k, *node, *clients)
		}
	default:
		return fmt.Errorf("unknown command %q: want demo, rollout or drain (see kube -h)", cmd)
	}
}
