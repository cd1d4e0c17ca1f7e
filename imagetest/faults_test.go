//go:build e2e

package imagetest

import (
	"context"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"whoami/internal/dockercli"
	"whoami/internal/flood"
	"whoami/internal/probe"
)

// The image under a flood of connections and a stop with stuck clients.
// The load goes to the container's own address only, and stops by itself.

// The memory limit of deploy/kubernetes/deployment.yaml (the manifest sets
// no GOMEMLIMIT: the service finds the limit itself), and the most of it
// the container may use under a flood.
const (
	podMemory   = "64m"
	podLimit    = 64 << 20
	memoryShare = 0.8
)

// probeTimeout is the slowest an ordinary request may be under a flood:
// the readiness probe of deploy/kubernetes gives up after 1 s and takes the
// pod out of the Service after two failures in a row, and the liveness
// probe gives up after 2 s. It was a second until CI on 2026-12-05 saw 1.03
// s, and 1.04 s again by hand (at 256 open files; likely a connect whose SYN
// the full queue dropped, sent again after TCP's 1 s); what it bounds, a grace
// of 500 ms at the cap, held them 2.5 to 2.8 s.
const probeTimeout = 2 * time.Second

// containerAddr is the address of the container on Docker's bridge.
func containerAddr(t *testing.T, id string) string {
	t.Helper()
	return net.JoinHostPort(docker(t, "inspect", "-f", "{{.NetworkSettings.IPAddress}}", id), port)
}

// peakMemory reads the most memory the container has used, in bytes.
func peakMemory(t *testing.T, id string) int64 {
	t.Helper()
	n, err := dockercli.PeakMemory(id)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// floodFor runs a flood of a kind against a container for d while a client
// sends an ordinary request every 100 ms on a new connection.
func floodFor(t *testing.T, id string, kind flood.Kind, d time.Duration) (flood.Result, *probe.Load) {
	t.Helper()
	addr := containerAddr(t, id)
	ctx, cancel := context.WithTimeout(t.Context(), d)
	defer cancel()
	wait, err := flood.Start(ctx, addr, 5000, kind, 0)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second) // the flood in full
	l := probe.Start(ctx, "http://"+addr+"/whoami", probe.Options{Clients: 1, NewConnections: true, Interval: 100 * time.Millisecond})
	<-ctx.Done()
	l.Stop()
	f, err := wait()
	if err != nil {
		t.Fatal(err)
	}
	return f, l
}

func TestAFloodStaysWithinThePodsMemoryLimit(t *testing.T) {
	for _, kind := range flood.Kinds {
		t.Run(string(kind)+", with the cap, as the image runs", func(t *testing.T) {
			id, _ := runContainer(t, multi, "--memory", podMemory, "--memory-swap", podMemory)
			withstands(t, id, kind)
		})
	}
	// A low open-file limit: the cap fits it, and idle clients past it
	// make room as they do at the cap.
	t.Run("idle, at 256 open files", func(t *testing.T) {
		id, _ := runContainer(t, multi, "--memory", podMemory, "--memory-swap", podMemory, "--ulimit", "nofile=256:256")
		withstands(t, id, flood.Idle)
		if l := logs(t, id); !strings.Contains(l, "max_conns=176 max_conns_from=open_file_limit") || strings.Contains(l, "too many open files") {
			t.Errorf("want the cap from the open-file limit, and no accept failing for want of files:\n%.2000s", l)
		}
	})
	// The control: the same flood with no effective cap goes past the
	// limit, so the test above tests something.
	t.Run("without the cap, the flood is enough to kill it", func(t *testing.T) {
		id, _ := runContainer(t, multi, "--memory", podMemory, "--memory-swap", podMemory, "-e", "MAX_CONNS=1000000")
		floodFor(t, id, flood.Mixed, 20*time.Second)
		state := docker(t, "inspect", "-f", "{{.State.Running}} {{.State.OOMKilled}}", id)
		t.Logf("running, OOM-killed: %s", state)
		if state != "false true" {
			t.Errorf("running, OOM-killed: %s; want false true: the flood no longer exceeds the limit, so the test with the cap proves nothing", state)
		}
	})
}

// withstands floods the container for 20 s with 5,000 connections of a
// kind while an ordinary client sends a request every 100 ms, and checks
// the container's peak memory, that it runs, and the ordinary requests:
// none failed, none slower than probeTimeout. (The unread kind is a flood of
// requests, not of connections: the CPU, not the cap, is the limit while
// it lasts, and it is checked to answer once it ends.)
func withstands(t *testing.T, id string, kind flood.Kind) {
	t.Helper()
	f, l := floodFor(t, id, kind, 20*time.Second)
	total, failed := l.Counts()
	if state := docker(t, "inspect", "-f", "{{.State.Running}} {{.State.OOMKilled}}", id); state != "true false" {
		t.Fatalf("flood %s: running, OOM-killed: %s, want true false; %d of %d ordinary requests failed", kind, state, failed, total)
	}
	peak := peakMemory(t, id)
	t.Logf("flood %s: 5,000 connections for 20 s (%d opened, %d cut by the server); peak memory %.1f MiB of 64 (%.0f%%); %d of %d ordinary requests failed, the slowest took %.2f s",
		kind, f.Opened, f.Cut, float64(peak)/(1<<20), 100*float64(peak)/podLimit, failed, total, l.Slowest().Seconds())
	if float64(peak) > podLimit*memoryShare {
		t.Errorf("peak memory %.1f MiB: want at most %.0f%% of the 64 MiB limit", float64(peak)/(1<<20), 100*memoryShare)
	}
	if f.Opened < 5000 {
		t.Errorf("the flood opened %d connections, want at least 5,000", f.Opened)
	}
	switch {
	case kind == flood.Unread:
		url := "http://" + containerAddr(t, id) + "/whoami"
		if err := probe.Until(t.Context(), 10*time.Second, "an answer after the flood", func(ctx context.Context) (bool, error) {
			_, code, err := probe.Get(ctx, http.DefaultClient, url)
			return code == 200, err
		}); err != nil {
			t.Error(err)
		}
	case failed > 0 || total == 0:
		t.Errorf("%d of %d ordinary requests failed: %v", failed, total, l.Errors())
	case l.Slowest() > probeTimeout:
		t.Errorf("an ordinary request took %v: want each answered within %v, before the readiness probe takes the pod out of the Service", l.Slowest(), probeTimeout)
	}
	logs := logs(t, id)
	if !strings.Contains(logs, "memory_limit=67108864 memory_limit_from=/sys/fs/cgroup/") || !strings.Contains(logs, "go_memory_limit=46976204 go_memory_limit_from=memory_limit") {
		t.Errorf("the startup line does not give the container's limit, its file, and Go's limit as the runtime has it:\n%.2000s", logs)
	}
	if strings.Count(logs, "at the connection limit") == 0 {
		t.Error("no warning about the connection limit in the logs")
	}
}

func TestDockerStopWithStuckClientsExitsZero(t *testing.T) {
	t.Parallel()
	id, _ := runContainer(t, multi)
	addr := containerAddr(t, id)
	for _, request := range []string{
		"GET /whoami HTTP/1.1\r\nHost: x\r\nX-Half: ",                              // half a header
		"GET /whoami HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nten bytes.", // half a body
	} {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		io.WriteString(c, request)
	}
	time.Sleep(200 * time.Millisecond)
	t0 := time.Now()
	docker(t, "stop", id) // SIGKILL after Docker's 10 s
	took := time.Since(t0)
	code := docker(t, "inspect", "-f", "{{.State.ExitCode}}", id)
	t.Logf("docker stop with two stuck clients: exit code %s after %.1f s", code, took.Seconds())
	if code != "0" || took > 8*time.Second {
		t.Errorf("exit code %s after %v: want 0, after the 5 s grace and before Docker's 10 s", code, took)
	}
	if l := logs(t, id); !strings.Contains(l, "whoami cut the connections still open after the shutdown grace") {
		t.Errorf("no warning about the cut connections in the logs:\n%s", l)
	}
}

// make image-multi labels the image with the remote's URL: without the user
// information that a CI job's clone URL carries.
func TestTheSourceLabelCarriesNoCredentials(t *testing.T) {
	t.Parallel()
	dir := t.TempDir() + "/clone"
	for _, args := range [][]string{
		{"clone", "-q", root, dir},
		{"-C", dir, "remote", "set-url", "origin", "https://ci-job:s3cr3t@example.invalid/team/whoami.git"},
	} {
		if out, err := exec.Command("git", args...).CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v %s", args, err, out)
		}
	}
	makefile, _ := filepath.Abs(root + "/Makefile") // the working tree's, in the clone
	out, err := exec.Command("make", "-n", "-C", dir, "-f", makefile, "image-multi").CombinedOutput()
	if err != nil {
		t.Fatalf("make -n image-multi: %v\n%s", err, out)
	}
	_, after, _ := strings.Cut(string(out), "--build-arg SOURCE=")
	source, _, _ := strings.Cut(after, " ")
	if source != "https://example.invalid/team/whoami.git" {
		t.Errorf("SOURCE=%q, want the URL without its user information", source)
	}
}
