package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// hang bounds every wait in these tests. It only catches a hang: nothing
// here asserts how fast something is.
const hang = 10 * time.Second

func TestWhoami(t *testing.T) {
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(newHandler(os.Hostname, discardLogger()))
	defer srv.Close()

	tests := []struct {
		name, method, path string
		wantStatus         int
		wantBody           string
		wantAllow          string
	}{
		{"GET answers the hostname and a newline", "GET", "/whoami", 200, host + "\n", ""},
		{"HEAD answers the same headers without a body", "HEAD", "/whoami", 200, "", ""},
		{"POST is not allowed", "POST", "/whoami", 405, "Method Not Allowed\n", "GET, HEAD"},
		{"DELETE is not allowed", "DELETE", "/whoami", 405, "Method Not Allowed\n", "GET, HEAD"},
		{"the root path is not found", "GET", "/", 404, "404 page not found\n", ""},
		{"a trailing slash is another path", "GET", "/whoami/", 404, "404 page not found\n", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(tt.method, srv.URL+tt.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			resp, body := do(t, req)
			if resp.StatusCode != tt.wantStatus {
				t.Errorf("status = %d, want %d", resp.StatusCode, tt.wantStatus)
			}
			if body != tt.wantBody {
				t.Errorf("body = %q, want %q", body, tt.wantBody)
			}
			if got := resp.Header.Get("Allow"); got != tt.wantAllow {
				t.Errorf("Allow = %q, want %q", got, tt.wantAllow)
			}
		})
	}

	t.Run("GET and HEAD send the same headers", func(t *testing.T) {
		get, _ := do(t, mustRequest(t, "GET", srv.URL+"/whoami"))
		head, _ := do(t, mustRequest(t, "HEAD", srv.URL+"/whoami"))
		want := map[string]string{
			"Content-Type":           "text/plain; charset=utf-8",
			"Cache-Control":          "no-store",
			"X-Content-Type-Options": "nosniff",
			"Content-Length":         fmt.Sprint(len(host) + 1),
		}
		for k, v := range want {
			if got := get.Header.Get(k); got != v {
				t.Errorf("GET %s = %q, want %q", k, got, v)
			}
			if got := head.Header.Get(k); got != v {
				t.Errorf("HEAD %s = %q, want %q", k, got, v)
			}
		}
	})
}

func TestWhoamiAnswersUnknownWhenHostnameFails(t *testing.T) {
	var logs syncBuffer
	failing := func() (string, error) { return "", errors.New("uname: no such thing") }
	srv := httptest.NewServer(newHandler(failing, slog.New(slog.NewTextHandler(&logs, nil))))
	defer srv.Close()

	resp, body := do(t, mustRequest(t, "GET", srv.URL+"/whoami"))
	if resp.StatusCode != 200 || body != "unknown\n" {
		t.Errorf("got %d %q, want 200 %q", resp.StatusCode, body, "unknown\n")
	}
	if !strings.Contains(logs.String(), "uname: no such thing") {
		t.Errorf("the log does not say why: %q", logs.String())
	}
}

func TestListenAddr(t *testing.T) {
	tests := []struct {
		name, flag, port, want, wantErr string
	}{
		{name: "the default is port 8080 on all interfaces", want: ":8080"},
		{name: "PORT sets the port", port: "9000", want: ":9000"},
		{name: "-addr wins over PORT", flag: "127.0.0.1:9001", port: "9000", want: "127.0.0.1:9001"},
		{name: "-addr may ask for any free port", flag: "127.0.0.1:0", want: "127.0.0.1:0"},
		{name: "-addr without a port is refused", flag: "localhost", wantErr: `invalid -addr "localhost"`},
		{name: "-addr with a port too large is refused", flag: ":70000", wantErr: `invalid -addr ":70000"`},
		{name: "-addr with a service name is refused", flag: ":http", wantErr: `invalid -addr ":http"`},
		{name: "PORT that is not a number is refused", port: "80a", wantErr: `invalid PORT "80a"`},
		{name: "PORT 0 is refused", port: "0", wantErr: `invalid PORT "0"`},
		{name: "PORT in URL form is refused", port: "tcp://10.0.0.1:80", wantErr: `invalid PORT`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := listenAddr(tt.flag, env(map[string]string{"PORT": tt.port}))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestRunServesWhoamiOverTCP(t *testing.T) {
	p := start(t, []string{"-addr", "127.0.0.1:0"}, nil, os.Hostname)
	host, _ := os.Hostname()

	resp, body := do(t, mustRequest(t, "GET", p.url("/whoami")))
	if resp.StatusCode != 200 || body != host+"\n" {
		t.Errorf("got %d %q, want 200 %q", resp.StatusCode, body, host+"\n")
	}
	if err := p.stop(); err != nil {
		t.Fatalf("run returned %v, want nil", err)
	}
	for _, line := range []string{`msg="whoami listening" addr=` + p.addr, `msg="whoami stopped" addr=` + p.addr} {
		if !strings.Contains(p.stderr.String(), line) {
			t.Errorf("stderr lacks %q:\n%s", line, p.stderr.String())
		}
	}
}

func TestRunUsesPORT(t *testing.T) {
	port := freePort(t)
	p := start(t, nil, map[string]string{"PORT": port}, os.Hostname)
	if want := "[::]:" + port; p.addr != want {
		t.Errorf("listening on %s, want %s", p.addr, want)
	}
	if resp, _ := do(t, mustRequest(t, "GET", "http://127.0.0.1:"+port+"/whoami")); resp.StatusCode != 200 {
		t.Errorf("status = %d, want 200", resp.StatusCode)
	}
}

func TestRunRejectsBadInput(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()

	tests := []struct {
		name    string
		args    []string
		port    string
		wantErr string
	}{
		{"an unknown flag", []string{"-port", "80"}, "", "flag provided but not defined: -port"},
		{"a stray argument", []string{"serve"}, "", `unexpected argument "serve"`},
		{"a bad -addr", []string{"-addr", "8080"}, "", `invalid -addr "8080"`},
		{"a bad PORT", nil, "eighty", `invalid PORT "eighty"`},
		{"a port in use", []string{"-addr", busy.Addr().String()}, "", "address already in use"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr syncBuffer
			err := run(context.Background(), tt.args, env(map[string]string{"PORT": tt.port}), os.Hostname, &stdout, &stderr)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("the error is not one line: %q", err)
			}
		})
	}
}

func TestRunPrintsVersionAndHelp(t *testing.T) {
	for _, tt := range []struct{ arg, want string }{
		{"-version", "whoami " + version + "\n"},
		{"-h", "Usage: whoami [flags]"},
	} {
		var stdout, stderr syncBuffer
		if err := run(context.Background(), []string{tt.arg}, env(nil), os.Hostname, &stdout, &stderr); err != nil {
			t.Fatalf("%s: %v", tt.arg, err)
		}
		if !strings.HasPrefix(stdout.String(), tt.want) {
			t.Errorf("%s printed %q, want it to start with %q", tt.arg, stdout.String(), tt.want)
		}
	}
}

func TestGracefulShutdownLetsInFlightRequestsFinish(t *testing.T) {
	entered := make(chan struct{})
	release := make(chan struct{})
	slow := func() (string, error) {
		close(entered)
		<-release
		return "web-1", nil
	}
	p := start(t, []string{"-addr", "127.0.0.1:0"}, nil, slow)

	type result struct {
		status int
		body   string
		err    error
	}
	got := make(chan result, 1)
	go func() {
		resp, err := http.Get(p.url("/whoami"))
		if err != nil {
			got <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		got <- result{resp.StatusCode, string(b), err}
	}()
	<-entered // the request is inside the handler

	p.cancel()
	p.waitFor(t, `msg="whoami shutting down"`)
	waitRefused(t, p.addr)
	close(release)

	r := <-got
	if r.err != nil || r.status != 200 || r.body != "web-1\n" {
		t.Errorf("in-flight request got %d %q %v, want 200 %q", r.status, r.body, r.err, "web-1\n")
	}
	if err := p.wait(); err != nil {
		t.Fatalf("run returned %v, want nil", err)
	}
}

func TestSlowHeadersAreCutOffWhileOthersAreServed(t *testing.T) {
	srv := newServer(newHandler(os.Hostname, discardLogger()), discardLogger())
	srv.ReadHeaderTimeout = 200 * time.Millisecond
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	defer srv.Close()

	slow, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	if _, err := io.WriteString(slow, "GET /whoami HTTP/1.1\r\nHost: x\r\n"); err != nil {
		t.Fatal(err)
	}

	// While the slow client holds its connection, others are answered.
	if resp, _ := do(t, mustRequest(t, "GET", "http://"+ln.Addr().String()+"/whoami")); resp.StatusCode != 200 {
		t.Errorf("a normal client got %d, want 200", resp.StatusCode)
	}

	slow.SetReadDeadline(time.Now().Add(hang))
	n, err := slow.Read(make([]byte, 1))
	if n != 0 || !errors.Is(err, io.EOF) {
		t.Fatalf("slow client: read %d bytes, %v; want the server to close the connection", n, err)
	}
}

func TestHeaderSizeLimit(t *testing.T) {
	p := start(t, []string{"-addr", "127.0.0.1:0"}, nil, os.Hostname)
	for _, tt := range []struct {
		name   string
		size   int
		status int
	}{
		{"headers well under the limit are served", maxHeaderBytes / 2, 200},
		{"headers over the limit get 431", 2 * maxHeaderBytes, 431},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req := mustRequest(t, "GET", p.url("/whoami"))
			req.Header.Set("X-Padding", strings.Repeat("a", tt.size))
			if resp, _ := do(t, req); resp.StatusCode != tt.status {
				t.Errorf("status = %d, want %d", resp.StatusCode, tt.status)
			}
		})
	}
	// The server is still there for everyone else.
	if resp, _ := do(t, mustRequest(t, "GET", p.url("/whoami"))); resp.StatusCode != 200 {
		t.Errorf("after a 431, status = %d, want 200", resp.StatusCode)
	}
}

func TestHealthcheck(t *testing.T) {
	p := start(t, []string{"-addr", "127.0.0.1:0"}, nil, os.Hostname)
	var stdout, stderr syncBuffer
	if err := run(context.Background(), []string{"-healthcheck", "-addr", p.addr}, env(nil), os.Hostname, &stdout, &stderr); err != nil {
		t.Errorf("against a live server: %v, want nil", err)
	}

	port := freePort(t) // nothing listens there
	err := run(context.Background(), []string{"-healthcheck"}, env(map[string]string{"PORT": port}), os.Hostname, &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("against nothing: %v, want connection refused", err)
	}
}

func BenchmarkWhoami(b *testing.B) {
	h := newHandler(os.Hostname, discardLogger())
	req := httptest.NewRequest("GET", "/whoami", nil)
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != 200 {
			b.Fatalf("status = %d", w.Code)
		}
	}
}

// process is the real program, started through run in this test process.
type process struct {
	addr   string
	stderr *syncBuffer
	cancel context.CancelFunc
	done   chan error
}

// start runs the program with args and the given environment, waits until it
// listens, and stops it when the test ends.
func start(t *testing.T, args []string, vars map[string]string, hostname func() (string, error)) *process {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	p := &process{stderr: &syncBuffer{}, cancel: cancel, done: make(chan error, 1)}
	go func() { p.done <- run(ctx, args, env(vars), hostname, io.Discard, p.stderr) }()
	t.Cleanup(func() { p.stop() })

	line := p.waitFor(t, `msg="whoami listening"`)
	_, after, _ := strings.Cut(line, " addr=")
	p.addr, _, _ = strings.Cut(after, " ")
	return p
}

// waitFor returns the first line of stderr that contains s.
func (p *process) waitFor(t *testing.T, s string) string {
	t.Helper()
	deadline := time.Now().Add(hang)
	for time.Now().Before(deadline) {
		written := p.stderr.written() // before reading, so no write is missed
		for _, line := range strings.Split(p.stderr.String(), "\n") {
			if strings.Contains(line, s) {
				return line
			}
		}
		select {
		case err := <-p.done:
			t.Fatalf("run returned %v before logging %q; stderr:\n%s", err, s, p.stderr.String())
		case <-written:
		case <-time.After(time.Until(deadline)):
		}
	}
	t.Fatalf("no %q on stderr within %v:\n%s", s, hang, p.stderr.String())
	return ""
}

func (p *process) url(path string) string {
	host := strings.Replace(p.addr, "[::]", "127.0.0.1", 1)
	return "http://" + host + path
}

// stop cancels run's context and returns what run returned.
func (p *process) stop() error {
	p.cancel()
	return p.wait()
}

func (p *process) wait() error {
	select {
	case err := <-p.done:
		p.done <- err // later callers get the same answer
		return err
	case <-time.After(hang):
		return fmt.Errorf("run did not return within %v", hang)
	}
}

// syncBuffer collects what the program writes, safe for concurrent use, and
// tells waiters when something new was written.
type syncBuffer struct {
	mu     sync.Mutex
	b      strings.Builder
	notify chan struct{}
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.notify != nil {
		close(s.notify)
		s.notify = nil
	}
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// written returns a channel closed at the next Write.
func (s *syncBuffer) written() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.notify == nil {
		s.notify = make(chan struct{})
	}
	return s.notify
}

func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

func mustRequest(t *testing.T, method, url string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// do sends req with a bound that catches a hang and returns the response
// with its body read.
func do(t *testing.T, req *http.Request) (*http.Response, string) {
	t.Helper()
	client := &http.Client{Timeout: hang}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(bufio.NewReader(resp.Body))
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

// waitRefused waits until addr refuses new connections: Shutdown closes the
// listener right after the log line that announces it.
func waitRefused(t *testing.T, addr string) {
	t.Helper()
	for deadline := time.Now().Add(hang); time.Now().Before(deadline); {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return
		}
		c.Close()
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s still accepts connections %v after shutdown began", addr, hang)
}

// freePort returns a port that nothing listens on right now.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}
