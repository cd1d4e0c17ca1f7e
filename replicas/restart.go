package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// maxRequests bounds a load, whatever its duration.
const maxRequests = 1_000_000

// load is concurrent clients sending GET /whoami to the balancer until
// stopped, counting every answer.
type load struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	sent   atomic.Int64

	mu     sync.Mutex
	bodies map[string]int // 200 answers, by body without its newline
	errs   map[string]int // everything else, by error or status
}

// startLoad starts clients goroutines that GET url in a loop, each on its
// own keep-alive connection, until stop is called, ctx is done or
// maxRequests have been sent.
func startLoad(ctx context.Context, url string, clients int) *load {
	ctx, cancel := context.WithCancel(ctx)
	l := &load{cancel: cancel, bodies: map[string]int{}, errs: map[string]int{}}
	c := &http.Client{
		Timeout:   5 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: clients},
	}
	for range clients {
		l.wg.Go(func() {
			for ctx.Err() == nil && l.sent.Add(1) <= maxRequests {
				body, code, err := fetch(ctx, c, url)
				if ctx.Err() != nil {
					l.sent.Add(-1) // cut short by stop: not a failure, not counted
					return
				}
				l.mu.Lock()
				switch {
				case err != nil:
					l.errs[err.Error()]++
				case code != http.StatusOK:
					l.errs[fmt.Sprintf("%d %s", code, strings.TrimSpace(body))]++
				default:
					l.bodies[strings.TrimSuffix(body, "\n")]++
				}
				l.mu.Unlock()
			}
		})
	}
	return l
}

// stop stops the clients and waits for them.
func (l *load) stop() {
	if l == nil {
		return
	}
	l.cancel()
	l.wg.Wait()
}

// counts returns how many requests got an answer or an error, and how many
// of them failed (an error, or a status other than 200).
func (l *load) counts() (total, failed int) {
	if l == nil {
		return 0, 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range l.errs {
		failed += c
	}
	total = failed
	for _, c := range l.bodies {
		total += c
	}
	return total, failed
}

// strangers returns the bodies of 200 answers that are not one of
// hostnames, with their counts.
func (l *load) strangers(hostnames []string) map[string]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string]int{}
	for b, c := range l.bodies {
		if !slices.Contains(hostnames, b) {
			out[b] = c
		}
	}
	return out
}

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
	load     *load
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
		r.load = startLoad(ctx, url, clients)
		defer r.load.stop()
	}
	start := time.Now()
	seen := map[string]bool{}
	for _, o := range old {
		seen[o.ID] = true
	}
	for _, o := range old {
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
	r.load.stop()
	return r, nil
}

// replace starts one more replica, waits until it answers through the
// balancer, then stops and removes old.
func (s *stack) replace(ctx context.Context, old replica, n int, url string, seen map[string]bool) (step, error) {
	st := step{old: old}
	t0 := time.Now()
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
	if err := poll(ctx, "replica "+st.new.Name+" healthy", func() (bool, error) {
		out, err := s.docker(ctx, "inspect", "-f", "{{.State.Health.Status}}", st.new.ID)
		if out == "unhealthy" {
			return false, fmt.Errorf("replica %s is unhealthy", st.new.Name)
		}
		return out == "healthy", err
	}); err != nil {
		return st, err
	}
	st.healthy = time.Since(t0)
	c := &http.Client{Timeout: 2 * time.Second}
	if err := poll(ctx, "replica "+st.new.Name+" answering through the balancer", func() (bool, error) {
		body, _, _ := fetch(ctx, c, url)
		return body == st.new.Hostname+"\n", nil
	}); err != nil {
		return st, err
	}
	st.firstAnswer = time.Since(t0)
	t1 := time.Now()
	if _, err := s.docker(ctx, "stop", old.ID); err != nil {
		return st, err
	}
	st.stopDuration = time.Since(t1)
	_, err = s.docker(ctx, "rm", old.ID)
	return st, err
}

// poll calls check every 20 ms until it returns true or an error, or 60 s
// have passed: a bound that only catches a hang.
func poll(ctx context.Context, what string, check func() (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for {
		ok, err := check()
		if ok || err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w", what, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (r *restart) print(w io.Writer) {
	fmt.Fprintf(w, "\nrolling restart of %d replicas: %.1f s\n", len(r.steps), r.duration.Seconds())
	if r.load == nil {
		return
	}
	total, failed := r.load.counts()
	fmt.Fprintf(w, "meanwhile %d clients sent %d requests through the balancer (%.0f/s): %d answered 200, %d failed\n",
		r.clients, total, float64(total)/r.duration.Seconds(), total-failed, failed)
	r.load.mu.Lock()
	defer r.load.mu.Unlock()
	var errs []string
	for e, c := range r.load.errs {
		errs = append(errs, fmt.Sprintf("  %d × %s", c, e))
	}
	sort.Strings(errs)
	for _, e := range errs {
		fmt.Fprintln(w, e)
	}
}
