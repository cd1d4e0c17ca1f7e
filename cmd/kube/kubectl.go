package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os/exec"
	"slices"
	"strings"
	"time"

	"whoami/internal/command"
)

// kube is kubectl for one namespace, and the ways into its whoami.
type kube struct {
	namespace string
	out       io.Writer // progress lines; nil for none
	// frontDoor is whoami's URL through the cluster's front door (a Gateway)
	// from this machine: WHOAMI_URL, which make -s k8s-env prints. host, if
	// set, is the Host its route matches (the tests route by it, so that
	// they and the demo can share the Gateway).
	frontDoor, host string
	// run runs kubectl and the cluster's script; nil is a process (the
	// unit tests give a fake cluster).
	run command.Runner
}

// exec runs c with k.run.
func (k *kube) exec(ctx context.Context, c command.Cmd) (stdout, stderr string, err error) {
	if k.run == nil {
		return command.Exec{}.Run(ctx, c)
	}
	return k.run.Run(ctx, c)
}

// kubectl runs kubectl with args in the namespace and returns its standard
// output; an error carries what it printed on standard error. Warnings
// (standard error of a command that succeeded) are returned too.
func (k *kube) kubectl(ctx context.Context, args ...string) (stdout, warnings string, err error) {
	return k.kubectlIn(ctx, "", args...)
}

// kubectlIn is kubectl with stdin as its standard input.
func (k *kube) kubectlIn(ctx context.Context, stdin string, args ...string) (stdout, warnings string, err error) {
	stdout, warnings, err = k.exec(ctx, command.Cmd{Name: "kubectl", Args: append([]string{"--namespace", k.namespace}, args...), Stdin: stdin})
	return strings.TrimSpace(stdout), warnings, err
}

// kubectlOut is kubectl's output, its warnings dropped.
func (k *kube) kubectlOut(ctx context.Context, args ...string) (string, error) {
	out, _, err := k.kubectl(ctx, args...)
	return out, err
}

func (k *kube) printf(format string, args ...any) {
	if k.out != nil {
		fmt.Fprintf(k.out, format, args...)
	}
}

// ping fails with what to do when no cluster answers.
func (k *kube) ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := exec.LookPath("kubectl"); err != nil && k.run == nil {
		return fmt.Errorf("no kubectl on PATH: run make k8s-up, then eval \"$(make -s k8s-env)\" (the make k8s-* targets set it themselves)")
	}
	if _, err := k.kubectlOut(ctx, "get", "--raw", "/readyz"); err != nil {
		line, _, _ := strings.Cut(err.Error(), "\n")
		return fmt.Errorf("no cluster answers (%s): run make k8s-up", line)
	}
	return nil
}

// pod is what the tools need of a whoami pod.
type pod struct {
	Name, Node, IP string
	Ready          bool
	Terminating    bool
	Gone           bool   // deleted since it was listed
	Image, ImageID string // the spec's image, and the digest the node runs
	ContainerID    string // without its runtime:// prefix
	Restarts       int
}

// pods lists the whoami pods of the namespace, by name.
func (k *kube) pods(ctx context.Context) ([]pod, error) {
	out, err := k.kubectlOut(ctx, "get", "pods", "-l", "app.kubernetes.io/name=whoami", "-o", "json")
	if err != nil {
		return nil, err
	}
	var list struct {
		Items []struct {
			Metadata struct {
				Name              string
				DeletionTimestamp *time.Time
			}
			Spec struct {
				NodeName   string
				Containers []struct{ Image string }
			}
			Status struct {
				PodIP      string
				Conditions []struct{ Type, Status string }
				// One container: whoami.
				ContainerStatuses []struct {
					ImageID, ContainerID string
					RestartCount         int
				}
			}
		}
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		return nil, fmt.Errorf("kubectl get pods: %v", err)
	}
	ps := make([]pod, 0, len(list.Items))
	for _, it := range list.Items {
		p := pod{Name: it.Metadata.Name, Node: it.Spec.NodeName, IP: it.Status.PodIP, Terminating: it.Metadata.DeletionTimestamp != nil}
		for _, c := range it.Status.Conditions {
			p.Ready = p.Ready || c.Type == "Ready" && c.Status == "True"
		}
		if len(it.Spec.Containers) > 0 {
			p.Image = it.Spec.Containers[0].Image
		}
		if len(it.Status.ContainerStatuses) > 0 {
			cs := it.Status.ContainerStatuses[0]
			p.ImageID, p.Restarts = cs.ImageID, cs.RestartCount
			_, p.ContainerID, _ = strings.Cut(cs.ContainerID, "://")
		}
		ps = append(ps, p)
	}
	slices.SortFunc(ps, func(a, b pod) int { return strings.Compare(a.Name, b.Name) })
	return ps, nil
}

// serving returns the pods that are Ready and not terminating: those the
// Service sends requests to.
func serving(ps []pod) []pod {
	return slices.DeleteFunc(slices.Clone(ps), func(p pod) bool { return !p.Ready || p.Terminating })
}

func names(ps []pod) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.Name
	}
	return out
}

// byNode counts pods by node.
func byNode(ps []pod) map[string]int {
	m := map[string]int{}
	for _, p := range ps {
		m[p.Node]++
	}
	return m
}

// serviceURL is the Service's /whoami at its ClusterIP, which this machine
// reaches through a node (the cluster's route to the Service range).
func (k *kube) serviceURL(ctx context.Context) (string, error) {
	out, err := k.kubectlOut(ctx, "get", "service", "whoami", "-o", "jsonpath={.spec.clusterIP}:{.spec.ports[0].port}")
	if err != nil {
		return "", fmt.Errorf("%v: deploy whoami first (make k8s-demo)", err)
	}
	return "http://" + strings.TrimSuffix(out, ":80") + "/whoami", nil
}

// target is a way into whoami from this machine.
type target struct {
	name      string // for people: "the Service" or "the front door"
	url, host string // host, if set, is the requests' Host
}

// targets are the Service's ClusterIP and the front door.
func (k *kube) targets(ctx context.Context) ([]target, error) {
	url, err := k.serviceURL(ctx)
	if err != nil {
		return nil, err
	}
	return []target{{"the Service", url, ""}, {"the front door", k.frontDoor, k.host}}, nil
}

// printPods writes one line per pod: name, node, address, state, and, if
// counts is not nil, the requests it answered (by hostname: a pod's
// hostname is its name).
func printPods(w io.Writer, ps []pod, counts map[string]int) {
	line := func(name, node, ip, state, requests string) {
		fmt.Fprintln(w, strings.TrimSpace(fmt.Sprintf("%-24s %-8s %-12s %-12s %s", name, node, ip, state, requests)))
	}
	line("pod (hostname)", "node", "IP", "state", map[bool]string{true: "requests"}[counts != nil])
	for _, p := range ps {
		state := "Ready"
		switch {
		case p.Gone:
			state = "gone"
		case p.Terminating:
			state = "Terminating"
		case !p.Ready:
			state = "not ready"
		}
		requests := ""
		if counts != nil {
			requests = fmt.Sprint(counts[p.Name])
		}
		line(p.Name, p.Node, p.IP, state, requests)
	}
}
