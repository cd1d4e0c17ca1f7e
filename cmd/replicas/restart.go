package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"whoami/internal/probe"
	"whoami/internal/results"
)

// step is the replacement of one replica.
type step struct {
	old, new     replica
	healthy      time.Duration // from docker compose up to healthy
	firstAnswer  time.Duration // from docker compose up to its first answer through the balancer
	stopDuration time.Duration // docker stop of the old one
}

// restart is what a rolling restart did.
type restart struct {
	steps    []step
	duration time.Duration
	clients  int
	load     *probe.Load
}

// rollingRestart replaces every replica with a fresh container, one at a
// time, as an orchestrator's rolling update does: a new replica is started
// and must be healthy and answering through the balancer before an old one
// gets docker stop, so capacity never drops below the number of replicas.
// With clients > 0, that many clients load the balancer the whole time.
func (s *stack) rollingRestart(ctx context.Context, clients int) (*restart, error) {
	old, err := s.replicas(ctx)
	if err != nil {
		return nil, err
	}
	if len(old) == 0 {
		return nil, errors.New("no whoami replica is running: start the stack first (make lb-demo)")
	}
	url, err := s.url(ctx)
	if err != nil {
		return nil, err
	}
	r := &restart{clients: clients}
	if clients > 0 {
		r.load = probe.Start(ctx, url, probe.Options{Clients: clients})
		defer r.load.Stop()
	}
	start := time.Now()
	seen := map[string]bool{}
	for _, o := range old {
		seen[o.ID] = true
	}
	for _, o := range old {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		st, err := s.replace(ctx, o, len(old), url, seen)
		if err != nil {
			return nil, err
		}
		if s.out != nil {
			fmt.Fprintf(s.out, "replaced %s (%s) by %s (%s): healthy %.1f s and answering through the balancer %.1f s after start; old one stopped in %.1f s\n",
				o.Name, o.Hostname, st.new.Name, st.new.Hostname, st.healthy.Seconds(), st.firstAnswer.Seconds(), st.stopDuration.Seconds())
		}
		r.steps = append(r.steps, st)
	}
	r.duration = time.Since(start)
	r.load.Stop()
	return r, nil
}

// replace starts one more replica, waits until it answers through the
// balancer, then stops and removes old.
func (s *stack) replace(ctx context.Context, old replica, n int, url string, seen map[string]bool) (step, error) {
	st := step{old: old}
	t0 := time.Now()
	s.phase("start a new replica to replace %s", old.Name)
	if _, err := s.compose(ctx, "up", "-d", "--no-deps", "--no-recreate", "--scale", fmt.Sprintf("whoami=%d", n+1), "whoami"); err != nil {
		return st, err
	}
	// The new container is the one not seen before.
	rs, err := s.replicas(ctx)
	if err != nil {
		return st, err
	}
	for _, r := range rs {
		if !seen[r.ID] {
			st.new = r
		}
	}
	if st.new.ID == "" {
		return st, errors.New("docker compose up --scale started no new replica")
	}
	seen[st.new.ID] = true
	s.phase("wait until %s is healthy", st.new.Name)
	var unhealthy error // Docker gave up on it: stop waiting
	if err := probe.Until(ctx, time.Minute, "replica "+st.new.Name+" healthy", func(ctx context.Context) (bool, error) {
		out, err := s.docker(ctx, "inspect", "-f", "{{.State.Health.Status}}", st.new.ID)
		if out == "unhealthy" {
			unhealthy = fmt.Errorf("replica %s is unhealthy (docker inspect %s)", st.new.Name, st.new.ID)
			return true, nil
		}
		return out == "healthy", err
	}); err != nil {
		return st, err
	}
	if unhealthy != nil {
		return st, unhealthy
	}
	st.healthy = time.Since(t0)
	s.phase("wait until %s answers through the balancer", st.new.Name)
	c := &http.Client{Timeout: 2 * time.Second}
	if err := probe.Until(ctx, time.Minute, "replica "+st.new.Name+" answering through the balancer", func(ctx context.Context) (bool, error) {
		body, _, _ := probe.Get(ctx, c, url)
		return body == st.new.Hostname+"\n", nil
	}); err != nil {
		return st, err
	}
	st.firstAnswer = time.Since(t0)
	if err := ctx.Err(); err != nil {
		return st, err
	}
	s.phase("docker stop %s", old.Name)
	t1 := time.Now()
	if _, err := s.docker(ctx, "stop", old.ID); err != nil {
		return st, err
	}
	st.stopDuration = time.Since(t1)
	s.phase("docker rm %s", old.Name)
	_, err = s.docker(ctx, "rm", old.ID)
	return st, err
}

// phase tells, with -v, which step begins.
func (s *stack) phase(format string, args ...any) {
	if s.verbose && s.out != nil {
		fmt.Fprintf(s.out, "--> "+format+"\n", args...)
	}
}

func (r *restart) print(w io.Writer) {
	fmt.Fprintf(w, "\nrolling restart of %d replicas: %.1f s\n", len(r.steps), r.duration.Seconds())
	if r.load == nil {
		return
	}
	total, failed := r.load.Counts()
	fmt.Fprintf(w, "meanwhile %d clients sent %d requests through the balancer (%.0f/s): %d answered 200, %d failed\n",
		r.clients, total, float64(total)/r.duration.Seconds(), total-failed, failed)
	r.load.ReportErrors(w)
}

// result is the restart in figures, as -json prints it (make bench reads it).
func (r *restart) result() results.Restart {
	res := results.Restart{Replicas: len(r.steps), Seconds: r.duration.Seconds(), Clients: r.clients}
	res.Requests, res.Failed = r.load.Counts()
	for _, st := range r.steps {
		res.FirstAnswer = append(res.FirstAnswer, st.firstAnswer.Seconds())
	}
	return res
}
