//go:build e2e

package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The built binary in a memory cgroup of its own, as in a container but
// without one: what the runtime's soft limit is once whoami has set it.
// It needs root, to make the cgroup, so it is built with the e2e tag,
// which make test sets.

func TestTheBinaryInA64MiBCgroupSetsGosSoftLimit(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("this test makes a cgroup: run it as root (make test does), or without -tags e2e")
	}
	cgroup, limitFile := newMemoryCgroup(t)
	if err := os.WriteFile(filepath.Join(cgroup, limitFile), []byte("67108864"), 0o644); err != nil {
		t.Fatalf("setting the cgroup's limit: %v", err)
	}
	// sh moves itself into the cgroup, then becomes whoami.
	cmd := exec.Command("sh", "-c", `echo $$ > "$0/cgroup.procs" && exec "$1" -addr 127.0.0.1:0`, cgroup, binary(t))
	logs := &syncBuffer{}
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	for deadline := time.Now().Add(hang); !strings.Contains(logs.String(), "whoami listening"); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("not listening after %v:\n%s", hang, logs)
		}
	}
	// go_memory_limit is what the runtime has, read back after setting it.
	for _, want := range []string{"max_conns=614 max_conns_from=go_memory_limit", "memory_limit=67108864", "go_memory_limit=46976204 go_memory_limit_from=memory_limit"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("startup line %q: want %s", logs, want)
		}
	}
}

// newMemoryCgroup makes a memory cgroup below this process's own, removed
// when the test ends, and returns its directory and the name of its limit
// file: cgroup v1's memory controller, else cgroup v2.
func newMemoryCgroup(t *testing.T) (dir, limitFile string) {
	t.Helper()
	mount, own := cgroupMount("/", ownCgroup(t, "memory"), func(fstype, options string) bool {
		return fstype == "cgroup" && strings.Contains(","+options+",", ",memory,")
	})
	limitFile = "memory.limit_in_bytes"
	if mount == "" {
		// cgroup v2: a child of the root, which may hold processes and
		// whose children have the memory controller.
		mount, _ = cgroupMount("/", "/", func(fstype, _ string) bool { return fstype == "cgroup2" })
		own, limitFile = "/", "memory.max"
	}
	if mount == "" {
		t.Fatal("no cgroup file system with a memory controller is mounted: this test needs one")
	}
	dir = filepath.Join(mount, own, fmt.Sprintf("whoami-test-%d", os.Getpid()))
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatalf("making a cgroup: %v", err)
	}
	t.Cleanup(func() {
		// Its process has ended (killed and waited for) before this runs.
		for deadline := time.Now().Add(hang); os.Remove(dir) != nil && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		}
	})
	return dir, limitFile
}

// ownCgroup returns this process's cgroup in the v1 hierarchy of a
// controller, or "/" if there is none.
func ownCgroup(t *testing.T, controller string) string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if parts := strings.SplitN(line, ":", 3); len(parts) == 3 && strings.Contains(","+parts[1]+",", ","+controller+",") {
			return parts[2]
		}
	}
	return "/"
}
