package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// keepAlive opens a connection to addr and sends one request on it, so
// that it is idle afterwards. It is closed when the test ends.
func keepAlive(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	r := bufio.NewReader(c)
	if err := get(c, r); err != nil {
		t.Fatal(err)
	}
	return c, r
}

// get sends GET /whoami on c and reads a 200 answer. It returns a little
// after: the server marks a connection idle only after it has sent the
// answer, and the tests need that done.
func get(c net.Conn, r *bufio.Reader) error {
	defer time.Sleep(100 * time.Millisecond)
	return request(c, r)
}

// request sends GET /whoami on c and reads a 200 answer.
func request(c net.Conn, r *bufio.Reader) error {
	c.SetDeadline(time.Now().Add(hang))
	if _, err := io.WriteString(c, "GET /whoami HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		return err
	}
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil || resp.StatusCode != 200 {
		return fmt.Errorf("status %d, %v", resp.StatusCode, err)
	}
	return nil
}

// unfinished opens a connection to addr that sends the start of a request's
// headers and never ends them.
func unfinished(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := io.WriteString(c, "GET /whoami HTTP/1.1\r\nHost: x\r\nX-Slow: "); err != nil {
		t.Fatal(err)
	}
	return c
}

// closedByServer reports whether the server has closed c: a read ends
// with EOF or a reset within 4 s instead of waiting. (The server's own
// time-outs would close it later: 5 s for headers, 10 s for a request.)
func closedByServer(c net.Conn) bool { return closedWithin(c, 4*time.Second) }

// stillOpen reports whether c stays open for half a second.
func stillOpen(c net.Conn) bool { return !closedWithin(c, 500*time.Millisecond) }

func closedWithin(c net.Conn, d time.Duration) bool {
	c.SetReadDeadline(time.Now().Add(d))
	_, err := c.Read(make([]byte, 1))
	return err != nil && !isTimeout(err)
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

func TestAtTheCapTheIdleConnectionUsedLongestAgoMakesRoom(t *testing.T) {
	p := start(t, []string{"-addr", "127.0.0.1:0", "-max-conns", "3"}, nil, os.Hostname)
	slow := unfinished(t, p.addr) // the oldest, soon past its grace
	idle1, r1 := keepAlive(t, p.addr)
	idle2, r2 := keepAlive(t, p.addr)
	time.Sleep(unfinishedGrace)
	// Using idle1 again makes idle2 the one used longest ago.
	if err := get(idle1, r1); err != nil {
		t.Fatal(err)
	}

	// A fourth connection: idle2 goes, not idle1, and not the slow one,
	// older though it is: idle connections go first.
	keepAlive(t, p.addr)
	if err := get(idle2, r2); err == nil {
		t.Error("the idle connection used longest ago still answers: want it cut")
	}
	if err := get(idle1, r1); err != nil {
		t.Errorf("the idle connection used last was cut: %v", err)
	}
	if !stillOpen(slow) {
		t.Error("the connection sending its headers was cut, while an idle one was there")
	}
	line := p.waitFor(t, "at the connection limit")
	if !strings.Contains(line, "limit=3") || !strings.Contains(line, "cut=1") {
		t.Errorf("log line %q: want the limit and how many were cut", line)
	}
}

func TestAtTheCapAConnectionSlowToSendItsHeadersGoesNext(t *testing.T) {
	p := start(t, []string{"-addr", "127.0.0.1:0", "-max-conns", "2"}, nil, os.Hostname)
	slow := unfinished(t, p.addr)
	young := unfinished(t, p.addr)
	// Both are sending headers: a new connection waits until one of them
	// has taken longer than an ordinary client would (unfinishedGrace), then
	// the older one goes.
	t0 := time.Now()
	c, r := keepAlive(t, p.addr)
	if took := time.Since(t0); took < unfinishedGrace/2 {
		t.Errorf("the new connection was answered after %v: want it to wait for the grace of the others (%v)", took, unfinishedGrace)
	}
	if !closedByServer(slow) {
		t.Error("the oldest connection with unfinished headers is still open")
	}
	if !stillOpen(young) {
		t.Error("the younger connection was cut instead of the oldest")
	}
	if err := get(c, r); err != nil {
		t.Errorf("the new connection: %v", err)
	}
}

func TestAtTheCapARequestBeingAnsweredIsNeverCut(t *testing.T) {
	inside := make(chan struct{}, 3)
	release := make(chan struct{})
	blocked := func() (string, error) {
		inside <- struct{}{}
		<-release
		return "web-1", nil
	}
	p := start(t, []string{"-addr", "127.0.0.1:0", "-max-conns", "2"}, nil, blocked)
	answered := make(chan error, 2)
	for range 2 {
		go func() {
			resp, err := (&http.Client{Timeout: hang}).Get(p.url("/whoami"))
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode != 200 {
					err = fmt.Errorf("status %d", resp.StatusCode)
				}
			}
			answered <- err
		}()
	}
	<-inside
	<-inside
	// Both connections are being answered: a third waits for room, and is
	// closed when none comes.
	extra, err := net.Dial("tcp", p.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer extra.Close()
	if !closedByServer(extra) {
		t.Error("a third connection was kept while both others were being answered")
	}
	close(release)
	for range 2 {
		if err := <-answered; err != nil {
			t.Errorf("a request being answered failed: %v", err)
		}
	}
	if line := p.waitFor(t, "at the connection limit"); !strings.Contains(line, "refused=1") {
		t.Errorf("log line %q: want refused=1", line)
	}
}

func TestTheCapFollowsTheMemoryLimit(t *testing.T) {
	for _, tt := range []struct {
		limit int64
		want  int
	}{
		{64 << 20, 1024}, // the Kubernetes manifest's limit
		{128 << 20, 2389},
		{math.MaxInt64, 10000}, // no limit
		{1 << 20, 16},          // too small to be of use: still a few
	} {
		if got := maxConnsFor(tt.limit); got != tt.want {
			t.Errorf("maxConnsFor(%d) = %d, want %d", tt.limit, got, tt.want)
		}
	}
}

func TestTheCapComesFromTheFlagThenMAX_CONNS(t *testing.T) {
	for _, tt := range []struct {
		name string
		args []string
		vars map[string]string
		want string
	}{
		{"the flag", []string{"-max-conns", "7"}, map[string]string{"MAX_CONNS": "9"}, "max_conns=7"},
		{"MAX_CONNS", nil, map[string]string{"MAX_CONNS": "9"}, "max_conns=9"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := start(t, append([]string{"-addr", "127.0.0.1:0"}, tt.args...), tt.vars, os.Hostname)
			if line := p.waitFor(t, "whoami listening"); !strings.Contains(line, tt.want) {
				t.Errorf("log line %q: want %s", line, tt.want)
			}
		})
	}
}

func TestShutdownCutsStuckClientsAndSucceeds(t *testing.T) {
	p := start(t, []string{"-addr", "127.0.0.1:0"}, nil, os.Hostname)
	// Half a header (cut by the 5 s header time-out, at the latest when the
	// grace ends); and a whole header with half a body, which the server
	// waits for before it sends its answer (and reads the next request), up
	// to the 10 s read time-out: longer than the grace.
	unfinished(t, p.addr)
	body, err := net.Dial("tcp", p.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer body.Close()
	io.WriteString(body, "GET /whoami HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly ten b")
	time.Sleep(100 * time.Millisecond) // for the server to read what was sent

	t0 := time.Now()
	p.cancel() // what SIGTERM does
	if err := p.wait(); err != nil {
		t.Fatalf("run returned %v, want nil: stopping is not a failure", err)
	}
	if !closedByServer(body) {
		t.Error("the client with half a body is still connected after run returned")
	}
	if took := time.Since(t0); took < shutdownTimeout || took > shutdownTimeout+2*time.Second {
		t.Errorf("stopped %v after the signal, want the %v grace and little more", took, shutdownTimeout)
	}
	logs := p.stderr.String()
	order := []string{`msg="whoami shutting down"`, `level=WARN msg="whoami cut the connections still open after the shutdown grace" connections=`, `msg="whoami stopped"`}
	at := 0
	for _, line := range order {
		i := strings.Index(logs[at:], line)
		if i < 0 {
			t.Fatalf("want, in this order:\n%s\ngot:\n%s", strings.Join(order, "\n"), logs)
		}
		at += i
	}
}

// TestConnectionMemory measures what a connection costs the server, run as
// a process of its own: the resident memory it gains with 1,000 idle
// keep-alive connections, then with 1,000 more that have sent 15 KB of
// headers and no end. The cap on connections assumes connMemory for each:
// the measure must stay under it.
func TestConnectionMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary: not in -short")
	}
	const n = 1000
	bin := filepath.Join(t.TempDir(), "whoami")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	port := reservePort(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-addr", "127.0.0.1:"+port, "-max-conns", "100000")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer cmd.Process.Kill()
	addr := "127.0.0.1:" + port
	for deadline := time.Now().Add(hang); ; time.Sleep(10 * time.Millisecond) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the server did not listen")
		}
	}
	rss := func() int64 {
		time.Sleep(300 * time.Millisecond) // let the server take them all in
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", cmd.Process.Pid))
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
				kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
				return kb << 10
			}
		}
		t.Fatal("no VmRSS")
		return 0
	}
	base := rss()
	for range n {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := request(c, bufio.NewReader(c)); err != nil {
			t.Fatal(err)
		}
	}
	idle := rss()
	header := "GET /whoami HTTP/1.1\r\nHost: x\r\nX-Slow: " + strings.Repeat("a", 15<<10)
	for range n {
		c := unfinished(t, addr)
		if _, err := io.WriteString(c, header); err != nil {
			t.Fatal(err)
		}
	}
	slow := rss()
	perIdle, perSlow := (idle-base)/n, (slow-idle)/n
	t.Logf("resident memory: %.1f MB with no connection; %.1f KB more per idle keep-alive connection, %.1f KB per connection that sent 15 KB of headers",
		float64(base)/1e6, float64(perIdle)/1024, float64(perSlow)/1024)
	for name, per := range map[string]int64{"an idle connection": perIdle, "a slow connection": perSlow} {
		if per > connMemory {
			t.Errorf("%s takes %d bytes, more than connMemory (%d): the cap would let the memory limit be exceeded", name, per, connMemory)
		}
	}
}
