// Command bench measures the images, the builds, the container's life
// cycle and the service under load on this machine, and writes one
// Markdown report, docs/benchmarks.md, from a template (report.md.tmpl).
// It is what `make bench` runs; nothing here is a pass/fail test.
//
// Every figure is a median of several runs, with the spread (min-max):
// these machines are shared and noisy. The cold builds use a Go build cache
// of their own (a cache mount at a path no other build uses) and --no-cache;
// what they leave in BuildKit's cache is removed at the end, and nothing
// else. The servers under load run on CPU 0 and wrk on CPU 1 (taskset), so
// that they do not compete; on a machine with one CPU they share it. Every
// request the bench itself sends has a time-out, and every process and
// container it starts is stopped when it ends, interrupted or not.
package main

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"text/template"
	"time"

	"whoami/internal/dockercli"
	"whoami/internal/probe"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		os.Exit(1)
	}
}

// options is what make bench passes.
type options struct {
	golang, single, multi, binary string
	port                          string // the service's, .env's SERVICE_PORT
	runs, coldRuns, loadRuns      int
	restartRuns                   int
	duration                      time.Duration
	out                           string
}

func run(ctx context.Context, args []string, progress io.Writer) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	var o options
	fs.StringVar(&o.golang, "golang", "", "the golang base image of both Dockerfiles")
	fs.StringVar(&o.single, "single", "", "the single-stage image (make image-single)")
	fs.StringVar(&o.multi, "multi", "", "the multistage image (make image-multi)")
	fs.StringVar(&o.binary, "binary", "", "the service built with the image's flags (make build)")
	fs.StringVar(&o.port, "port", "", "the service's port (.env SERVICE_PORT)")
	fs.IntVar(&o.runs, "runs", 5, "runs of each short measurement")
	fs.IntVar(&o.coldRuns, "cold-runs", 3, "cold builds")
	fs.IntVar(&o.loadRuns, "load-runs", 3, "rounds of wrk on each target")
	fs.IntVar(&o.restartRuns, "restart-runs", 3, "rolling restarts through the balancer")
	fs.DurationVar(&o.duration, "duration", 5*time.Second, "each wrk run")
	fs.StringVar(&o.out, "out", "docs/benchmarks.md", "the report")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if o.golang == "" || o.single == "" || o.multi == "" || o.binary == "" || o.port == "" {
		return errors.New("-golang, -single, -multi, -binary and -port are required (make bench passes them)")
	}
	if _, err := exec.LookPath("wrk"); err != nil {
		return errors.New("make bench needs wrk: apt-get install wrk, or provision/provision.sh bench as root")
	}
	b, err := newBench(o, progress)
	if err != nil {
		return err
	}
	defer b.cleanup()
	r, err := b.measure(ctx)
	if err != nil {
		return err
	}
	return write(o.out, r)
}

// stats is a median and its spread.
type stats struct {
	Median, Min, Max float64
	N                int
}

func summarize(v []float64) stats {
	if len(v) == 0 {
		return stats{}
	}
	s := slices.Sorted(slices.Values(v))
	m := s[len(s)/2]
	if len(s)%2 == 0 {
		m = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return stats{Median: m, Min: s[0], Max: s[len(s)-1], N: len(s)}
}

// wrkRun is one run of wrk, from its Lua done() hook.
type wrkRun struct {
	Requests   int64   `json:"requests"`
	DurationUS float64 `json:"duration_us"`
	Errors     int64   `json:"errors"`
	P50US      float64 `json:"p50_us"`
	P99US      float64 `json:"p99_us"`
}

func (w wrkRun) rps() float64 { return float64(w.Requests) / (w.DurationUS / 1e6) }

// loadRow is a target under a number of connections.
type loadRow struct {
	Target   string
	Conns    int
	RPS      stats
	P50, P99 float64 // medians, ms
	Errors   int64
}

func newLoadRow(target string, conns int, runs []wrkRun) loadRow {
	var rps, p50, p99 []float64
	var errs int64
	for _, w := range runs {
		rps, p50, p99 = append(rps, w.rps()), append(p50, w.P50US/1000), append(p99, w.P99US/1000)
		errs += w.Errors
	}
	return loadRow{Target: target, Conns: conns, RPS: summarize(rps), P50: summarize(p50).Median, P99: summarize(p99).Median, Errors: errs}
}

// ratioRow is whoami against the tutorial's program, round by round.
type ratioRow struct {
	Conns            int
	Tutorial, Whoami float64
	Ratio            stats
}

// report is everything the template shows.
type report struct {
	When, Machine                  string
	Sizes                          string // make compare-sizes' table, as it prints it
	GoVersion, Platform            string
	Binary                         []sizeRow
	Image                          string
	Cold, Warm, Start, Floor, Stop stats
	ExitCodes                      string
	StartRatio                     float64
	RSSIdle, RSSLoad               float64 // MB
	Pinning                        string
	Duration                       time.Duration
	LoadRuns                       int
	Load                           []loadRow
	Ratios                         []ratioRow
	ProfileConns                   int
	Profile                        []profileRow
	HAProxy                        string
	Balancer                       []loadRow
	Restart                        restartStats
}

type sizeRow struct {
	Flags string
	Bytes int64
}

type restartStats struct {
	Seconds, RPS, FirstAnswer stats
	Runs, Requests, Failed    int
}

//go:embed report.md.tmpl
var reportTemplate string

func write(path string, r *report) error {
	t, err := template.New("report").Funcs(template.FuncMap{
		"mb":  func(b int64) string { return fmt.Sprintf("%.2f", float64(b)/1e6) },
		"f":   func(format string, v float64) string { return fmt.Sprintf(format, v) },
		"sub": func(a, b float64) float64 { return a - b },
	}).Parse(reportTemplate)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := t.Execute(&buf, r); err != nil {
		return err
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		return err
	}
	fmt.Print(buf.String())
	return nil
}

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

func (b *bench) sizes(ctx context.Context, r *report) error {
	b.say("image and binary sizes")
	out, err := exec.CommandContext(ctx, "scripts/compare-sizes.sh", b.o.golang, b.o.single, b.o.multi).Output()
	if err != nil {
		return fmt.Errorf("scripts/compare-sizes.sh: %v", err)
	}
	// Its last line says where and when: the report says it once, at the top.
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	r.Sizes = strings.Join(slices.DeleteFunc(lines, func(l string) bool { return strings.HasPrefix(l, "Measured") }), "\n")
	for _, v := range []struct {
		flags string
		args  []string
	}{
		{"(no flags)", nil},
		{"`-trimpath -ldflags \"-s -w\"`, as in Dockerfile", []string{"-trimpath", "-ldflags", "-s -w"}},
		{"the same and `-tags nethttpomithttp2` (not used)", []string{"-trimpath", "-ldflags", "-s -w", "-tags", "nethttpomithttp2"}},
	} {
		bin := filepath.Join(b.work, "whoami")
		cmd := exec.CommandContext(ctx, "go", append(append([]string{"build", "-buildvcs=false"}, v.args...), "-o", bin, ".")...)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build %v: %v: %s", v.args, err, out)
		}
		fi, err := os.Stat(bin)
		if err != nil {
			return err
		}
		r.Binary = append(r.Binary, sizeRow{Flags: v.flags, Bytes: fi.Size()})
	}
	return nil
}

// timed runs f and returns how long it took, in seconds.
func timed(f func() error) (float64, error) {
	t0 := time.Now()
	err := f()
	return time.Since(t0).Seconds(), err
}

// builds times cold multistage builds and rebuilds after a one-line edit, in
// a copy of the build context, so that the edits stay out of the repository.
func (b *bench) builds(ctx context.Context, r *report) error {
	ctxDir := filepath.Join(b.work, "context")
	if err := os.MkdirAll(ctxDir, 0o755); err != nil {
		return err
	}
	files, _ := filepath.Glob("*.go")
	for _, f := range append(files, "go.mod", ".dockerignore") {
		if err := copyFile(f, filepath.Join(ctxDir, f)); err != nil {
			return err
		}
	}
	dockerfile, err := os.ReadFile("Dockerfile")
	if err != nil {
		return err
	}
	// The Go build cache at a path of the bench's own: empty the first time,
	// a cold build, without emptying the cache of the user's builds.
	withCache := func(name string) error {
		const mount, env = "--mount=type=cache,target=/root/.cache/go-build", "\tCGO_ENABLED=0 GOOS="
		if !bytes.Contains(dockerfile, []byte(mount)) || !bytes.Contains(dockerfile, []byte(env)) {
			return errors.New("bench no longer finds the Go cache mount in Dockerfile")
		}
		d := bytes.Replace(dockerfile, []byte(mount), []byte("--mount=type=cache,target=/root/.cache/"+name), 1)
		d = bytes.Replace(d, []byte(env), []byte("\tGOCACHE=/root/.cache/"+name+" CGO_ENABLED=0 GOOS="), 1)
		return os.WriteFile(filepath.Join(ctxDir, "Dockerfile"), d, 0o644)
	}
	build := func(args ...string) error {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
		defer cancel()
		_, err := dockercli.Run(ctx, append(append([]string{"build", "-q", "-t", b.tag + ":tmp"}, args...), ctxDir)...)
		return err
	}
	b.say("cold multistage build: an empty Go cache of the bench's own, --no-cache (%d runs)", b.o.coldRuns)
	var cold, warm []float64
	for i := range b.o.coldRuns {
		if err := withCache(fmt.Sprintf("%s-%d", b.tag, i)); err != nil {
			return err
		}
		s, err := timed(func() error { return build("--no-cache") })
		if err != nil {
			return err
		}
		cold = append(cold, s)
	}
	b.say("rebuild after a one-line edit of http.go (%d runs)", b.o.runs)
	for i := range b.o.runs {
		f, err := os.OpenFile(filepath.Join(ctxDir, "http.go"), os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			return err
		}
		fmt.Fprintf(f, "// bench edit %d\n", i)
		f.Close()
		s, err := timed(func() error { return build() })
		if err != nil {
			return err
		}
		warm = append(warm, s)
	}
	r.Cold, r.Warm = summarize(cold), summarize(warm)
	return nil
}

func copyFile(from, to string) error {
	b, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	return os.WriteFile(to, b, 0o644)
}

// lifeCycle times docker run to the first 200 against a run of the same
// image that does nothing, and docker stop.
func (b *bench) lifeCycle(ctx context.Context, r *report) error {
	b.say("start-up and docker stop (%d runs)", b.o.runs)
	var start, floor, stop []float64
	codes := map[string]bool{}
	for range b.o.runs {
		s, err := timed(func() error { _, err := dockercli.Run(ctx, "run", "--rm", b.o.multi, "-version"); return err })
		if err != nil {
			return err
		}
		floor = append(floor, s)
		var id string
		s, err = timed(func() (err error) {
			id, _, err = dockercli.RunContainer(ctx, b.o.multi, b.o.port, "--label", b.tag)
			return err
		})
		if err != nil {
			return err
		}
		start = append(start, s)
		if s, err = timed(func() error { _, err := dockercli.Run(ctx, "stop", id); return err }); err != nil {
			return err
		}
		stop = append(stop, s)
		code, _ := dockercli.Run(ctx, "inspect", "-f", "{{.State.ExitCode}}", id)
		codes[code] = true
		dockercli.Run(ctx, "rm", id)
	}
	r.Start, r.Floor, r.Stop = summarize(start), summarize(floor), summarize(stop)
	r.StartRatio = r.Start.Median / r.Floor.Median
	r.ExitCodes = strings.Join(slices.Sorted(maps.Keys(codes)), ", ")
	return nil
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

// waitOK waits until url answers 200, each request with its own time-out.
func waitOK(ctx context.Context, url string) error {
	c := &http.Client{Timeout: 2 * time.Second}
	return probe.Until(ctx, 30*time.Second, url+" to answer 200", func(ctx context.Context) (bool, error) {
		_, code, err := probe.Get(ctx, c, url)
		return code == http.StatusOK, err
	})
}

// The Lua hook that makes wrk print its figures as JSON.
const wrkScript = `done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('{"requests": %d, "duration_us": %d, "errors": %d, "p50_us": %d, "p99_us": %d}\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.status + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
`

// wrk runs wrk with conns keep-alive connections against url, pinned to
// CPU 1 if pin.
func (b *bench) wrk(ctx context.Context, url string, conns int, pin bool) (wrkRun, error) {
	script := filepath.Join(b.work, "json.lua")
	if err := os.WriteFile(script, []byte(wrkScript), 0o644); err != nil {
		return wrkRun{}, err
	}
	args := []string{"wrk", "-t", "1", "-c", fmt.Sprint(conns), "-d", fmt.Sprint(b.o.duration.Seconds()) + "s", "-s", script, url}
	if pin {
		args = cpus("1", args...)
	}
	ctx, cancel := context.WithTimeout(ctx, b.o.duration+time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, args[0], args[1:]...).Output()
	if err != nil {
		return wrkRun{}, fmt.Errorf("wrk: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	var w wrkRun
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &w); err != nil {
		return wrkRun{}, fmt.Errorf("wrk's figures: %v: %s", err, lines[len(lines)-1])
	}
	return w, nil
}

// rss is the resident memory of the container's process, in MB, as ps on
// the engine's host sees it (docker top needs the pid column too).
func rss(ctx context.Context, id string) float64 {
	out, _ := dockercli.Run(ctx, "top", id, "-o", "pid,rss")
	fields := strings.Fields(out) // PID RSS pid rss
	var kb float64
	if len(fields) == 4 {
		fmt.Sscan(fields[3], &kb)
	}
	return kb / 1024
}

// load runs wrk against the tutorial's bare program and whoami on this
// machine, side by side, then the container through its published port and
// on the host network. The targets take turns within each round, so that
// the machine's drift falls on all of them alike; the ratio is taken round
// by round.
func (b *bench) load(ctx context.Context, r *report) error {
	r.Pinning = "the servers on CPU 0, wrk on CPU 1 (taskset)"
	if runtime.NumCPU() < 2 {
		r.Pinning = "the servers and wrk on the one CPU"
	}
	tutorial := filepath.Join(b.work, "tutorial")
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", tutorial, "./cmd/bench/tutorial").CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./cmd/bench/tutorial: %v: %s", err, out)
	}
	type target struct{ name, url string }
	var targets []target
	url, err := b.startHost(ctx, tutorial)
	if err != nil {
		return err
	}
	targets = append(targets, target{"the tutorial's program (bare net/http)", url})
	if url, err = b.startHost(ctx, b.o.binary, "-addr"); err != nil {
		return err
	}
	targets = append(targets, target{"whoami", url})
	pin := []string{"--label", b.tag}
	if runtime.NumCPU() >= 2 {
		pin = append(pin, "--cpuset-cpus", "0")
	}
	id, url, err := dockercli.RunContainer(ctx, b.o.multi, b.o.port, pin...)
	if err != nil {
		return err
	}
	targets = append(targets, target{b.o.multi + ", published port", url})
	addr, err := freeAddr()
	if err != nil {
		return err
	}
	args := append(append([]string{"run", "-d", "--network", "host"}, pin...), b.o.multi, "-addr", addr)
	if _, err := dockercli.Run(ctx, args...); err != nil {
		return err
	}
	url = "http://" + addr + "/whoami"
	if err := waitOK(ctx, url); err != nil {
		return err
	}
	targets = append(targets, target{b.o.multi + ", host network", url})
	r.RSSIdle = rss(ctx, id)
	for _, conns := range []int{1, 64, 256} {
		b.say("wrk, %d connections: %d rounds of %v on each of the %d targets", conns, b.o.loadRuns, b.o.duration, len(targets))
		runs := make([][]wrkRun, len(targets))
		var ratios []float64
		for range b.o.loadRuns {
			for i, t := range targets {
				w, err := b.wrk(ctx, t.url, conns, true)
				if err != nil {
					return err
				}
				runs[i] = append(runs[i], w)
			}
			ratios = append(ratios, runs[1][len(runs[1])-1].rps()/runs[0][len(runs[0])-1].rps())
		}
		rows := make([]loadRow, len(targets))
		for i, t := range targets {
			rows[i] = newLoadRow(t.name, conns, runs[i])
		}
		r.Load = append(r.Load, rows...)
		r.Ratios = append(r.Ratios, ratioRow{Conns: conns, Tutorial: rows[0].RPS.Median, Whoami: rows[1].RPS.Median, Ratio: summarize(ratios)})
	}
	r.RSSLoad = rss(ctx, id)
	return nil
}

// balancer runs the same load through HAProxy (compose.yaml) with 1 and 3
// replicas; nothing pinned.
func (b *bench) balancer(ctx context.Context, r *report) error {
	var url string
	for _, n := range []int{1, 3} {
		name := fmt.Sprintf("HAProxy, %d %s", n, map[bool]string{true: "replica", false: "replicas"}[n == 1])
		b.say("docker compose up: %s; wrk through it, %d runs", name, b.o.loadRuns)
		if _, err := b.compose.Run(ctx, "compose", "up", "-d", "--wait", "--scale", fmt.Sprintf("whoami=%d", n)); err != nil {
			return err
		}
		if url == "" {
			addr, err := b.compose.Run(ctx, "compose", "port", "lb", b.o.port)
			if err != nil {
				return err
			}
			addr, _, _ = strings.Cut(addr, "\n")
			_, port, _ := net.SplitHostPort(addr)
			url = "http://127.0.0.1:" + port + "/whoami"
		}
		if err := waitOK(ctx, url); err != nil {
			return err
		}
		var runs []wrkRun
		for range b.o.loadRuns {
			w, err := b.wrk(ctx, url, 64, false)
			if err != nil {
				return err
			}
			runs = append(runs, w)
		}
		r.Balancer = append(r.Balancer, newLoadRow(name, 64, runs))
	}
	v, _ := b.compose.Run(ctx, "compose", "exec", "-T", "lb", "haproxy", "-v")
	if f := strings.Fields(v); len(f) > 2 {
		r.HAProxy = f[2]
	}
	return nil
}

// restarts runs make rolling-restart's command, its result as JSON.
func (b *bench) restarts(ctx context.Context, r *report) error {
	replicas := filepath.Join(b.work, "replicas")
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", replicas, "./cmd/replicas").CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./cmd/replicas: %v: %s", err, out)
	}
	b.say("rolling restart of 3 replicas under load (%d runs)", b.o.restartRuns)
	var seconds, rps, first []float64
	for range b.o.restartRuns {
		cmd := exec.CommandContext(ctx, replicas, "-json", "rolling-restart")
		cmd.Env = append(os.Environ(), b.compose.Env...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return fmt.Errorf("replicas rolling-restart: %v: %s", err, stderr.String())
		}
		var res struct {
			Seconds      float64   `json:"seconds"`
			Requests     int       `json:"requests"`
			Failed       int       `json:"failed"`
			FirstAnswers []float64 `json:"first_answer_seconds"`
		}
		if err := json.Unmarshal(out, &res); err != nil {
			return fmt.Errorf("replicas -json: %v: %s", err, out)
		}
		seconds = append(seconds, res.Seconds)
		rps = append(rps, math.Round(float64(res.Requests)/res.Seconds))
		first = append(first, res.FirstAnswers...)
		r.Restart.Requests += res.Requests
		r.Restart.Failed += res.Failed
	}
	r.Restart.Seconds, r.Restart.RPS, r.Restart.FirstAnswer = summarize(seconds), summarize(rps), summarize(first)
	r.Restart.Runs = b.o.restartRuns
	return nil
}
