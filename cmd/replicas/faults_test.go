//go:build e2e

package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"whoami/internal/dockercli"
	"whoami/internal/flood"
	"whoami/internal/probe"
)

// The stack under faults: a frozen replica, a POST that must not be sent
// twice, a flood on the published port, and interrupted commands.

func TestAFrozenReplicaCostsAtMostAFewSeconds(t *testing.T) {
	ctx := testContext(t)
	s, url := newStack(t, ctx, 3)
	rs, err := s.replicas(ctx)
	if err != nil {
		t.Fatal(err)
	}
	l := probe.Start(ctx, url, probe.Options{Clients: 4})
	defer l.Stop()
	time.Sleep(500 * time.Millisecond)
	// docker pause freezes every process of the replica, as a hung process
	// would be: its connections stay open and nothing answers.
	if _, err := s.docker(ctx, "pause", rs[0].ID); err != nil {
		t.Fatal(err)
	}
	defer s.docker(context.Background(), "unpause", rs[0].ID)
	time.Sleep(10 * time.Second)
	if _, err := s.docker(ctx, "unpause", rs[0].ID); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second) // back in rotation
	l.Stop()
	total, failed := l.Counts()
	t.Logf("1 of 3 replicas frozen for 10 s under 4 clients' load: %d of %d requests failed, the slowest took %.2f s",
		failed, total, l.Slowest().Seconds())
	if failed > 0 {
		t.Errorf("%d requests failed: %v", failed, l.Errors())
	}
	// HAProxy's timeout server is 2 s, then the request goes to another
	// replica: a generous bound.
	if l.Slowest() > 5*time.Second {
		t.Errorf("the slowest request took %v: want the 2 s server time-out and a retry", l.Slowest())
	}
}

// logLine is one line of HAProxy's access log (option httplog).
type logLine struct {
	server, method string
	status         int
	retries        string // "0", "1", or "+1" when redispatched
}

// accessLog reads the balancer's access log lines for /whoami.
func accessLog(t *testing.T, ctx context.Context, s *stack) []logLine {
	t.Helper()
	out, err := s.compose(ctx, "logs", "--no-log-prefix", "lb")
	if err != nil {
		t.Fatal(err)
	}
	var lines []logLine
	for _, l := range strings.Split(out, "\n") {
		// ... web whoami/whoami2 0/0/0/-1/2001 504 ... 6/6/5/1/0 0/0 "POST /whoami HTTP/1.1"
		f := strings.Fields(l)
		q := strings.Index(l, `"`)
		if len(f) < 15 || q < 0 || !strings.Contains(l, " /whoami ") {
			continue
		}
		var ll logLine
		_, ll.server, _ = strings.Cut(f[3], "/")
		fmt.Sscan(f[5], &ll.status)
		if counts := strings.Split(f[10], "/"); len(counts) == 5 {
			ll.retries = counts[4]
		}
		ll.method, _, _ = strings.Cut(l[q+1:], " ")
		lines = append(lines, ll)
	}
	return lines
}

// HAProxy's own log is the record of what it sent where and how often:
// whoami logs no request, and a replica frozen with docker pause is what a
// replica that never answers looks like to the balancer. A GET sent to it
// must be retried on another replica; a POST must not be sent again.
func TestAPOSTIsNeverSentTwice(t *testing.T) {
	ctx := testContext(t)
	s, url := newStack(t, ctx, 2)
	rs, err := s.replicas(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.docker(ctx, "pause", rs[0].ID); err != nil {
		t.Fatal(err)
	}
	defer s.docker(context.Background(), "unpause", rs[0].ID)
	// Before the health check takes the frozen one out, in this order, 20 ms
	// apart: POST, POST, GET, GET, twice. Round robin over the 2 replicas
	// sends each of them a POST and a GET of each pair, whichever it starts
	// with (POST, GET, POST, GET would send every POST to the same one).
	var wg sync.WaitGroup
	c := &http.Client{Timeout: 30 * time.Second}
	for i := range 8 {
		method := map[bool]string{true: http.MethodPost, false: http.MethodGet}[i/2%2 == 0]
		time.Sleep(20 * time.Millisecond)
		wg.Go(func() {
			req, _ := http.NewRequestWithContext(ctx, method, url, strings.NewReader("do it once"))
			if resp, err := c.Do(req); err == nil {
				resp.Body.Close()
			}
		})
	}
	wg.Wait()
	var retriedGET, frozenPOST bool
	for _, l := range accessLog(t, ctx, s) {
		t.Logf("%s → %s: %d, retries %s", l.method, l.server, l.status, l.retries)
		switch l.method {
		case http.MethodPost:
			if l.retries != "0" {
				t.Errorf("a POST was sent again (retries %s, ended on %s with %d)", l.retries, l.server, l.status)
			}
			frozenPOST = frozenPOST || l.status == http.StatusGatewayTimeout
		case http.MethodGet:
			retriedGET = retriedGET || l.retries != "0" && l.status == http.StatusOK
		}
	}
	if !frozenPOST || !retriedGET {
		t.Errorf("want a POST that waited for the frozen replica (504, got one: %v) and a GET retried elsewhere (200, got one: %v): the test did not test", frozenPOST, retriedGET)
	}
}

func TestAFloodOnThePublishedPortIsAbsorbed(t *testing.T) {
	ctx := testContext(t)
	s, url := newStack(t, ctx, 3)
	addr, err := s.published(ctx, servicePort)
	if err != nil {
		t.Fatal(err)
	}
	flooding, stop := context.WithTimeout(ctx, 20*time.Second)
	defer stop()
	wait, err := flood.Start(flooding, addr, 5000, flood.Mixed, 0)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Second) // the flood in full
	// Ordinary requests meanwhile, each on a new connection, as a new
	// client's would be.
	l := probe.Start(ctx, url, probe.Options{Clients: 2, NewConnections: true, Interval: 100 * time.Millisecond})
	<-flooding.Done()
	l.Stop()
	f, err := wait()
	if err != nil {
		t.Fatal(err)
	}
	total, failed := l.Counts()
	lb, err := s.compose(ctx, "ps", "-q", "lb")
	if err != nil {
		t.Fatal(err)
	}
	peak, err := dockercli.PeakMemory(lb)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("a flood of 5,000 connections to %s (%d opened, %d closed by the balancer): %d of %d ordinary requests failed, the slowest took %.2f s; HAProxy's peak memory %.1f MiB",
		addr, f.Opened, f.Cut, failed, total, l.Slowest().Seconds(), float64(peak)/(1<<20))
	if f.Opened < 5000 {
		t.Errorf("the flood opened %d connections, want at least 5,000", f.Opened)
	}
	if failed > 0 || total == 0 {
		t.Errorf("%d of %d ordinary requests failed during the flood: %v", failed, total, l.Errors())
	}
	if counts, failed := probe.Count(ctx, url, 10); failed > 0 || len(counts) != 3 {
		t.Errorf("after the flood: %v, %d failed; want all 3 replicas answering", counts, failed)
	}
}

var replicasBin = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "replicas-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "replicas")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
})

// Ctrl-C or a SIGTERM at each step of a rolling restart: the command
// stops its load, puts the stack back as it was, says so in one line and
// exits 1.
func TestAnInterruptedRollingRestartLeavesTheStackAsItWas(t *testing.T) {
	bin, err := replicasBin()
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		phase string
		sig   syscall.Signal
	}{
		{"--> start a new replica", syscall.SIGINT},
		{"is healthy", syscall.SIGTERM},
		{"answers through the balancer", syscall.SIGINT},
		{"--> docker stop", syscall.SIGINT},
		{"--> docker rm", syscall.SIGTERM},
		{"replaced ", syscall.SIGINT}, // between two replacements
	} {
		t.Run(tt.phase+" "+tt.sig.String(), func(t *testing.T) {
			ctx := testContext(t)
			s, _ := newStack(t, ctx, 3)
			cmd := exec.CommandContext(ctx, bin, "-v", "-clients", "2", "rolling-restart")
			cmd.Dir = s.dir
			cmd.Env = append(os.Environ(), s.env...)
			stdout, _ := cmd.StdoutPipe()
			var stderr strings.Builder
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			lines := bufio.NewScanner(stdout)
			var seen []string
			for lines.Scan() {
				seen = append(seen, lines.Text())
				if strings.Contains(lines.Text(), tt.phase) {
					cmd.Process.Signal(tt.sig)
					break
				}
			}
			go func() {
				for lines.Scan() {
				}
			}()
			err := cmd.Wait()
			msg := strings.TrimSpace(stderr.String())
			if cmd.ProcessState.ExitCode() != 1 || strings.Contains(msg, "\n") ||
				!strings.Contains(msg, "interrupted: the stack is as it was, 3 replicas, all healthy and balanced") {
				t.Errorf("after %v at %q: %v, stderr %q; want exit 1 and one line that says the stack is as it was\nstdout:\n%s",
					tt.sig, tt.phase, err, msg, strings.Join(seen, "\n"))
			}
			t.Log(msg)
			all, err := s.containers(ctx, "ps", "-a", "-q", "whoami")
			if err != nil {
				t.Fatal(err)
			}
			healthy := slices.DeleteFunc(slices.Clone(all), func(r replica) bool { return r.State != "running" || r.Health != "healthy" })
			if len(all) != 3 || len(healthy) != 3 {
				t.Errorf("after the interrupt: %d containers, %d of them running and healthy: %+v; want 3 and 3", len(all), len(healthy), all)
			}
			if err := s.waitBalanced(ctx); err != nil {
				t.Error(err)
			}
		})
	}
}
