// Command replicas drives the load-balanced stack of compose.yaml: whoami
// replicas behind HAProxy. It is what `make lb-demo` and
// `make rolling-restart` run, and its tests check the stack with real
// containers and real requests.
//
//	go run ./cmd/replicas demo             # up, wait until healthy, count who answers
//	go run ./cmd/replicas rolling-restart  # replace every replica under load, count failures
//
// It runs `docker compose` in the current directory, so the usual Compose
// variables apply (COMPOSE_PROJECT_NAME, LB_PORT, WHOAMI_IMAGE, ...). Every
// request goes to the balancer's port published on 127.0.0.1, and every run
// is bounded in requests and in time.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"time"

	"whoami/internal/cli"
	"whoami/internal/probe"
)

func main() { cli.Main("replicas", run) }

const usage = `Usage: replicas [flags] demo|rolling-restart [flags]

  demo             bring the stack up (3 replicas), wait until every replica is
                   healthy, send -n requests through the balancer and print
                   which replica answered how many; the stack keeps running
  rolling-restart  replace every replica with a fresh container, one at a
                   time (the new one answering through the balancer before
                   the old one gets docker stop), while -clients clients load
                   the balancer; fails if a single request failed

Flags:
`

func run(ctx context.Context, args []string, stdout, _ io.Writer) error {
	fs := flag.NewFlagSet("replicas", flag.ContinueOnError)
	n := fs.Int("n", 30, "demo: how many requests to send")
	replicas := fs.Int("replicas", 3, "demo: how many replicas to run")
	clients := fs.Int("clients", 4, "rolling-restart: concurrent clients during the restart (0: no load)")
	timeout := fs.Duration("timeout", 5*time.Minute, "give up after this long")
	verbose := fs.Bool("v", false, "print each step as it begins")
	asJSON := fs.Bool("json", false, "rolling-restart: print the result as JSON instead of sentences")
	args, err := cli.Parse(fs, args, stdout, usage)
	if err != nil {
		return err
	}
	cmd, _, err := cli.Command(args, 0, "demo", "rolling-restart")
	if err != nil {
		return err
	}
	if *n < 1 || *replicas < 1 || *clients < 0 || *timeout <= 0 {
		return cli.Usagef("-n and -replicas must be at least 1, -clients at least 0, -timeout more than 0")
	}
	// ctx ends on SIGINT or SIGTERM; the commands' own bound comes on top.
	interrupt := ctx
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	s := &stack{out: stdout, verbose: *verbose}
	if *asJSON {
		s.out = nil // the steps' sentences too
	}
	// On an interrupt, the stack goes back to the replicas it had.
	before, err := s.replicas(ctx)
	if err != nil {
		return err
	}
	switch cmd {
	case "demo":
		err := demo(ctx, s, *replicas, *n, stdout)
		if err != nil && interrupt.Err() != nil {
			return s.interrupted(ctx, len(before))
		}
		return err
	case "rolling-restart":
		r, err := s.rollingRestart(ctx, *clients)
		if err != nil && interrupt.Err() != nil {
			return s.interrupted(ctx, len(before))
		}
		if err != nil {
			return err
		}
		if *asJSON {
			if err := json.NewEncoder(stdout).Encode(r.result()); err != nil {
				return err
			}
		} else {
			r.print(stdout)
		}
		if _, failed := r.load.Counts(); failed > 0 {
			return fmt.Errorf("%d requests failed during the rolling restart", failed)
		}
		return nil
	}
	return nil
}

// demo brings the stack up and shows that every replica answers.
func demo(ctx context.Context, s *stack, replicas, n int, w io.Writer) error {
	fmt.Fprintf(w, "==> docker compose up -d --wait --scale whoami=%d\n", replicas)
	if err := s.up(ctx, replicas); err != nil {
		return err
	}
	rs, err := s.replicas(ctx)
	if err != nil {
		return err
	}
	url, err := s.url(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "==> %d requests to %s\n\n", n, url)
	counts, failed := probe.Count(ctx, url, n)
	fmt.Fprintf(w, "%-24s %-14s %-8s %s\n", "replica", "hostname", "health", "requests")
	known := 0
	for _, r := range rs {
		fmt.Fprintf(w, "%-24s %-14s %-8s %d\n", r.Name, r.Hostname, r.Health, counts[r.Hostname])
		known += counts[r.Hostname]
	}
	if other := n - failed - known; other > 0 {
		fmt.Fprintf(w, "%-24s %-14s %-8s %d\n", "(not a replica)", "", "", other)
	}
	fmt.Fprintf(w, "\n%d requests: %d answered by the %d replicas, %d failed.\n", n, known, len(rs), failed)
	fmt.Fprintf(w, "The stack is still running: curl %s, make rolling-restart, make lb-down to stop it.\n", url)
	if stats, err := s.statsURL(ctx); err == nil {
		fmt.Fprintf(w, "HAProxy's view of the replicas: %s\n", stats)
	}
	if known != n {
		return fmt.Errorf("%d of %d requests were not answered by a replica of this stack", n-known, n)
	}
	return nil
}
