package probe

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
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

func TestANilLoadIsStoppedAndEmpty(t *testing.T) {
	var l *Load
	l.Stop()
	if total, failed := l.Counts(); total != 0 || failed != 0 || len(l.Bodies()) != 0 || l.Since() != 0 {
		t.Errorf("a nil Load: %d, %d, %v", total, failed, l.Bodies())
	}
}

func TestEachFloodSendsWhatItSaysAndStopsByItself(t *testing.T) {
	for _, tt := range []struct {
		kind FloodKind
		want string // the start of what each connection sends at once
	}{
		{Headers, get + "X-Flood-a"},
		{Idle, get + "\r\n"},
		{Body, get + "Content-Length: 100000\r\n\r\na"},
		{NextRequest, get + "\r\n"},
		{SlowRead, "GET /x/../&&&"},
		{SlowPipelined, "GET /x/../&&&"},
		{Oversized, get + "X-Flood: aaaa"},
		{EarlyAnswer, "POST /whoami HTTP/1.1\r\nHost: flood\r\nContent-Length: 1048576\r\n\r\naaa"},
		{Silent, ""},
		{Renewing, get},
		{Unread, get + "\r\n" + get + "\r\n"},
	} {
		t.Run(string(tt.kind), func(t *testing.T) {
			t.Parallel()
			// A raw server that reads the start of each connection (or,
			// for one that should send nothing, waits for a byte) and
			// holds it open.
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			sent := make(chan string, 2)
			go func() {
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					t.Cleanup(func() { c.Close() })
					go func() {
						b := make([]byte, max(len(tt.want), 1))
						c.SetReadDeadline(time.Now().Add(time.Second))
						n, _ := io.ReadFull(c, b)
						sent <- string(b[:n])
					}()
				}
			}()
			ctx, cancel := context.WithTimeout(t.Context(), 1500*time.Millisecond)
			defer cancel()
			done := make(chan Flooded, 1)
			go func() { done <- flood(ctx, ln.Addr().String(), 2, tt.kind) }()
			for range 2 {
				if got := <-sent; got != tt.want {
					t.Errorf("a connection sent %.80q, want %.80q", got, tt.want)
				}
			}
			select {
			case f := <-done:
				if f.Opened != 2 || f.Cut != 0 {
					t.Errorf("opened %d, cut %d; want 2 opened and held", f.Opened, f.Cut)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("the flood went on 10 s past its deadline")
			}
		})
	}
}
