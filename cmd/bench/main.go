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
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"time"
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
