package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"

	"whoami/internal/dockercli"
	"whoami/internal/probe"
)

// bench holds what the measurements share, and what cleanup removes.
type bench struct {
	o        options
	progress io.Writer
	work     string // a folder of the bench's own
	tag      string // names the bench's builds, containers and Compose project
	procs    []*exec.Cmd
	compose  dockercli.Cmd
}

func newBench(o options, progress io.Writer) (*bench, error) {
	work, err := os.MkdirTemp("", "whoami-bench-")
	if err != nil {
		return nil, err
	}
	tag := "whoami-bench-" + fmt.Sprint(os.Getpid())
	// The balancer's figures come from a Compose project of the bench's own,
	// on ports Docker picks.
	compose := dockercli.Cmd{Env: []string{"COMPOSE_PROJECT_NAME=" + tag, "WHOAMI_IMAGE=" + o.multi,
		"LB_PORT=127.0.0.1:0", "LB_STATS_PORT=0"}}
	return &bench{o: o, progress: progress, work: work, tag: tag, compose: compose}, nil
}

func (b *bench) say(format string, args ...any) { fmt.Fprintf(b.progress, "  "+format+"\n", args...) }

// cleanup stops what the bench started and removes what it made, and only that.
func (b *bench) cleanup() {
	ctx := context.Background()
	b.compose.Run(ctx, "compose", "down", "--remove-orphans")
	for _, p := range b.procs {
		p.Process.Kill()
		p.Wait()
	}
	if ids, _ := dockercli.Run(ctx, "ps", "-aq", "--filter", "label="+b.tag); ids != "" {
		dockercli.Run(ctx, append([]string{"rm", "-f"}, strings.Fields(ids)...)...)
	}
	dockercli.Run(ctx, "image", "rm", b.tag+":tmp")
	// The build cache records of the bench's own builds (their cache mounts
	// are named after it), and only those.
	if out, err := dockercli.Run(ctx, "buildx", "du", "--format", "json"); err == nil {
		for _, line := range strings.Split(out, "\n") {
			var rec struct{ ID, Description string }
			if json.Unmarshal([]byte(line), &rec) == nil && strings.Contains(rec.Description, b.tag) {
				dockercli.Run(ctx, "builder", "prune", "-af", "--filter", "id="+rec.ID)
			}
		}
	}
	os.RemoveAll(b.work)
}

func (b *bench) measure(ctx context.Context) (*report, error) {
	r := &report{Image: b.o.multi, Duration: b.o.duration, LoadRuns: b.o.loadRuns,
		GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	for _, step := range []func(context.Context, *report) error{
		b.machine, b.sizes, b.builds, b.lifeCycle, b.load, b.profile, b.balancer, b.restarts,
	} {
		if err := step(ctx, r); err != nil {
			return nil, err
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
	return r, nil
}

func output(ctx context.Context, name string, args ...string) string {
	out, _ := exec.CommandContext(ctx, name, args...).Output()
	return strings.TrimSpace(string(out))
}

// timed runs f and returns how long it took, in seconds.
func timed(f func() error) (float64, error) {
	t0 := time.Now()
	err := f()
	return time.Since(t0).Seconds(), err
}

func copyFile(from, to string) error {
	b, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	return os.WriteFile(to, b, 0o644)
}

// cpus pins a command to one CPU, when the machine has two or more.
func cpus(cpu string, args ...string) []string {
	if runtime.NumCPU() < 2 {
		return args
	}
	return append([]string{"taskset", "-c", cpu}, args...)
}

// freeAddr returns an address of 127.0.0.1 where nothing listens now.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// startHost starts a server on this machine, pinned to CPU 0, its address
// given as its last argument, and waits until it answers 200.
func (b *bench) startHost(ctx context.Context, args ...string) (string, error) {
	addr, err := freeAddr()
	if err != nil {
		return "", err
	}
	argv := cpus("0", append(args, addr)...)
	cmd := exec.Command(argv[0], argv[1:]...)
	if err := cmd.Start(); err != nil {
		return "", err
	}
	b.procs = append(b.procs, cmd)
	url := "http://" + addr + "/whoami"
	return url, waitOK(ctx, url)
}

// waitOK waits until url answers 200.
func waitOK(ctx context.Context, url string) error {
	_, err := probe.WaitOK(ctx, url, 30*time.Second)
	return err
}

// machine says what the figures were measured on, and when.
func (b *bench) machine(ctx context.Context, r *report) error {
	model := ""
	if cpuinfo, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(cpuinfo), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	engine, _ := dockercli.Run(ctx, "version", "-f", "{{.Server.Version}}")
	driver, _ := dockercli.Run(ctx, "info", "-f", "{{.Driver}}")
	wrk, _, _ := strings.Cut(output(ctx, "wrk", "--version"), " [")
	r.When = time.Now().UTC().Format("2006-01-02 15:04 MST")
	r.Machine = fmt.Sprintf("%d CPUs (%s), %s %s, Docker engine %s (storage driver %s), %s, %s",
		runtime.NumCPU(), model, output(ctx, "uname", "-s"), output(ctx, "uname", "-r"), engine, driver, runtime.Version(), wrk)
	return nil
}
