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
	"context"
	"errors"
	"flag"
	"io"
	"os/exec"
	"strconv"
	"time"

	"whoami/internal/cli"
)

func main() { cli.Main("bench", run) }

// options is what make bench passes.
type options struct {
	golang, single, multi, binary string
	port                          string // the service's, .env's SERVICE_PORT
	runs, coldRuns, loadRuns      int
	restartRuns                   int
	duration                      time.Duration
	out                           string
}

const usage = `Usage: bench [flags]

Measures the images, the builds, the container's life cycle and the service
under load, and writes the report (make bench passes every flag).

Flags:
`

// run prints its progress to stderr, the report goes to -out.
func run(ctx context.Context, args []string, stdout, progress io.Writer) error {
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
	args, err := cli.Parse(fs, args, stdout, usage)
	if err != nil {
		return err
	}
	if len(args) > 0 {
		return cli.Usagef("unexpected argument %q", args[0])
	}
	if port, err := strconv.Atoi(o.port); o.port != "" && (err != nil || port < 1 || port > 65535) {
		return cli.Usagef("-port %q: want a port number", o.port)
	}
	if o.runs < 1 || o.coldRuns < 1 || o.loadRuns < 1 || o.restartRuns < 1 || o.duration <= 0 {
		return cli.Usagef("-runs, -cold-runs, -load-runs and -restart-runs must be at least 1, -duration more than 0")
	}
	if o.golang == "" || o.single == "" || o.multi == "" || o.binary == "" || o.port == "" {
		return cli.Usagef("-golang, -single, -multi, -binary and -port are required (make bench passes them)")
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
