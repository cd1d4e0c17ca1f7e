//go:build e2e

package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"whoami/internal/dockercli"
	"whoami/internal/flood"
	"whoami/internal/probe"
)

// The tests run the real stack of compose.yaml: the whoami image built from
// the repository's Dockerfile, the real HAProxy, Docker's DNS, and real
// requests to the balancer's port published on 127.0.0.1. Each test has a
// Compose project of its own, with ports Docker picks, and removes it.

var (
	image   = "whoami-lbtest-" + dockercli.RandomName() + ":multi"
	lbImage = os.Getenv("LB_IMAGE") // default: compose.yaml's
)

func TestMain(m *testing.M) {
	flood.Main() // when a test's flood.Start runs this binary as the flood
	os.Exit(buildAndRun(m))
}

func buildAndRun(m *testing.M) int {
	fail := func(format string, args ...any) int {
		fmt.Fprintf(os.Stderr, "FAIL: "+format+"\n", args...)
		return 1
	}
	if out, err := exec.Command("docker", "compose", "version").CombinedOutput(); err != nil {
		return fail("the stack cannot be tested: `docker compose version` failed (%v: %s).\n"+
			"Run `make docker-ready` (as root on Debian it installs and starts the engine and the Compose plugin), or start Docker.",
			err, strings.TrimSpace(string(out)))
	}
	s := &stack{dir: "../.."}
	if lbImage == "" {
		out, _ := s.compose(context.Background(), "config", "--images")
		for _, name := range strings.Fields(out) {
			if strings.HasPrefix(name, "haproxy") {
				lbImage = name
			}
		}
	}
	if _, err := s.docker(context.Background(), "image", "inspect", lbImage); err != nil {
		return fail("the balancer's image %q is not in the local image store.\n"+
			"Run `make docker-ready`: it pulls it, or rebuilds it locally when no registry answers.", lbImage)
	}
	if out, err := exec.Command("docker", "build", "-q", "-t", image, "../..").CombinedOutput(); err != nil {
		return fail("docker build: %v\n%s\nIs the golang base image there? `make docker-ready` pulls or rebuilds it.", err, out)
	}
	defer exec.Command("docker", "image", "rm", "-f", image).Run()
	return m.Run()
}

// newStack starts a Compose project of its own with n replicas and returns
// it with the balancer's URL. It is removed when the test ends, and the test
// fails if a container or network of it is left behind.
func newStack(t *testing.T, ctx context.Context, n int) (*stack, string) {
	t.Helper()
	project := "whoami-test-" + dockercli.RandomName()
	s := &stack{dir: "../..", env: []string{
		"COMPOSE_PROJECT_NAME=" + project,
		"WHOAMI_IMAGE=" + image,
		"LB_IMAGE=" + lbImage,
		"LB_PORT=127.0.0.1:0", // a free port, chosen by Docker
		"LB_STATS_PORT=0",
	}}
	t.Cleanup(func() {
		ctx := context.Background()
		if err := s.down(ctx); err != nil {
			t.Errorf("docker compose down: %v", err)
		}
		for _, kind := range []string{"container", "network"} {
			left, err := s.docker(ctx, kind, "ls", "-aq", "--filter", "label=com.docker.compose.project="+project)
			if kind == "network" { // docker network ls has no -a
				left, err = s.docker(ctx, kind, "ls", "-q", "--filter", "label=com.docker.compose.project="+project)
			}
			if err != nil || left != "" {
				t.Errorf("after docker compose down, %ss of %s are left: %q %v", kind, project, left, err)
			}
		}
	})
	if err := s.up(ctx, n); err != nil {
		t.Fatal(err)
	}
	url, err := s.url(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return s, url
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute) // only catches a hang
	t.Cleanup(cancel)
	return ctx
}

func TestThreeReplicasAllAnswer(t *testing.T) {
	ctx := testContext(t)
	s, url := newStack(t, ctx, 3)
	want := hostnames(t, ctx, s)
	if len(want) != 3 {
		t.Fatalf("docker compose ps shows %d replicas, want 3", len(want))
	}
	counts, failed := probe.Count(ctx, url, 30)
	if failed > 0 {
		t.Errorf("%d of 30 requests failed", failed)
	}
	if got := slices.Sorted(maps.Keys(counts)); !slices.Equal(got, want) {
		t.Errorf("30 requests were answered by %v (%v), want exactly the replicas %v", got, counts, want)
	}
}

func TestScaleToFiveAndBackWithoutRestartingTheBalancer(t *testing.T) {
	ctx := testContext(t)
	s, url := newStack(t, ctx, 3)
	lb := func() string {
		out, err := s.compose(ctx, "ps", "-q", "lb")
		if err != nil {
			t.Fatal(err)
		}
		started, err := s.docker(ctx, "inspect", "-f", "{{.Id}} {{.State.StartedAt}}", out)
		if err != nil {
			t.Fatal(err)
		}
		return started
	}
	balancer := lb()
	three := hostnames(t, ctx, s)

	if err := s.up(ctx, 5); err != nil {
		t.Fatal(err)
	}
	five := hostnames(t, ctx, s)
	if len(five) != 5 {
		t.Fatalf("after --scale whoami=5, %d replicas", len(five))
	}
	// The new replicas get traffic as soon as the balancer has seen them.
	seen := map[string]int{}
	if err := probe.Until(ctx, time.Minute, "all 5 replicas answering", func(ctx context.Context) (bool, error) {
		counts, failed := probe.Count(ctx, url, 10)
		if failed > 0 {
			return false, fmt.Errorf("%d of 10 requests failed while scaling up", failed)
		}
		for h, c := range counts {
			if !slices.Contains(five, h) {
				return false, fmt.Errorf("answered by %q, not a replica of %v", h, five)
			}
			seen[h] += c
		}
		return len(seen) == 5, nil
	}); err != nil {
		t.Fatalf("%v; answers so far: %v", err, seen)
	}

	if err := s.up(ctx, 3); err != nil {
		t.Fatal(err)
	}
	after := hostnames(t, ctx, s)
	removed := slices.DeleteFunc(slices.Clone(five), func(h string) bool { return slices.Contains(after, h) })
	if len(after) != 3 || len(removed) != 2 {
		t.Fatalf("after --scale whoami=3: replicas %v, removed %v", after, removed)
	}
	counts, failed := probe.Count(ctx, url, 30)
	if failed > 0 {
		t.Errorf("%d of 30 requests failed after scaling down", failed)
	}
	for h := range counts {
		if !slices.Contains(after, h) {
			t.Errorf("%q answered %d requests after scaling down; the replicas are %v", h, counts[h], after)
		}
	}
	if len(counts) != 3 {
		t.Errorf("after scaling down, answered by %v, want all of %v", counts, after)
	}
	if got := lb(); got != balancer {
		t.Errorf("the balancer was restarted: %q, then %q", balancer, got)
	}
	t.Logf("replicas: %v, then %v, then %v", three, five, after)
}

func TestRollingRestartUnderLoadLosesNothing(t *testing.T) {
	ctx := testContext(t)
	s, _ := newStack(t, ctx, 3)
	before := hostnames(t, ctx, s)
	r, err := s.rollingRestart(ctx, 4)
	if err != nil {
		t.Fatal(err)
	}
	after := hostnames(t, ctx, s)

	total, failed := r.load.Counts()
	if total == 0 {
		t.Fatal("no request was sent during the restart")
	}
	if failed > 0 {
		t.Errorf("%d of %d requests failed during the rolling restart: %v", failed, total, r.load.Errors())
	}
	if strangers := r.load.Strangers(append(slices.Clone(before), after...)); len(strangers) > 0 {
		t.Errorf("answers that are no replica's hostname: %v", strangers)
	}
	if len(after) != 3 {
		t.Errorf("after the restart, %d replicas (%v), want 3", len(after), after)
	}
	for _, h := range after {
		if slices.Contains(before, h) {
			t.Errorf("replica %s was not replaced (before: %v, after: %v)", h, before, after)
		}
	}
	if len(r.steps) != 3 {
		t.Errorf("%d replacement steps, want 3", len(r.steps))
	}
	t.Logf("rolling restart in %v: %d requests, %d failed", r.duration.Round(time.Millisecond), total, failed)
}

func TestKilledReplicaIsTakenOutOfRotation(t *testing.T) {
	ctx := testContext(t)
	s, url := newStack(t, ctx, 3)
	rs, err := s.replicas(ctx)
	if err != nil {
		t.Fatal(err)
	}
	victim := rs[0]
	slot := func() server {
		ss, err := s.servers(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, sv := range ss {
			if sv.Addr == net.JoinHostPort(victim.IP, servicePort) {
				return sv
			}
		}
		return server{}
	}
	before := slot()
	if before.Status != "UP" {
		t.Fatalf("HAProxy's slot for %s (%s): %+v, want UP", victim.Name, victim.IP, before)
	}
	l := probe.Start(ctx, url, probe.Options{Clients: 4})
	defer l.Stop()
	time.Sleep(500 * time.Millisecond) // the load is flowing

	killed := time.Now()
	if _, err := s.docker(ctx, "kill", victim.ID); err != nil {
		t.Fatal(err)
	}
	var out server
	if err := probe.Until(ctx, time.Minute, "HAProxy to take "+victim.Name+" out", func(ctx context.Context) (bool, error) {
		out = serverNamed(t, ctx, s, before.Name)
		return out.Status != "UP", nil
	}); err != nil {
		t.Fatal(err)
	}
	took := time.Since(killed)
	// Out of rotation: it gets no more requests while the load goes on.
	time.Sleep(time.Second)
	if later := serverNamed(t, ctx, s, before.Name); later.Sessions != out.Sessions {
		t.Errorf("%s got %d more requests after it was marked %q", before.Name, later.Sessions-out.Sessions, out.Status)
	}
	l.Stop()
	total, failed := l.Counts()
	t.Logf("docker kill of 1 of 3 replicas under load: %d of %d requests failed; HAProxy marked it %q after %v",
		failed, total, out.Status, took.Round(time.Millisecond))
	// Retries absorb the requests in flight on the killed replica; allow a
	// few to fail, no more.
	if failed*100 > total {
		t.Errorf("%d of %d requests failed (more than 1%%): %v", failed, total, l.Errors())
	}
}

func TestNoReplicaAnswers503AtOnce(t *testing.T) {
	ctx := testContext(t)
	s, url := newStack(t, ctx, 1)
	if err := s.up(ctx, 0); err != nil { // returns when HAProxy has no server up
		t.Fatal(err)
	}
	c := &http.Client{Timeout: 10 * time.Second} // a hang fails the test
	for i := range 5 {
		start := time.Now()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		if resp.StatusCode != http.StatusServiceUnavailable {
			t.Errorf("request %d: %s, want 503", i, resp.Status)
		}
		if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
			t.Errorf("Content-Type %q, want text/plain", ct)
		}
		if !strings.Contains(string(b), "no whoami replica is available") {
			t.Errorf("body %q, want the plain-text explanation", b)
		}
		t.Logf("request %d: %s in %v", i, resp.Status, time.Since(start).Round(time.Microsecond))
	}
}

func serverNamed(t *testing.T, ctx context.Context, s *stack, name string) server {
	t.Helper()
	ss, err := s.servers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, sv := range ss {
		if sv.Name == name {
			return sv
		}
	}
	t.Fatalf("no server %s in HAProxy's statistics", name)
	return server{}
}

// hostnames lists the replicas' hostnames, sorted, as Docker reports them.
func hostnames(t *testing.T, ctx context.Context, s *stack) []string {
	t.Helper()
	rs, err := s.replicas(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var hs []string
	for _, r := range rs {
		hs = append(hs, r.Hostname)
	}
	slices.Sort(hs)
	return hs
}

func TestRollingRestartWithoutAStackSaysWhatToDo(t *testing.T) {
	s := &stack{dir: "../..", env: []string{"COMPOSE_PROJECT_NAME=whoami-test-none-" + dockercli.RandomName()}}
	_, err := s.rollingRestart(t.Context(), 1)
	if err == nil || !strings.Contains(err.Error(), "make lb-demo") {
		t.Errorf("rolling restart of a stack that is not running: %v, want an error that says to start it", err)
	}
}
