// Package probe sends HTTP requests to the project's services and waits
// for them: one GET (Get), answers counted by body (Count), a wait bounded
// by a deadline (Until), and a load of concurrent clients that records
// every answer (Start). The tools that drive the Compose stack and the
// Kubernetes cluster share it, with their tests.
package probe

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Get GETs url and returns the body and the status code.
func Get(ctx context.Context, c *http.Client, url string) (string, int, error) {
	return getAs(ctx, c, url, "")
}

// getAs is Get with host, if not empty, as the request's Host: the name that a
// gateway routes by, sent to the address in url. (An empty Host is url's.)
func getAs(ctx context.Context, c *http.Client, url, host string) (string, int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", 0, err
	}
	req.Host = host
	resp, err := c.Do(req)
	if err != nil {
		return "", 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), resp.StatusCode, err
}

// Count sends n GETs to url, one after the other, each on a new connection
// (so that a balancer chooses again each time), and counts the 200 answers
// by body without its newline (a hostname); failed counts the rest.
func Count(ctx context.Context, url string, n int) (counts map[string]int, failed int) {
	return CountAs(ctx, url, "", n)
}

// CountAs is Count with host, if not empty, as the requests' Host.
func CountAs(ctx context.Context, url, host string, n int) (counts map[string]int, failed int) {
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	counts = map[string]int{}
	for range n {
		body, code, err := getAs(ctx, c, url, host)
		if err != nil || code != http.StatusOK {
			failed++
			continue
		}
		counts[strings.TrimSuffix(body, "\n")]++
	}
	return counts, failed
}

// checkTimeout bounds each call of Until's check.
const checkTimeout = 10 * time.Second

// Until calls check every 20 ms until it returns true, or timeout has
// passed (a bound that catches a hang), or ctx is done. Each call gets a
// context of its own, bounded by checkTimeout, so that one check that hangs
// cannot use up the wait. An error is taken as transient and retried; the
// last one is returned with the time-out.
func Until(ctx context.Context, timeout time.Duration, what string, check func(context.Context) (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		cctx, ccancel := context.WithTimeout(ctx, checkTimeout)
		ok, err := check(cctx)
		ccancel()
		if ok && err == nil {
			return nil
		}
		if err != nil {
			last = err
		}
		select {
		case <-ctx.Done():
			if last != nil {
				return fmt.Errorf("waiting for %s: %w (last error: %v)", what, ctx.Err(), last)
			}
			return fmt.Errorf("waiting for %s: %w", what, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// maxRequests bounds a load, whatever its duration.
const maxRequests = 1_000_000

// Options shape a load.
type Options struct {
	Clients int           // concurrent clients
	Timeout time.Duration // of each request (default 5 s)
	// NewConnections sends each request on a new connection, as a balancer
	// that picks a backend per connection (kube-proxy) must see them;
	// otherwise each client keeps its connection alive.
	NewConnections bool
	// Interval, if set, is the pause of each client between requests: a
	// steady probe rather than a flood.
	Interval time.Duration
	// Host, if set, is the requests' Host instead of the URL's: the name a
	// gateway routes by.
	Host string
}

// Load is concurrent clients sending GET to a URL until stopped, counting
// every answer. A nil Load is one that never ran (no clients): every
// method takes it, as stopped and empty.
type Load struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	sent   atomic.Int64
	start  time.Time

	mu       sync.Mutex
	bodies   map[string]int // 200 answers, by body without its newline
	errs     map[string]int // everything else, by error or status
	failures []time.Duration
	slowest  time.Duration
}

// Start starts o.Clients goroutines that GET url in a loop until Stop is
// called, ctx is done or maxRequests have been sent.
func Start(ctx context.Context, url string, o Options) *Load {
	ctx, cancel := context.WithCancel(ctx)
	l := &Load{cancel: cancel, start: time.Now(), bodies: map[string]int{}, errs: map[string]int{}}
	if o.Timeout == 0 {
		o.Timeout = 5 * time.Second
	}
	c := &http.Client{
		Timeout:   o.Timeout,
		Transport: &http.Transport{MaxIdleConnsPerHost: o.Clients, DisableKeepAlives: o.NewConnections},
	}
	for range o.Clients {
		l.wg.Go(func() {
			for ctx.Err() == nil && l.sent.Add(1) <= maxRequests {
				t0 := time.Now()
				body, code, err := getAs(ctx, c, url, o.Host)
				if ctx.Err() != nil {
					l.sent.Add(-1) // cut short by Stop: not a failure, not counted
					return
				}
				l.record(t0, body, code, err)
				if o.Interval > 0 {
					select {
					case <-ctx.Done():
					case <-time.After(o.Interval):
					}
				}
			}
		})
	}
	return l
}

func (l *Load) record(t0 time.Time, body string, code int, err error) {
	took := time.Since(t0)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.slowest = max(l.slowest, took)
	switch {
	case err != nil:
		l.errs[err.Error()]++
	case code != http.StatusOK:
		l.errs[fmt.Sprintf("%d %s", code, strings.TrimSpace(body))]++
	default:
		l.bodies[strings.TrimSuffix(body, "\n")]++
		return
	}
	l.failures = append(l.failures, t0.Sub(l.start))
}

// Stop stops the clients and waits for them. A nil Load is stopped.
func (l *Load) Stop() {
	if l == nil {
		return
	}
	l.cancel()
	l.wg.Wait()
}

// Counts returns how many requests got an answer or an error, and how many
// of them failed (an error, or a status other than 200).
func (l *Load) Counts() (total, failed int) {
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

// Bodies returns the 200 answers by body, and Errors the failures by error
// or status line. A nil Load has none.
func (l *Load) Bodies() map[string]int { return l.snapshot(func() map[string]int { return l.bodies }) }
func (l *Load) Errors() map[string]int { return l.snapshot(func() map[string]int { return l.errs }) }

func (l *Load) snapshot(m func() map[string]int) map[string]int {
	if l == nil {
		return map[string]int{}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return maps.Clone(m())
}

// Strangers returns the bodies of 200 answers that are not one of want,
// with their counts.
func (l *Load) Strangers(want []string) map[string]int {
	out := l.Bodies()
	maps.DeleteFunc(out, func(b string, _ int) bool { return slices.Contains(want, b) })
	return out
}

// Failures returns when each failed request was sent, since Start.
func (l *Load) Failures() []time.Duration {
	if l == nil {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.failures)
}

// Slowest is the longest any request took, answered or not.
func (l *Load) Slowest() time.Duration {
	if l == nil {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.slowest
}

// Since returns the time elapsed since the load started (0 for a nil Load).
func (l *Load) Since() time.Duration {
	if l == nil {
		return 0
	}
	return time.Since(l.start)
}

// Report writes "N requests: N answered 200, N failed" and the failures by
// kind (ReportErrors).
func (l *Load) Report(w io.Writer) {
	total, failed := l.Counts()
	fmt.Fprintf(w, "%d requests: %d answered 200, %d failed\n", total, total-failed, failed)
	l.ReportErrors(w)
}

// ReportErrors writes the failures by kind, one per line: "  N × error".
func (l *Load) ReportErrors(w io.Writer) {
	errs := l.Errors()
	for _, e := range slices.Sorted(maps.Keys(errs)) {
		fmt.Fprintf(w, "  %d × %s\n", errs[e], e)
	}
}

// WaitOK asks url until it answers 200, each request with its own 2 s
// time-out, for at most timeout (a bound that catches a hang), and returns
// the body of that answer.
func WaitOK(ctx context.Context, url string, timeout time.Duration) (body string, err error) {
	c := &http.Client{Timeout: 2 * time.Second}
	err = Until(ctx, timeout, url+" to answer 200", func(ctx context.Context) (bool, error) {
		b, code, err := Get(ctx, c, url)
		body = b
		return code == http.StatusOK, err
	})
	return body, err
}
