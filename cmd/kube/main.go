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
//	go run ./cmd/kube admission -image REGISTRY/whoami:v1.2.3  # make k8s-admission
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
	"io"
	"os"
	"strings"
	"time"

	"whoami/internal/cli"
)

func main() { cli.Main("kube", run) }

const usage = `Usage: kube [flags] demo|rollout|drain|autoscale|admission [flags]

  demo     deploy the manifests with -image by digest (kubectl apply -k),
           wait until the Deployment's pods are Ready, send -n requests through the front door
           (WHOAMI_URL) and print which pod answered how many
  rollout  kubectl rollout restart while -clients clients load the Service
           and as many the front door; fails if a single request failed
  drain    kubectl drain of one node (-node, default the one with the most
           pods) under the same load, then uncordon it and spread the pods
           again with a rollout; fails if a single request failed
  autoscale  a load through the front door that rises until the autoscaler
           adds pods, then stops until it removes them, while paced clients
           load the Service and the front door; prints a line every 5 s,
           draws the run in -svg; fails if a pod came more than 90 s after
           the CPU crossed the target, the count was not back to the
           minimum within the scale-down window and a minute, or a single
           request failed
  admission  -n server-side dry runs of a pod of -image by digest in a
           namespace that opts in to the image policy and -n in one that
           does not, in turns; prints the time each took (min, median, p90,
           max) and what the policy adds

Flags:
`

// validName reports whether s is a name Kubernetes takes for a namespace
// (an RFC 1123 label).
func validName(s string) bool {
	return len(s) > 0 && len(s) <= 63 && strings.Trim(s, "abcdefghijklmnopqrstuvwxyz0123456789-") == "" &&
		s[0] != '-' && s[len(s)-1] != '-'
}

func run(ctx context.Context, args []string, stdout, _ io.Writer) error {
	fs := flag.NewFlagSet("kube", flag.ContinueOnError)
	image := fs.String("image", "", "demo, admission: the released image, REGISTRY/NAME:TAG (make k8s-demo: the one make release pushed)")
	n := fs.Int("n", 30, "demo: how many requests to send; admission: how many dry runs of each kind")
	clients := fs.Int("clients", 4, "rollout, drain: concurrent clients (0: no load)")
	node := fs.String("node", "", "drain: the node to drain (default: the one running the most pods)")
	namespace := fs.String("namespace", "whoami", "the namespace of the manifests")
	manifests := fs.String("manifests", "deploy/kubernetes", "the folder of the manifests and their Kustomization (and of gateway/, the route)")
	cluster := fs.String("cluster", "deploy/kubernetes/cluster/cluster.sh", "the cluster's script (it loads the image into the nodes)")
	maxClients := fs.Int("max-clients", 24, "autoscale: the most clients of the rising load")
	svg := fs.String("svg", "docs/autoscale.svg", "autoscale: where to draw the run")
	timeout := fs.Duration("timeout", 5*time.Minute, "give up after this long (autoscale: 15m)")
	args, err := cli.Parse(fs, args, stdout, usage)
	if err != nil {
		return err
	}
	cmd, _, err := cli.Command(args, 0, "demo", "rollout", "drain", "autoscale", "admission")
	if err != nil {
		return err
	}
	if *n < 1 || *clients < 0 || *maxClients < 2 {
		return cli.Usagef("-n must be at least 1, -clients at least 0, -max-clients at least 2")
	}
	if *timeout <= 0 || !validName(*namespace) {
		return cli.Usagef("-timeout must be more than 0, -namespace a namespace's name")
	}
	if cmd == "autoscale" {
		set := false
		fs.Visit(func(f *flag.Flag) { set = set || f.Name == "timeout" })
		if !set {
			*timeout = 15 * time.Minute
		}
	}
	if (cmd == "demo" || cmd == "admission") && *image == "" {
		return cli.Usagef("%s needs -image REGISTRY/NAME:TAG (make k8s-%s passes the one make release pushed)", cmd, cmd)
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	k := &kube{namespace: *namespace, out: stdout, frontDoor: os.Getenv("WHOAMI_URL")}
	if err := k.ping(ctx); err != nil {
		return err
	}
	if k.frontDoor == "" {
		return errors.New("WHOAMI_URL, whoami through the cluster's front door, is not set: eval \"$(make -s k8s-env)\" (the make k8s-* targets set it themselves)")
	}
	switch cmd {
	case "demo":
		return demo(ctx, k, deployment{image: *image, manifests: *manifests, cluster: *cluster}, *n)
	case "rollout":
		return rollout(ctx, k, *clients)
	case "admission":
		return admission(ctx, k, *image, *n)
	case "autoscale":
		s, err := autoscale(ctx, k, *maxClients)
		if s == nil {
			return err
		}
		if werr := drawTo(*svg, s); werr != nil {
			return errors.Join(err, werr)
		}
		k.printf("the run, drawn: %s\n", *svg)
		return errors.Join(err, s.report(k))
	}
	return drain(ctx, k, *node, *clients)
}
