// Package dockercli runs the docker CLI for the project's tools and tests:
// a command with its output and a clear error (Run, through
// internal/command), a container started
// and waited for (RunContainer), and what a container's cgroup knows that
// the CLI does not show (PeakMemory). Standard library only.
package dockercli

import (
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"whoami/internal/command"
	"whoami/internal/probe"
)

// Timeout bounds each command unless the caller's context ends it sooner
// (a build may want longer: give it a context with its own deadline).
const Timeout = 2 * time.Minute

// Cmd runs docker in a folder, with variables added to its environment.
type Cmd struct {
	Dir string
	Env []string
	// IgnoreInterrupt runs the command in a process group of its own, not
	// cut short when ctx is cancelled: a Ctrl-C reaches the caller only, and
	// the command finishes its step (bounded by Timeout).
	IgnoreInterrupt bool
	// Runner runs it; nil is a process, bounded by Timeout (a test gives
	// a fake).
	Runner command.Runner
}

// Run runs docker with args and returns its standard output, trimmed; an
// error carries the end of what it printed on standard error.
func (c Cmd) Run(ctx context.Context, args ...string) (string, error) {
	out, err := c.Output(ctx, args...)
	return strings.TrimSpace(string(out)), err
}

// Output is Run with the standard output as it is (a tar stream, say).
func (c Cmd) Output(ctx context.Context, args ...string) ([]byte, error) {
	r := c.Runner
	if r == nil {
		r = command.Exec{Timeout: Timeout}
	}
	out, _, err := r.Run(ctx, command.Cmd{Name: "docker", Args: args, Dir: c.Dir, Env: c.Env, Detach: c.IgnoreInterrupt})
	return []byte(out), err
}

// Run runs docker with args in the current folder.
func Run(ctx context.Context, args ...string) (string, error) { return Cmd{}.Run(ctx, args...) }

// RunContainer starts image in the background with port published on a
// free port of 127.0.0.1 (args go before the image: docker run options),
// and waits until its /whoami answers 200. It returns the container's ID
// and that URL; on an error, the container is removed.
func RunContainer(ctx context.Context, image, port string, args ...string) (id, url string, err error) {
	args = append(append([]string{"run", "-d", "-p", "127.0.0.1::" + port}, args...), image)
	if id, err = Run(ctx, args...); err != nil {
		return "", "", err
	}
	defer func() {
		if err != nil {
			Run(context.WithoutCancel(ctx), "rm", "-f", id)
		}
	}()
	out, err := Run(ctx, "port", id, port+"/tcp")
	if err != nil {
		return "", "", err
	}
	addr, err := Published(out)
	if err != nil {
		return "", "", err
	}
	url = "http://" + addr + "/whoami"
	_, err = probe.WaitOK(ctx, url, time.Minute)
	return id, url, err
}

// Published returns the address on 127.0.0.1 of a published port, from what
// docker port or docker compose port printed: one line per address it is
// published on (0.0.0.0:49153, [::]:49153, 127.0.0.1:49153).
func Published(out string) (string, error) {
	first, _, _ := strings.Cut(strings.TrimSpace(out), "\n")
	_, port, err := net.SplitHostPort(first)
	if n, perr := strconv.Atoi(port); err != nil || perr != nil || n < 1 || n > 65535 {
		return "", fmt.Errorf("no published port in %q", out)
	}
	return net.JoinHostPort("127.0.0.1", port), nil
}

// PeakMemory returns the most memory, in bytes, that the container with the
// full ID id has used: its cgroup's own record, which docker stats does not
// show.
func PeakMemory(id string) (int64, error) {
	for _, f := range []string{
		"/sys/fs/cgroup/memory/docker/" + id + "/memory.max_usage_in_bytes", // cgroup v1, cgroupfs driver
		"/sys/fs/cgroup/system.slice/docker-" + id + ".scope/memory.peak",   // cgroup v2, systemd driver
		"/sys/fs/cgroup/docker/" + id + "/memory.peak",                      // cgroup v2, cgroupfs driver
	} {
		if b, err := os.ReadFile(f); err == nil {
			return strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		}
	}
	return 0, fmt.Errorf("no memory peak for container %s in its cgroup", id)
}

// RandomName is a short name no one else uses, as Docker, Compose and
// registries accept it: for what the tests make.
func RandomName() string { return strings.ToLower(rand.Text()[:8]) }
