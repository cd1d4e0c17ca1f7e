package probe

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// A real HTTP server in the test process, which answers by the request's
// Host: "a" and "b" (with a newline, as whoami does) in turn, and 503 for
// every third request.
func server(t *testing.T) (url string, hosts *atomic.Value) {
	var n atomic.Int64
	hosts = &atomic.Value{}
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hosts.Store(r.Host)
		i := n.Add(1)
		if i%3 == 0 {
			http.Error(w, "no backend", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte([]string{"a", "b"}[i%2] + "\n"))
	}))
	t.Cleanup(s.Close)
	return s.URL, hosts
}

func TestCountAs(t *testing.T) {
	url, hosts := server(t)
	counts, failed := CountAs(t.Context(), url, "whoami.test", 6)
	if counts["a"] != 2 || counts["b"] != 2 || failed != 2 || len(counts) != 2 {
		t.Errorf("counts %v, failed %d; want a 2, b 2, failed 2", counts, failed)
	}
	if got := hosts.Load(); got != "whoami.test" {
		t.Errorf("Host %q, want whoami.test", got)
	}
	if _, failed := Count(t.Context(), "http://127.0.0.1:1/", 2); failed != 2 {
		t.Errorf("nothing listening: %d failed, want 2", failed)
	}
}

func TestUntil(t *testing.T) {
	calls := 0
	err := Until(t.Context(), 5*time.Second, "the third call", func(context.Context) (bool, error) {
		calls++
		return calls == 3, nil
	})
	if err != nil || calls != 3 {
		t.Errorf("Until = %v after %d calls, want nil after 3", err, calls)
	}
	err = Until(t.Context(), 100*time.Millisecond, "never", func(context.Context) (bool, error) {
		return false, errors.New("still down")
	})
	if err == nil || !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "waiting for never") ||
		!strings.Contains(err.Error(), "last error: still down") {
		t.Errorf("Until = %v, want the time-out with what it waited for and the last error", err)
	}
}

func TestLoadCountsEveryAnswer(t *testing.T) {
	url, hosts := server(t)
	l := Start(t.Context(), url, Options{Clients: 2, Interval: time.Millisecond, Host: "front.test"})
	if err := Until(t.Context(), 30*time.Second, "30 answers", func(context.Context) (bool, error) {
		total, _ := l.Counts()
		return total >= 30, nil
	}); err != nil {
		t.Fatal(err)
	}
	l.Stop()
	total, failed := l.Counts()
	bodies, errs := l.Bodies(), l.Errors()
	if bodies["a"]+bodies["b"] != total-failed || errs["503 no backend"] != failed || failed == 0 || len(errs) != 1 {
		t.Errorf("total %d, failed %d, bodies %v, errors %v", total, failed, bodies, errs)
	}
	if len(l.Failures()) != failed {
		t.Errorf("%d failure times for %d failures", len(l.Failures()), failed)
	}
	if s := l.Strangers([]string{"a"}); len(s) != 1 || s["b"] != bodies["b"] {
		t.Errorf("Strangers(a) = %v, want only b", s)
	}
	if got := hosts.Load(); got != "front.test" {
		t.Errorf("Host %q, want front.test", got)
	}
	var report strings.Builder
	l.Report(&report)
	want := fmt.Sprintf("%d requests: %d answered 200, %d failed\n  %d × 503 no backend\n", total, total-failed, failed, failed)
	if report.String() != want {
		t.Errorf("report:\n%s\nwant:\n%s", report.String(), want)
	}
	again, _ := l.Counts()
	if again != total {
		t.Errorf("%d requests after Stop, %d before", again, total)
	}
}

// Every method takes a nil Load: a load that never ran (-clients 0).
func TestANilLoadIsStoppedAndEmpty(t *testing.T) {
	var l *Load
	l.Stop()
	var report strings.Builder
	l.Report(&report)
	if total, failed := l.Counts(); total != 0 || failed != 0 || len(l.Bodies()) != 0 || len(l.Errors()) != 0 ||
		len(l.Strangers(nil)) != 0 || l.Failures() != nil || l.Slowest() != 0 || l.Since() != 0 {
		t.Errorf("a nil Load: %d, %d, %v", total, failed, l.Bodies())
	}
	if report.String() != "0 requests: 0 answered 200, 0 failed\n" {
		t.Errorf("a nil Load reports %q", report.String())
	}
}
