package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
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
	return readAnswer(c, r)
}

// readAnswer reads a 200 answer from r.
func readAnswer(c net.Conn, r *bufio.Reader) error {
	c.SetReadDeadline(time.Now().Add(hang))
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
	return send(t, addr, "GET /whoami HTTP/1.1\r\nHost: x\r\nX-Slow: ")
}

// send opens a connection to addr, closed when the test ends, and sends
// start on it.
func send(t *testing.T, addr, start string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := io.WriteString(c, start); err != nil {
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
	time.Sleep(2 * unfinishedGrace) // a grace counted from the server's start would be over
	slow := unfinished(t, p.addr)
	young := unfinished(t, p.addr)
	// Both are sending headers: a new connection waits until one of them
	// has taken longer than an ordinary client would (unfinishedGrace), then
	// the older one goes.
	t0 := time.Now()
	c, err := net.Dial("tcp", p.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	if err := request(c, r); err != nil {
		t.Fatal(err)
	}
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
	t.Parallel() // it waits on time-outs
	inside := make(chan struct{}, 3)
	release := make(chan struct{})
	blocked := func() (string, error) {
		inside <- struct{}{}
		<-release
		return "web-1", nil
	}
	p := start(t, []string{"-addr", "127.0.0.1:0", "-max-conns", "2"}, nil, blocked)
	defer close(release) // whatever happens, the handlers return
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
	for range 2 {
		receive(t, inside, "a request to reach the handler")
	}
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
	release <- struct{}{}
	release <- struct{}{}
	for range 2 {
		if err := receive(t, answered, "an answer"); err != nil {
			t.Errorf("a request being answered failed: %v", err)
		}
	}
	if line := p.waitFor(t, "at the connection limit"); !strings.Contains(line, "refused=1") {
		t.Errorf("log line %q: want refused=1", line)
	}
}

// receive waits for a value from ch, for hang at most: a server that
// never gets there fails the test instead of hanging the package.
func receive[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(hang):
		t.Fatalf("no %s within %v", what, hang)
		panic("unreachable")
	}
}

// trickleBody opens a connection to addr that sends GET /whoami with a
// body of 100,000 bytes, which the handler does not read, a byte every
// 100 ms, until the server closes it or the test ends.
func trickleBody(t *testing.T, addr string) net.Conn {
	t.Helper()
	c := send(t, addr, "GET /whoami HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n")
	go func() {
		for range int(hang / (100 * time.Millisecond)) {
			time.Sleep(100 * time.Millisecond)
			if _, err := io.WriteString(c, "a"); err != nil {
				return
			}
		}
	}()
	return c
}

// ordinary makes n requests to p, each on a new connection, and returns
// the errors.
func ordinary(p *process, n int) []error {
	client := &http.Client{Timeout: hang, Transport: &http.Transport{DisableKeepAlives: true}}
	var errs []error
	for range n {
		resp, err := client.Get(p.url("/whoami"))
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				err = fmt.Errorf("status %d", resp.StatusCode)
			}
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

func TestAtTheCapATrickledBodyHoldsNoSlot(t *testing.T) {
	// The handler has answered at once; net/http then drains the body it
	// did not read, up to the 10 s read time-out. That is no request being
	// answered: after the grace, the cap may cut it.
	p := start(t, []string{"-addr", "127.0.0.1:0", "-max-conns", "4"}, nil, os.Hostname)
	for range 4 {
		trickleBody(t, p.addr)
	}
	time.Sleep(100 * time.Millisecond) // their handlers have run
	if errs := ordinary(p, 10); len(errs) > 0 {
		t.Errorf("%d of 10 ordinary requests failed while 4 clients trickled bodies at a cap of 4: %v", len(errs), errs)
	}
	wantCut(t, p)
}

// wantCut checks that the cap cut a connection to make room, as its first
// log line says.
func wantCut(t *testing.T, p *process) {
	t.Helper()
	if line := p.waitFor(t, "at the connection limit"); !strings.Contains(line, "cut=1 refused=0") {
		t.Errorf("log line %q: want cut=1 refused=0", line)
	}
}

func TestAtTheCapAClientThatDoesNotReadItsAnswersHoldsNoSlot(t *testing.T) {
	// Pipelined requests, their answers never read: once the socket's
	// buffers are full, the server is stuck writing an answer, after its
	// handler. After the grace, the cap may cut it.
	p := start(t, []string{"-addr", "127.0.0.1:0", "-max-conns", "2"}, nil, os.Hostname)
	requests := strings.Repeat("GET /whoami HTTP/1.1\r\nHost: x\r\n\r\n", 200_000) // 7 MB, for 36 MB of answers
	for range 2 {
		c, err := net.Dial("tcp", p.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetWriteDeadline(time.Now().Add(hang))
		go io.WriteString(c, requests) // ends when the server closes it
	}
	time.Sleep(time.Second) // the buffers fill
	if errs := ordinary(p, 10); len(errs) > 0 {
		t.Errorf("%d of 10 ordinary requests failed while 2 clients read none of their answers at a cap of 2: %v", len(errs), errs)
	}
	wantCut(t, p)
}

func TestAClientThatDoesNotReadItsAnswersIsDroppedAfterTheWriteTimeout(t *testing.T) {
	t.Parallel() // it waits on time-outs
	// No cap in sight: the write time-out alone drops it, at most
	// writeSlack late.
	p := start(t, []string{"-addr", "127.0.0.1:0"}, nil, os.Hostname)
	c, err := net.Dial("tcp", p.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Whole requests only (ended when the connection is), so that no
	// header time-out closes it instead.
	go io.WriteString(c, strings.Repeat("GET /whoami HTTP/1.1\r\nHost: x\r\n\r\n", 200_000)) // 7 MB, for 36 MB of answers
	time.Sleep(writeTimeout + writeSlack + time.Second)
	// Dropped: once what the buffers hold is read, the connection ends.
	c.SetReadDeadline(time.Now().Add(hang))
	if _, err := io.Copy(io.Discard, c); isTimeout(err) {
		t.Fatalf("still connected %v after it stopped reading its answers", writeTimeout+writeSlack+time.Second+hang)
	}
}

func TestAtTheCapAKeptAliveConnectionThatBeganItsNextRequestIsNotIdle(t *testing.T) {
	p := start(t, []string{"-addr", "127.0.0.1:0", "-max-conns", "3"}, nil, os.Hostname)
	reused, r := keepAlive(t, p.addr) // the oldest idle connection
	idle, _ := keepAlive(t, p.addr)
	keepAlive(t, p.addr)
	// The reused connection sends the first line of its next request: it
	// is no longer idle. A fourth connection takes the place of the other
	// idle one used longest ago.
	if _, err := io.WriteString(reused, "GET /whoami HTTP/1.1\r\n"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	keepAlive(t, p.addr)
	if !closedByServer(idle) {
		t.Error("the idle connection used longest ago is still open")
	}
	if _, err := io.WriteString(reused, "Host: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	if err := readAnswer(reused, r); err != nil {
		t.Errorf("the kept-alive connection that had begun its next request was cut: %v", err)
	}
}

func TestAKeptAliveConnectionsGraceCountsFromItsFirstByte(t *testing.T) {
	p := start(t, []string{"-addr", "127.0.0.1:0", "-max-conns", "2"}, nil, os.Hostname)
	reused, r := keepAlive(t, p.addr)
	time.Sleep(unfinishedGrace + 100*time.Millisecond) // idle longer than the grace
	slow := unfinished(t, p.addr)
	time.Sleep(100 * time.Millisecond)
	if _, err := io.WriteString(reused, "GET /whoami HTTP/1.1\r\n"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // for the server to read it
	// Neither is idle, and both began within the grace: a new connection
	// waits until the slow one, which began first, has had its grace.
	c, cr := keepAlive(t, p.addr)
	if !closedByServer(slow) {
		t.Error("the connection that began sending first is still open")
	}
	if _, err := io.WriteString(reused, "Host: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	if err := readAnswer(reused, r); err != nil {
		t.Errorf("the kept-alive connection was cut %v after its first byte, within its grace: %v", 100*time.Millisecond, err)
	}
	if err := get(c, cr); err != nil {
		t.Errorf("the new connection: %v", err)
	}
}

func TestClosedConnectionsLeaveTheCap(t *testing.T) {
	// More connections than the cap, each closed after its answer: each
	// one that closes must give its slot back, or the server stops
	// accepting once the cap is reached.
	p := start(t, []string{"-addr", "127.0.0.1:0", "-max-conns", "2"}, nil, os.Hostname)
	if errs := ordinary(p, 10); len(errs) > 0 {
		t.Fatalf("%d of 10 requests with Connection: close failed at a cap of 2: %v", len(errs), errs)
	}
	if line := p.stderr.String(); strings.Contains(line, "at the connection limit") {
		t.Errorf("connections closed one after another reached the cap of 2:\n%s", line)
	}
}

func TestTheCountOfOpenConnectionsReturnsToZero(t *testing.T) {
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv, ln := newCappedServer(tcp, 4, newHandler(os.Hostname, discardLogger()), discardLogger())
	go srv.Serve(ln)
	defer srv.Close()
	url := "http://" + tcp.Addr().String() + "/whoami"
	var wg sync.WaitGroup
	var failed atomic.Int64
	for i := range 16 {
		wg.Go(func() {
			// Half close their connection after each answer, half keep it
			// alive and close it at the end.
			client := &http.Client{Timeout: hang, Transport: &http.Transport{DisableKeepAlives: i%2 == 0}}
			defer client.CloseIdleConnections()
			for range 20 {
				resp, err := client.Get(url)
				if err != nil {
					failed.Add(1)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	}
	wg.Wait()
	if n := failed.Load(); n > 0 {
		t.Errorf("%d of 320 requests failed", n)
	}
	for deadline := time.Now().Add(hang); ln.open() != 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections still counted open %v after every client closed", ln.open(), hang)
		}
	}
	ln.mu.Lock()
	defer ln.mu.Unlock()
	if kept := slices.DeleteFunc(ln.conns[:cap(ln.conns)], func(c *conn) bool { return c == nil }); len(kept) > 0 {
		t.Errorf("%d closed connections still referenced by the set: the garbage collector cannot free them", len(kept))
	}
}

func TestAHandlerDoesNotStartOnAConnectionTheCapCut(t *testing.T) {
	// The cap cuts a connection that is not yet in its handler; if the
	// server has read its request meanwhile, the handler must not start:
	// it would be a request being answered on a closed connection.
	l := newLimitedListener(nil, 1, discardLogger())
	ran := false
	h := l.answering(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { ran = true }))
	for _, tt := range []struct {
		state   int64
		wantRan bool
	}{{cut, false}, {l.now() | sending, true}} {
		ran = false
		c := &conn{l: l}
		c.state.Store(tt.state)
		r := httptest.NewRequest("GET", "/whoami", nil)
		h.ServeHTTP(httptest.NewRecorder(), r.WithContext(connContext(r.Context(), c)))
		if ran != tt.wantRan {
			t.Errorf("state %d: the handler ran: %v, want %v", tt.state&whatMask, ran, tt.wantRan)
		}
		if tt.wantRan && c.state.Load()&whatMask != sending {
			t.Errorf("after the handler, state %d: want sending (what is left has the grace)", c.state.Load()&whatMask)
		}
	}
}

// deadlines is a real connection that counts the write deadlines set on it.
type deadlines struct {
	net.Conn
	set []time.Time
}

func (d *deadlines) SetWriteDeadline(t time.Time) error {
	d.set = append(d.set, t)
	return d.Conn.SetWriteDeadline(t)
}

func TestTheWriteDeadlineIsSetOnTheSocketOnlyWhenItMustMove(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	go io.Copy(io.Discard, b)
	d := &deadlines{Conn: a}
	c := &conn{Conn: d, l: newLimitedListener(nil, 1, discardLogger())}
	t0 := time.Now()
	write := func(deadline time.Time) {
		c.SetWriteDeadline(deadline)
		if _, err := c.Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	// A request every 10 ms for a second's worth, each clearing the
	// deadline after its answer, as net/http does: set once, a second late.
	for i := range 50 {
		write(t0.Add(writeTimeout + time.Duration(i)*10*time.Millisecond))
		c.SetWriteDeadline(time.Time{})
	}
	if want := []time.Time{t0.Add(writeTimeout + writeSlack)}; !slices.Equal(d.set, want) {
		t.Errorf("deadlines set %v, want only %v", d.set, want)
	}
	// Past the slack, it moves; asked for none, there is none.
	write(t0.Add(writeTimeout + writeSlack + time.Millisecond))
	write(time.Time{})
	write(t0.Add(time.Second)) // earlier than the one set: set, or it would fire late
	want := []time.Time{t0.Add(writeTimeout + writeSlack), t0.Add(writeTimeout + 2*writeSlack + time.Millisecond), {}, t0.Add(time.Second + writeSlack)}
	if !slices.Equal(d.set, want) {
		t.Errorf("deadlines set %v, want %v", d.set, want)
	}
}

func TestTheCapLogsAtMostOnceASecond(t *testing.T) {
	t.Parallel() // it waits on time-outs
	var logs syncBuffer
	l := newLimitedListener(nil, 8, slog.New(slog.NewTextHandler(&logs, nil)))
	l.cut.Add(1)
	l.logAtCap()
	l.cut.Add(1)
	l.logAtCap() // within the second: counted, not logged
	l.refused.Add(1)
	l.logAtCap()
	if n := strings.Count(logs.String(), "at the connection limit"); n != 1 {
		t.Fatalf("%d lines within a second, want 1:\n%s", n, logs.String())
	}
	time.Sleep(time.Second + 50*time.Millisecond)
	l.logAtCap()
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("want a second line once a second has passed, got:\n%s", logs.String())
	}
	for i, want := range []string{"limit=8 cut=1 refused=0", "limit=8 cut=1 refused=1"} {
		if !strings.Contains(lines[i], want) {
			t.Errorf("line %d %q: want %q (what happened since the line before)", i+1, lines[i], want)
		}
	}
}

// cgroupV1 is a process's cgroup as a container sees it under cgroup v1:
// its own cgroup mounted at the top of the memory hierarchy, under a path
// it cannot see.
func cgroupV1(limit string) map[string]string {
	return map[string]string{
		"proc/self/cgroup":                           "12:pids:/docker/abc\n4:memory:/docker/abc\n1:name=systemd:/docker/abc\n0::/docker/abc\n",
		"sys/fs/cgroup/memory/memory.limit_in_bytes": limit,
	}
}

// cgroupV2 is a process's cgroup as a container sees it under cgroup v2, in
// a cgroup namespace of its own.
func cgroupV2(limit string) map[string]string {
	return map[string]string{"proc/self/cgroup": "0::/\n", "sys/fs/cgroup/memory.max": limit}
}

// cgroupFS lays out files under a new directory, the root of /proc and
// /sys/fs/cgroup as cgroupMemoryLimit reads them.
func cgroupFS(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for name, content := range files {
		f := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(f), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f, []byte(content+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestTheCapFollowsTheContainersMemoryLimit(t *testing.T) {
	// The expected caps are what TestConnectionMemory measured a connection
	// to cost at worst (36 KB, one that trickles 15 KB of headers), with
	// room to spare: at 64 MiB, 614 such connections take 22 MB, and the
	// container peaked at 70% of its limit under the floods of
	// imagetest/faults_test.go.
	for _, tt := range []struct {
		name                 string
		files                map[string]string
		wantConns            int
		wantGo               int64
		wantFrom, wantGoFrom string
	}{
		{"cgroup v1, the pod's 64 MiB", cgroupV1("67108864"), 614, 46976204, "/sys/fs/cgroup/memory/memory.limit_in_bytes", "memory_limit"},
		{"cgroup v2, the pod's 64 MiB", cgroupV2("67108864"), 614, 46976204, "/sys/fs/cgroup/memory.max", "memory_limit"},
		{"cgroup v2, 256 MiB", cgroupV2("268435456"), 3481, 187904819, "/sys/fs/cgroup/memory.max", "memory_limit"},
		{"cgroup v1, 16 MiB: too small to be of use, still a few", cgroupV1("16777216"), 16, 11744051, "/sys/fs/cgroup/memory/memory.limit_in_bytes", "memory_limit"},
		{"cgroup v1, no limit", cgroupV1("9223372036854771712"), 10000, math.MaxInt64, "none", "none"},
		{"cgroup v2, no limit", cgroupV2("max"), 10000, math.MaxInt64, "none", "none"},
		{"no cgroup file system", nil, 10000, math.MaxInt64, "none", "none"},
		// The whole hierarchy seen, as on a host or with the host's cgroup
		// namespace: the pod's limit on the container's cgroup under v1, on
		// its parent under v2; a larger one above.
		{"cgroup v1, the path seen", map[string]string{
			"proc/self/cgroup":                                            "4:memory:/kubepods/pod1/c1",
			"sys/fs/cgroup/memory/memory.limit_in_bytes":                  "9223372036854771712",
			"sys/fs/cgroup/memory/kubepods/pod1/memory.limit_in_bytes":    "134217728",
			"sys/fs/cgroup/memory/kubepods/pod1/c1/memory.limit_in_bytes": "67108864",
		}, 614, 46976204, "/sys/fs/cgroup/memory/kubepods/pod1/c1/memory.limit_in_bytes", "memory_limit"},
		{"cgroup v2, the path seen", map[string]string{
			"proc/self/cgroup":                          "0::/kubepods/pod1/c1",
			"sys/fs/cgroup/kubepods/memory.max":         "268435456",
			"sys/fs/cgroup/kubepods/pod1/memory.max":    "67108864",
			"sys/fs/cgroup/kubepods/pod1/c1/memory.max": "max",
		}, 614, 46976204, "/sys/fs/cgroup/kubepods/pod1/memory.max", "memory_limit"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			lim, err := sizeLimits(nil, env(nil), cgroupFS(t, tt.files))
			if err != nil {
				t.Fatal(err)
			}
			if lim.maxConns != tt.wantConns || lim.goMemory != tt.wantGo || lim.memoryFrom != tt.wantFrom || lim.goMemoryFrom != tt.wantGoFrom {
				t.Errorf("cap %d, Go's limit %d from %s, the limit from %s; want %d, %d from %s, %s",
					lim.maxConns, lim.goMemory, lim.goMemoryFrom, lim.memoryFrom, tt.wantConns, tt.wantGo, tt.wantGoFrom, tt.wantFrom)
			}
		})
	}
}

func TestTheCapComesFromTheFlagThenMAX_CONNSThenTheMemoryLimit(t *testing.T) {
	pod := cgroupFS(t, cgroupV1("67108864"))
	for _, tt := range []struct {
		name     string
		flag     *int
		vars     map[string]string
		want     int
		wantFrom string
	}{
		{"the flag", new(7), map[string]string{"MAX_CONNS": "9"}, 7, "-max-conns"},
		{"MAX_CONNS", nil, map[string]string{"MAX_CONNS": "9"}, 9, "MAX_CONNS"},
		{"the memory limit", nil, nil, 614, "go_memory_limit"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			lim, err := sizeLimits(tt.flag, env(tt.vars), pod)
			if err != nil || lim.maxConns != tt.want || lim.maxConnsFrom != tt.wantFrom {
				t.Errorf("cap %d from %s, %v; want %d from %s", lim.maxConns, lim.maxConnsFrom, err, tt.want, tt.wantFrom)
			}
		})
	}
}

func TestTheStartupLineSaysWhichLimitsItFound(t *testing.T) {
	for _, tt := range []struct {
		name string
		args []string
		vars map[string]string
		want string
	}{
		{"the flag", []string{"-max-conns", "7"}, map[string]string{"MAX_CONNS": "9"}, "max_conns=7 max_conns_from=-max-conns"},
		{"MAX_CONNS", nil, map[string]string{"MAX_CONNS": "9"}, "max_conns=9 max_conns_from=MAX_CONNS"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := start(t, append([]string{"-addr", "127.0.0.1:0"}, tt.args...), tt.vars, os.Hostname)
			if line := p.waitFor(t, "whoami listening"); !strings.Contains(line, tt.want) || !strings.Contains(line, " memory_limit_from=") {
				t.Errorf("log line %q: want %s, and where the memory limit came from", line, tt.want)
			}
		})
	}
}

func TestShutdownCutsStuckClientsAndSucceeds(t *testing.T) {
	t.Parallel() // it waits on time-outs
	p := start(t, []string{"-addr", "127.0.0.1:0"}, nil, os.Hostname)
	// Two clients with a whole header and half a body, which the server
	// waits for before it sends its answer (and reads the next request), up
	// to the 10 s read time-out: longer than the grace.
	var stuck []net.Conn
	for range 2 {
		body, err := net.Dial("tcp", p.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer body.Close()
		io.WriteString(body, "GET /whoami HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly ten b")
		stuck = append(stuck, body)
	}
	time.Sleep(100 * time.Millisecond) // for the server to read what was sent

	t0 := time.Now()
	p.cancel() // what SIGTERM does
	if err := p.wait(); err != nil {
		t.Fatalf("run returned %v, want nil: stopping is not a failure", err)
	}
	for _, c := range stuck {
		if !closedByServer(c) {
			t.Error("a client with half a body is still connected after run returned")
		}
	}
	if took := time.Since(t0); took < shutdownTimeout || took > shutdownTimeout+2*time.Second {
		t.Errorf("stopped %v after the signal, want the %v grace and little more", took, shutdownTimeout)
	}
	logs := p.stderr.String()
	order := []string{`msg="whoami shutting down"`, `level=WARN msg="whoami cut the connections still open after the shutdown grace" connections=2 grace=5s`, `msg="whoami stopped"`}
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
// headers and no end, then with 1,000 more that have sent 1 KB of a
// 100 KB body. The cap on connections assumes connMemory for each: the
// measure must stay under it.
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
	for range n {
		c := unfinished(t, addr)
		if _, err := io.WriteString(c, "a\r\nContent-Length: 100000\r\n\r\n"+strings.Repeat("b", 1<<10)); err != nil {
			t.Fatal(err)
		}
	}
	body := rss()
	perIdle, perSlow, perBody := (idle-base)/n, (slow-idle)/n, (body-slow)/n
	t.Logf("resident memory: %.1f MB with no connection; %.1f KB more per idle keep-alive connection, %.1f KB per connection that sent 15 KB of headers, %.1f KB per connection sending a body",
		float64(base)/1e6, float64(perIdle)/1024, float64(perSlow)/1024, float64(perBody)/1024)
	for name, per := range map[string]int64{"an idle connection": perIdle, "a slow connection": perSlow, "a connection sending a body": perBody} {
		if per > connMemory {
			t.Errorf("%s takes %d bytes, more than connMemory (%d): the cap would let the memory limit be exceeded", name, per, connMemory)
		}
	}
}
