package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"whoami/internal/command"
	"whoami/internal/probe"
	"whoami/internal/registry"
	"whoami/internal/registry/registrytest"
)

// cluster is a fake cluster for the unit tests of what the tool decides:
// it answers the kubectl commands the tool runs as a two-node cluster
// would, and serves whoami through a Service and a front door (HTTP
// servers of the test), each answering from the pods it routes to. A new
// pod is Ready after a few listings; the front door routes to a Ready pod
// some requests after the Service does; a pod deleted stays Terminating
// for a few listings.
type cluster struct {
	mu        sync.Mutex
	pods      []*fakePod
	next      int
	replicas  int
	hpaMin    int // the autoscaler's minReplicas; 0: no autoscaler
	service   *httptest.Server
	frontDoor *httptest.Server
	turns     [2]int // of the Service, of the front door: round robin
	ran       []string
	failDrain bool
	failLoad  bool // cluster.sh load fails
	stranger  bool // every fourth answer of the front door is not a pod's
	strangers int  // the front door's requests, while stranger
}

type fakePod struct {
	name, node  string
	readyIn     int // listings until Ready
	routeIn     int // requests to the front door until it routes here
	goneIn      int // listings until gone, once terminating
	terminating bool
}

func newCluster(t *testing.T, replicas int) *cluster {
	c := &cluster{replicas: replicas}
	c.service = httptest.NewServer(c.answer(false))
	c.frontDoor = httptest.NewServer(c.answer(true))
	t.Cleanup(c.service.Close)
	t.Cleanup(c.frontDoor.Close)
	return c
}

func (c *cluster) kube() *kube {
	return &kube{namespace: "whoami", run: command.Func(c.run), frontDoor: c.frontDoor.URL + "/whoami"}
}

// add makes a pod, on node if not "", else on the node with fewer. c.mu is
// held.
func (c *cluster) add(node string) *fakePod {
	if node == "" {
		node = "node-1"
		if n := byNodeOf(c.pods); n["node-1"] > n["node-2"] {
			node = "node-2"
		}
	}
	c.next++
	p := &fakePod{name: fmt.Sprintf("whoami-%d", c.next), node: node, readyIn: 2, routeIn: 3, goneIn: 40}
	c.pods = append(c.pods, p)
	return p
}

func byNodeOf(ps []*fakePod) map[string]int {
	m := map[string]int{}
	for _, p := range ps {
		if !p.terminating {
			m[p.node]++
		}
	}
	return m
}

func (c *cluster) answer(frontDoor bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		defer c.mu.Unlock()
		if frontDoor && c.stranger {
			if c.strangers++; c.strangers%4 == 0 {
				fmt.Fprintln(w, "not-a-pod")
				return
			}
		}
		var routed []*fakePod
		for _, p := range c.pods {
			if p.readyIn > 0 {
				continue
			}
			if frontDoor && p.routeIn > 0 {
				p.routeIn--
				continue
			}
			routed = append(routed, p)
		}
		if len(routed) == 0 {
			http.Error(w, "no endpoints", http.StatusServiceUnavailable)
			return
		}
		turn := &c.turns[map[bool]int{false: 0, true: 1}[frontDoor]]
		*turn++
		fmt.Fprintln(w, routed[*turn%len(routed)].name)
	}
}

// run answers one command.
func (c *cluster) run(_ context.Context, cmd command.Cmd) (string, string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	a := cmd.Args
	if cmd.Name == "kubectl" && len(a) > 2 && a[0] == "--namespace" {
		a = a[2:]
	}
	line := strings.Join(a, " ")
	c.ran = append(c.ran, cmd.Name+" "+line)
	switch {
	case cmd.Name == "cluster.sh" && a[0] == "load":
		if c.failLoad {
			return "", "node-1 could not pull", command.Errorf(cmd, fmt.Errorf("exit status 1"), "node-1 could not pull")
		}
		return "", "", nil
	case cmd.Name != "kubectl":
	case line == "get --raw /readyz", line == "rollout status deployment/whoami --timeout 3m":
		return "ok", "", nil
	case strings.HasPrefix(line, "apply -k "):
		if len(c.pods) > 0 { // a change of the pods' template: a rollout
			for _, p := range c.pods {
				p.terminating = true
			}
		}
		for range c.replicas {
			c.add("")
		}
		return "deployment.apps/whoami configured", "", nil
	case line == "get deployment whoami --ignore-not-found -o jsonpath={.spec.replicas}":
		return fmt.Sprint(c.replicas), "", nil
	case line == "get horizontalpodautoscaler whoami --ignore-not-found -o jsonpath={.spec.minReplicas}":
		if c.hpaMin == 0 {
			return "", "", nil
		}
		return fmt.Sprint(c.hpaMin), "", nil
	case strings.HasPrefix(line, "get service whoami"):
		return strings.TrimPrefix(c.service.URL, "http://"), "", nil
	case line == "get pods -l app.kubernetes.io/name=whoami -o json":
		return c.list(), "", nil
	case line == "rollout restart deployment/whoami":
		for _, p := range c.pods {
			p.terminating = true
		}
		for range c.replicas {
			c.add("")
		}
		return "restarted", "", nil
	case strings.HasPrefix(line, "drain "):
		if c.failDrain {
			fmt.Fprintln(cmd.Stream, "error: cannot evict pod as it would violate the pod's disruption budget")
			return "", "", command.Errorf(cmd, fmt.Errorf("exit status 1"), "error: cannot evict pod")
		}
		other := map[string]string{"node-1": "node-2", "node-2": "node-1"}[a[1]]
		for _, p := range slices.Clone(c.pods) {
			if p.node == a[1] && !p.terminating {
				p.terminating = true
				c.add(other)
			}
		}
		return "", "", nil
	case strings.HasPrefix(line, "uncordon "):
		return "", "", nil
	}
	return "", "unknown", command.Errorf(cmd, fmt.Errorf("exit status 1"), "the fake cluster does not know "+line)
}

// list is kubectl get pods -o json; each listing brings pods closer to
// Ready, or to gone. c.mu is held.
func (c *cluster) list() string {
	type item struct {
		Metadata struct {
			Name              string     `json:"name"`
			DeletionTimestamp *time.Time `json:"deletionTimestamp,omitempty"`
		} `json:"metadata"`
		Spec struct {
			NodeName string `json:"nodeName"`
		} `json:"spec"`
		Status struct {
			Conditions []map[string]string `json:"conditions"`
		} `json:"status"`
	}
	var items []item
	c.pods = slices.DeleteFunc(c.pods, func(p *fakePod) bool { return p.terminating && p.goneIn <= 0 })
	for _, p := range c.pods {
		var it item
		it.Metadata.Name, it.Spec.NodeName = p.name, p.node
		if p.terminating {
			p.goneIn--
			now := time.Now()
			it.Metadata.DeletionTimestamp = &now
		}
		if p.readyIn--; p.readyIn <= 0 {
			it.Status.Conditions = []map[string]string{{"type": "Ready", "status": "True"}}
		}
		items = append(items, it)
	}
	b, _ := json.Marshal(map[string]any{"items": items})
	return string(b)
}

func (c *cluster) has(name string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.ContainsFunc(c.pods, func(p *fakePod) bool { return p.name == name })
}

// waitServing returns once the Deployment's pods answer through both ways
// in, not when they are Ready: the front door routes to a pod later.
func TestWaitServingWaitsForTheFrontDoorToo(t *testing.T) {
	c := newCluster(t, 3)
	c.run(t.Context(), command.Cmd{Name: "kubectl", Args: []string{"apply", "-k", "x"}})
	ps, err := c.kube().waitServing(t.Context())
	if err != nil || len(ps) != 3 {
		t.Fatalf("waitServing = %v, %v; want 3 pods", names(ps), err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range c.pods {
		if p.readyIn > 0 || p.routeIn > 0 {
			t.Errorf("%s: returned before the front door routed to it", p.name)
		}
	}
}

// Created without a count, the Deployment has one pod until the
// autoscaler's first pass: waitServing waits for the autoscaler's minimum.
func TestWaitServingWaitsForTheAutoscalersMinimum(t *testing.T) {
	c := newCluster(t, 1)
	c.hpaMin = 3
	c.run(t.Context(), command.Cmd{Name: "kubectl", Args: []string{"apply", "-k", "x"}})
	go func() { // the autoscaler's pass, a moment later
		time.Sleep(100 * time.Millisecond)
		c.mu.Lock()
		defer c.mu.Unlock()
		for c.replicas = 3; len(c.pods) < 3; {
			c.add("")
		}
	}()
	if ps, err := c.kube().waitServing(t.Context()); err != nil || len(ps) != 3 {
		t.Errorf("waitServing = %v, %v; want the autoscaler's 3 pods", names(ps), err)
	}
}

// A rollout is over when the old pods are gone, not when the new ones
// serve: they answer during their preStop wait.
func TestRolloutWaitsUntilTheOldPodsAreGone(t *testing.T) {
	c := newCluster(t, 3)
	k := c.kube()
	c.run(t.Context(), command.Cmd{Name: "kubectl", Args: []string{"apply", "-k", "x"}})
	if _, err := k.waitServing(t.Context()); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	k.out = &out
	if err := rollout(t.Context(), k, 0); err != nil {
		t.Fatal(err)
	}
	for _, old := range []string{"whoami-1", "whoami-2", "whoami-3"} {
		if c.has(old) {
			t.Errorf("rollout returned while %s was still there", old)
		}
	}
	if !strings.Contains(out.String(), "rollout restart of 3 pods") || !strings.Contains(out.String(), "whoami-1") {
		t.Errorf("the report:\n%s", out.String())
	}
}

// A drain that fails never leaves the node cordoned; without -node, the
// busiest node is drained.
func TestDrainUncordonsTheBusiestNodeEvenWhenItFails(t *testing.T) {
	c := newCluster(t, 3)
	c.run(t.Context(), command.Cmd{Name: "kubectl", Args: []string{"apply", "-k", "x"}})
	c.failDrain = true
	k := c.kube()
	var out strings.Builder
	k.out = &out
	err := drain(t.Context(), k, "", 0)
	if err == nil || !strings.Contains(err.Error(), "cannot evict pod") {
		t.Errorf("drain = %v, want kubectl drain's error", err)
	}
	if !strings.Contains(out.String(), "would violate the pod's disruption budget") {
		t.Errorf("kubectl drain's output did not reach the user:\n%s", out.String())
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !slices.Contains(c.ran, "kubectl drain node-1 --ignore-daemonsets --delete-emptydir-data --timeout 3m") ||
		!slices.Contains(c.ran, "kubectl uncordon node-1") {
		t.Errorf("want node-1 (2 of 3 pods) drained and uncordoned; ran %q", c.ran)
	}
}

// The demo pins the released image by digest, and fails when an answer
// comes from something that is not one of the Deployment's pods.
func TestDemoCountsTheAnswersOfItsPods(t *testing.T) {
	reg := registrytest.New(t, "", "")
	index := reg.Put(t, "whoami", "v1", registry.Manifest{MediaType: "application/vnd.oci.image.index.v1+json"})
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	d := deployment{image: reg.Host + "/whoami:v1", manifests: "../../deploy/kubernetes", cluster: "cluster.sh"}
	for _, stranger := range []bool{false, true} {
		c := newCluster(t, 3)
		c.stranger = stranger
		k := c.kube()
		var out strings.Builder
		k.out = &out
		err := demo(t.Context(), k, d, 12)
		if !stranger && err == nil { // again: the old pods answer until they are gone
			out.Reset()
			err = demo(t.Context(), k, d, 12)
		}
		switch {
		case !stranger && (err != nil || !strings.Contains(out.String(), "12 requests: 12 answered by the 3 pods on 2 nodes, 0 failed.")):
			t.Errorf("demo: %v\n%s", err, out.String())
		case stranger && (err == nil || err.Error() != "3 of 12 requests were not answered by a pod of the Deployment"):
			t.Errorf("demo with a stranger at the front door: %v\n%s", err, out.String())
		}
		if want := "cluster.sh load " + reg.Host + "/whoami@" + index.Digest; !slices.Contains(c.ran, want) {
			t.Errorf("ran %q, want %q", c.ran, want)
		}
	}
	c := newCluster(t, 3)
	c.failLoad = true
	if err := demo(t.Context(), c.kube(), d, 12); err == nil || !strings.Contains(err.Error(), "node-1 could not pull") {
		t.Errorf("demo when the nodes cannot pull the image: %v", err)
	}
	if slices.ContainsFunc(c.ran, func(s string) bool { return strings.HasPrefix(s, "kubectl apply") }) {
		t.Error("the manifests were applied though the image could not be loaded")
	}
}

// One failed request fails a rollout or a drain: a real load against a
// server of the test that fails its fifth request, and only that one.
func TestReportLoadFailsOnOneFailedRequest(t *testing.T) {
	n := 0
	var mu sync.Mutex
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if n++; n == 5 {
			http.Error(w, "no", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "whoami-1")
	}))
	defer s.Close()
	l := probe.Start(t.Context(), s.URL, probe.Options{Clients: 1})
	for total, _ := l.Counts(); total < 10; total, _ = l.Counts() {
		time.Sleep(time.Millisecond)
	}
	l.Stop()
	ls := loads{{target{"the Service", s.URL, ""}, l}}
	var out strings.Builder
	if err := reportLoad(&kube{out: &out}, ls, 1); err == nil || !strings.HasSuffix(err.Error(), "requests failed") {
		t.Errorf("reportLoad = %v, want a failure\n%s", err, out.String())
	}
}
