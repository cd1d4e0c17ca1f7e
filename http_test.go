package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

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

	t.Run("HEAD sends no body on the wire", func(t *testing.T) {
		// Go's client never returns a body for HEAD: read the raw bytes.
		raw := roundTrip(t, srv.Listener.Addr().String(), "HEAD /whoami HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
		head, body, found := strings.Cut(raw, "\r\n\r\n")
		if !found || !strings.HasPrefix(head, "HTTP/1.1 200 ") || body != "" {
			t.Errorf("HEAD answered %q, want a 200 status line, headers, and nothing after them", raw)
		}
	})

	t.Run("GET and HEAD send the same headers, and only those", func(t *testing.T) {
		get, _ := do(t, mustRequest(t, "GET", srv.URL+"/whoami"))
		head, _ := do(t, mustRequest(t, "HEAD", srv.URL+"/whoami"))
		want := map[string]string{
			"Content-Type":   "text/plain; charset=utf-8",
			"Cache-Control":  "no-store",
			"Content-Length": fmt.Sprint(len(host) + 1),
		}
		for name, res := range map[string]*http.Response{"GET": get, "HEAD": head} {
			for k, v := range want {
				if got := res.Header.Get(k); got != v {
					t.Errorf("%s %s = %q, want %q", name, k, got, v)
				}
			}
			for k := range res.Header {
				if _, ok := want[k]; !ok && k != "Date" { // net/http's
					t.Errorf("%s sent %s: %q, a header no test expects", name, k, res.Header.Get(k))
				}
			}
		}
	})
}

// The production limits, pinned: each is explained where it is defined, and
// a change to one must be a decision, made here too.
func TestServerLimits(t *testing.T) {
	var logs syncBuffer
	srv := newServer(http.NotFoundHandler(), slog.New(slog.NewTextHandler(&logs, nil)))
	for _, tt := range []struct {
		name      string
		got, want any
	}{
		{"ReadHeaderTimeout", srv.ReadHeaderTimeout, 5 * time.Second},
		{"ReadTimeout", srv.ReadTimeout, 10 * time.Second},
		{"WriteTimeout", srv.WriteTimeout, 10 * time.Second},
		{"IdleTimeout", srv.IdleTimeout, 120 * time.Second},
		{"MaxHeaderBytes", srv.MaxHeaderBytes, 16 << 10},
		{"shutdownTimeout", shutdownTimeout, 5 * time.Second},
		{"healthcheckTimeout", healthcheckTimeout, 2 * time.Second},
		{"maxRequestLine", maxRequestLine, 8 << 10},
		{"maxAnswer", maxAnswer, 512},
		{"maxHostname", maxHostname, 255},
		// The cap's (conns.go), as docs/reliability.md gives them.
		{"unfinishedGrace", unfinishedGrace, 100 * time.Millisecond},
		{"waitDrain", waitDrain, 2},
		{"maxAdmitWait", maxAdmitWait, 2 * time.Second},
		{"admitPoll", admitPoll, time.Millisecond},
		{"maxWaiting", maxWaiting, 64},
		{"deadlineSlack", deadlineSlack, time.Second},
	} {
		if tt.got != tt.want {
			t.Errorf("%s = %v, want %v", tt.name, tt.got, tt.want)
		}
	}
	// Docker sends SIGKILL 10 s after SIGTERM: the shutdown must end before.
	if shutdownTimeout >= 10*time.Second {
		t.Errorf("shutdownTimeout = %v, want less than Docker's 10 s stop timeout", shutdownTimeout)
	}
	// net/http's own errors (TLS handshakes, panics, accept errors) go to
	// the service's log, as warnings.
	if srv.ErrorLog == nil {
		t.Fatal("ErrorLog is nil: net/http would write to the standard logger")
	}
	srv.ErrorLog.Print("http: a test error")
	if got := logs.String(); !strings.Contains(got, "level=WARN") || !strings.Contains(got, "http: a test error") {
		t.Errorf("ErrorLog wrote %q, want a WARN line with the message", got)
	}
}

func TestTheHostnameIsLookedUpOnce(t *testing.T) {
	calls := 0
	lookup := hostnameOnce(func() (string, error) { calls++; return fmt.Sprint("web-", calls), nil })
	for range 3 {
		if name, err := lookup(); name != "web-1" || err != nil {
			t.Errorf("got %q, %v; want web-1, the first answer", name, err)
		}
	}
	failing := hostnameOnce(func() (string, error) { return "", errors.New("uname: no such thing") })
	if _, err := failing(); err == nil {
		t.Error("a failed lookup answers no error")
	}
	if calls != 1 {
		t.Errorf("looked up %d times, want once", calls)
	}
}

func TestWhoamiAnswersUnknownWhenHostnameFails(t *testing.T) {
	for _, tt := range []struct {
		name   string
		lookup func() (string, error)
		why    string
	}{
		{"the lookup fails", func() (string, error) { return "", errors.New("uname: no such thing") }, "uname: no such thing"},
		{"a name longer than any host's", func() (string, error) { return strings.Repeat("w", maxHostname+1), nil }, "hostname longer than 255 bytes"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var logs syncBuffer
			srv := httptest.NewServer(newHandler(tt.lookup, slog.New(slog.NewTextHandler(&logs, nil))))
			defer srv.Close()
			resp, body := do(t, mustRequest(t, "GET", srv.URL+"/whoami"))
			if resp.StatusCode != 200 || body != "unknown\n" {
				t.Errorf("got %d %q, want 200 %q", resp.StatusCode, body, "unknown\n")
			}
			if !strings.Contains(logs.String(), tt.why) {
				t.Errorf("the log does not say why (%s): %q", tt.why, logs.String())
			}
		})
	}
}

// run listens where -addr, else PORT, else the default says: the test
// hands it a listener and reads the address it asked for.
func TestRunListensWhereItIsTold(t *testing.T) {
	for _, tt := range []struct {
		args       []string
		port, want string
	}{
		{nil, "", ":8080"},
		{nil, "9090", ":9090"},
		{[]string{"-addr", "127.0.0.1:7"}, "9090", "127.0.0.1:7"},
	} {
		p := start(t, tt.args, map[string]string{"PORT": tt.port}, os.Hostname)
		if p.asked != tt.want {
			t.Errorf("run %q with PORT=%q asked to listen on %q, want %q", tt.args, tt.port, p.asked, tt.want)
		}
		p.stop()
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
	p := start(t, nil, nil, os.Hostname)
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
	port := reservePort(t)
	p := startOn(t, nil, nil, map[string]string{"PORT": port}, os.Hostname)
	// All interfaces: [::] or, on a host without IPv6, 0.0.0.0.
	if host, got, _ := net.SplitHostPort(p.addr); got != port || !net.ParseIP(host).IsUnspecified() {
		t.Errorf("listening on %s, want all interfaces, port %s", p.addr, port)
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
			// Bounded: a mutant that accepts the bad input serves until then.
			ctx, cancel := context.WithTimeout(context.Background(), hang)
			defer cancel()
			err := run(ctx, tt.args, env(map[string]string{"PORT": tt.port}), os.Hostname, listenTCP, &stdout, &stderr)
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
		ctx, cancel := context.WithTimeout(context.Background(), hang)
		defer cancel()
		if err := run(ctx, []string{tt.arg}, env(nil), os.Hostname, listenTCP, &stdout, &stderr); err != nil {
			t.Fatalf("%s: %v", tt.arg, err)
		}
		if !strings.HasPrefix(stdout.String(), tt.want) {
			t.Errorf("%s printed %q, want it to start with %q", tt.arg, stdout.String(), tt.want)
		}
	}
}

func TestShutdownUnderLoadFinishesAcceptedRequests(t *testing.T) {
	const clients = 50
	var entered atomic.Int64
	inside := make(chan struct{}, clients)
	release := make(chan struct{})
	// Every request blocks in the handler until release: when all clients
	// are inside, the shutdown starts with clients requests in flight.
	slow := func() (string, error) {
		entered.Add(1)
		inside <- struct{}{}
		<-release
		return "web-1", nil
	}
	p := start(t, nil, nil, slow)

	// An idle keep-alive connection, which shutdown must close.
	idle, err := net.Dial("tcp", p.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	idleReader := bufio.NewReader(idle)
	fmt.Fprintf(idle, "GET /whoami HTTP/1.1\r\nHost: x\r\n\r\n")
	go func() { <-inside; release <- struct{}{} }() // let this one through
	resp, err := http.ReadResponse(idleReader, nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("idle connection's request: %v %v", resp, err)
	}
	io.Copy(io.Discard, resp.Body)
	entered.Store(0)

	// Clients send requests until one fails; each records its 200s.
	var ok atomic.Int64
	var wg sync.WaitGroup
	client := &http.Client{Timeout: hang, Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
	for range clients {
		wg.Go(func() {
			for {
				resp, err := client.Get(p.url("/whoami"))
				if err != nil {
					return // the server has stopped accepting: expected
				}
				body, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != 200 || string(body) != "web-1\n" {
					t.Errorf("a request accepted by the server got %d %q %v, want 200", resp.StatusCode, body, err)
					return
				}
				ok.Add(1)
			}
		})
	}
	for range clients {
		receive(t, inside, "a request to reach the handler")
	}

	p.cancel() // what SIGTERM does
	p.waitFor(t, `msg="whoami shutting down"`)
	waitRefused(t, p.addr)
	idle.SetReadDeadline(time.Now().Add(hang))
	if _, err := idleReader.ReadByte(); !errors.Is(err, io.EOF) {
		t.Errorf("idle keep-alive connection: read %v, want EOF (closed by shutdown)", err)
	}
	close(release)
	wg.Wait()

	if ok.Load() != entered.Load() || ok.Load() < clients {
		t.Errorf("%d requests entered the handler, %d completed with 200; want all, and at least %d", entered.Load(), ok.Load(), clients)
	}
	if err := p.wait(); err != nil {
		t.Fatalf("run returned %v, want nil", err)
	}
}

func TestLoadManyClientsNoErrorsNoLeak(t *testing.T) {
	const clients, perClient = 200, 100
	host, _ := os.Hostname()
	p := start(t, nil, nil, os.Hostname)
	transport := &http.Transport{MaxIdleConnsPerHost: clients}
	client := &http.Client{Timeout: hang, Transport: transport}
	do(t, mustRequest(t, "GET", p.url("/whoami"))) // warm up
	baseline := runtime.NumGoroutine()

	var failures atomic.Int64
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			for range perClient {
				resp, err := client.Get(p.url("/whoami"))
				if err != nil {
					failures.Add(1)
					continue
				}
				body, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != 200 || string(body) != host+"\n" {
					failures.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if n := failures.Load(); n > 0 {
		t.Errorf("%d of %d requests failed or had a wrong body", n, clients*perClient)
	}

	// Once the clients hang up, the server's connection goroutines end.
	transport.CloseIdleConnections()
	var now int
	for deadline := time.Now().Add(hang); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if now = runtime.NumGoroutine(); now <= baseline {
			return
		}
	}
	t.Errorf("goroutines: %d before the load, still %d after it", baseline, now)
}

func TestSlowHeadersAreCutOffWhileOthersAreServed(t *testing.T) {
	srv := newServer(newHandler(os.Hostname, discardLogger()), discardLogger())
	srv.ReadHeaderTimeout = 300 * time.Millisecond
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	defer srv.Close()

	// Several clients trickle a header byte every 20 ms and never finish.
	// Each connection's reader reports once: nil if the server closed it.
	const slowClients = 5
	cut := make(chan error, slowClients)
	for range slowClients {
		conn, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		go func() {
			io.WriteString(conn, "GET /whoami HTTP/1.1\r\nHost: x\r\nX-Slow: ")
			for {
				if _, err := conn.Write([]byte("a")); err != nil {
					return // the server closed the connection
				}
				time.Sleep(20 * time.Millisecond)
			}
		}()
		go func() {
			conn.SetReadDeadline(time.Now().Add(hang))
			n, err := conn.Read(make([]byte, 1))
			if n != 0 || !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET) {
				err = fmt.Errorf("read %d bytes, %v; want the server to close the connection", n, err)
			} else {
				err = nil
			}
			cut <- err
		}()
	}

	// While they hold their connections, others are answered.
	for range 20 {
		if resp, _ := do(t, mustRequest(t, "GET", "http://"+ln.Addr().String()+"/whoami")); resp.StatusCode != 200 {
			t.Fatalf("a normal client got %d, want 200", resp.StatusCode)
		}
	}
	for range slowClients {
		select {
		case err := <-cut:
			if err != nil {
				t.Error(err)
			}
		case <-time.After(hang):
			t.Fatalf("a slow client was not cut off within %v", hang)
		}
	}
}

func TestEveryRequestGetsAShortClearAnswer(t *testing.T) {
	// The longest hostname answered, so that the 200 is the largest it can
	// be.
	name := strings.Repeat("w", maxHostname)
	p := start(t, nil, nil, func() (string, error) { return name, nil })
	noise := make([]byte, 4096)
	rand.NewChaCha8([32]byte{1}).Read(noise) // the same bytes every run

	tests := []struct {
		name    string
		request string
		want    int
	}{
		// Fixed sizes, not derived from the limits, so that a change of a
		// limit shows here: 32 KiB is over 16 KiB of headers (and net/http's
		// 4 KiB of slack), 8 KiB under it; a 9 KiB URL is over the 8 KiB of
		// a request line, 7 KiB under it.
		{"an oversized URL", "GET /whoami?" + strings.Repeat("a", 32<<10) + " HTTP/1.1\r\nHost: x\r\n\r\n", 431},
		{"oversized headers", "GET /whoami HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 32<<10) + "\r\n\r\n", 431},
		{"large headers under the limit", "GET /whoami HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 8<<10) + "\r\n\r\n", 200},
		{"a long URL", "GET /whoami?" + strings.Repeat("a", 9<<10) + " HTTP/1.1\r\nHost: x\r\n\r\n", 414},
		{"a long URL under the limit", "GET /whoami?" + strings.Repeat("a", 7<<10) + " HTTP/1.1\r\nHost: x\r\n\r\n", 200},
		{"a long method", strings.Repeat("A", 9<<10) + " /whoami HTTP/1.1\r\nHost: x\r\n\r\n", 414},
		{"a path that is not clean, with 6,000 ampersands", "GET /x/../" + strings.Repeat("&", 6000) + " HTTP/1.1\r\nHost: x\r\n\r\n", 404},
		{"a path that is not clean, to /whoami", "GET /x/../whoami HTTP/1.1\r\nHost: x\r\n\r\n", 404},
		{"a double slash", "GET //whoami HTTP/1.1\r\nHost: x\r\n\r\n", 404},
		{"an escaped path to /whoami", "GET /who%61mi HTTP/1.1\r\nHost: x\r\n\r\n", 200},
		{"an absolute URI", "GET http://x/whoami HTTP/1.1\r\nHost: x\r\n\r\n", 200},
		{"HEAD", "HEAD /whoami HTTP/1.1\r\nHost: x\r\n\r\n", 200},
		{"a malformed request line", "GET\r\n\r\n", 400},
		{"a line that is not HTTP", "hello\r\n\r\n", 400},
		{"an unknown method", "BREW /whoami HTTP/1.1\r\nHost: x\r\n\r\n", 405},
		{"a POST with a body of 1 MB, answered before it is read", "POST /whoami HTTP/1.1\r\nHost: x\r\nContent-Length: 1048576\r\n\r\n" + strings.Repeat("b", 1<<20), 405},
		{"CONNECT", "CONNECT x:443 HTTP/1.1\r\nHost: x:443\r\n\r\n", 404},
		{"OPTIONS *", "OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n", 200},
		{"an unknown Expect", "GET /whoami HTTP/1.1\r\nHost: x\r\nExpect: tea\r\n\r\n", 417},
		{"HTTP/1.0 without Host", "GET /whoami HTTP/1.0\r\n\r\n", 200},
		{"HTTP/1.1 without Host", "GET /whoami HTTP/1.1\r\n\r\n", 400},
		{"two Host headers", "GET /whoami HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", 400},
		{"a body on GET", "GET /whoami HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello", 200},
		{"a header line without a colon", "GET /whoami HTTP/1.1\r\nHost: x\r\nbroken\r\n\r\n", 400},
		{"a NUL byte in a header", "GET /whoami HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n", 400},
		{"a negative Content-Length", "POST /whoami HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", 400},
		{"an unsupported Transfer-Encoding", "GET /whoami HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 501},
		{"a bad percent-escape", "GET /%zz HTTP/1.1\r\nHost: x\r\n\r\n", 400},
		{"an unknown HTTP version", "GET /whoami HTTP/9.9\r\nHost: x\r\n\r\n", 505},
		{"an HTTP/2 preface on plain HTTP/1", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 400},
		{"random bytes", string(noise), 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			answer, err := exchange(p.addr, tt.request)
			if status := statusOf(answer); status != tt.want || err != nil {
				t.Errorf("status %d, then %v; want %d, then the end of the connection", status, err, tt.want)
			}
			if len(answer) > maxAnswer {
				t.Errorf("answered %d bytes, more than maxAnswer (%d): %.200q...", len(answer), maxAnswer, answer)
			}
			t.Logf("%d bytes", len(answer))
			// Whatever came before, the server still serves.
			if resp, _ := do(t, mustRequest(t, "GET", p.url("/whoami"))); resp.StatusCode != 200 {
				t.Errorf("afterwards GET /whoami = %d, want 200", resp.StatusCode)
			}
		})
	}
}

// exchange writes raw bytes on a new connection and ends its writing side,
// as a client with nothing more to say does, then returns all the server
// sent until it closed the connection, and how it closed it: nil for a
// clean close, or the error (a reset, the time-out).
func exchange(addr, request string) (string, error) {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(hang))
	go func() {
		// The server may answer before it has read it all.
		io.WriteString(conn, request)
		conn.(*net.TCPConn).CloseWrite()
	}()
	b, err := io.ReadAll(conn)
	return string(b), err
}

// statusOf returns the status code of an answer's first line, or 0.
func statusOf(answer string) int {
	var minor, code int
	fmt.Sscanf(answer, "HTTP/1.%d %d ", &minor, &code)
	return code
}

// FuzzWhoami sends arbitrary bytes to the real server on one connection,
// and holds what it sends back to the service's invariants, whatever was
// sent: every answer is at most maxAnswer bytes, has a status the service
// gives, and only the headers it sets; the only 200 with a body is the
// hostname; no byte reaches the socket while a handler runs, nor under no
// write deadline or one past writeTimeout and its slack; the connection
// ends (closed by the server, or reset after its answers),
// never hangs. Run it longer with:
// go test -run '^$' -fuzz FuzzWhoami -fuzztime 1m .
func FuzzWhoami(f *testing.F) {
	for _, seed := range []string{
		"GET /whoami HTTP/1.1\r\nHost: x\r\n\r\n",
		"HEAD /whoami HTTP/1.1\r\nHost: x\r\n\r\nGET /whoami HTTP/1.1\r\nHost: x\r\n\r\n",
		"POST /whoami HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi",
		"GET /x/../whoami?a=b HTTP/1.0\r\n\r\n",
		"GET /x/../" + strings.Repeat("&", 9000) + " HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET //whoami HTTP/1.1\r\nHost: x\r\n\r\n",
		"CONNECT x:443 HTTP/1.1\r\nHost: x:443\r\n\r\n",
		"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET /whoami HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc",
		"GET /whoami HTTP/1.1\r\nHost: x\r\nX: " + strings.Repeat("a", 20<<10) + "\r\n\r\n",
	} {
		f.Add([]byte(seed))
	}
	name := strings.Repeat("w", maxHostname) // the largest 200
	w := newWatchedServer(f, func() (string, error) { return name, nil })
	statuses := []int{200, 400, 404, 405, 414, 417, 431, 501, 505}
	headers := []string{"Allow", "Cache-Control", "Connection", "Content-Length", "Content-Type", "Date", "X-Content-Type-Options"}
	f.Fuzz(func(t *testing.T, raw []byte) {
		all, err := exchange(w.addr, string(raw))
		if isTimeout(err) {
			t.Fatalf("the connection did not end within %v: %q", hang, all)
		}
		for answer := range splitAnswers(all) {
			if len(answer) > maxAnswer {
				t.Errorf("an answer of %d bytes, more than maxAnswer (%d), to %.200q", len(answer), maxAnswer, raw)
			}
			resp, err := http.ReadResponse(bufio.NewReader(strings.NewReader(answer)), &http.Request{Method: "HEAD"})
			if err != nil {
				t.Fatalf("an answer that is not HTTP (%v): %q", err, answer)
			}
			if !slices.Contains(statuses, resp.StatusCode) {
				t.Errorf("status %d to %.200q", resp.StatusCode, raw)
			}
			for k := range resp.Header {
				if !slices.Contains(headers, k) {
					t.Errorf("header %s in %q", k, answer)
				}
			}
			if _, body, _ := strings.Cut(answer, "\r\n\r\n"); resp.StatusCode == 200 && body != "" && body != name+"\n" {
				t.Errorf("200 with the body %q", body)
			}
		}
		if n := w.writesInHandler.Load(); n > 0 {
			t.Fatalf("%d writes reached the socket while a handler ran, after %q", n, raw)
		}
		if n := w.lateWrites.Load(); n > 0 {
			t.Fatalf("%d writes were made under no deadline, or one too far, after %q", n, raw)
		}
	})
}

// splitAnswers yields the answers in what a server sent on a connection:
// each starts with its status line ("HTTP/1.1 " or, to HTTP/1.0,
// "HTTP/1.0 "), and no body of the service's holds one.
func splitAnswers(all string) func(yield func(string) bool) {
	return func(yield func(string) bool) {
		for all != "" {
			i := strings.Index(all[1:], "HTTP/1.") + 1
			if i == 0 {
				i = len(all)
			}
			if !yield(all[:i]) {
				return
			}
			all = all[i:]
		}
	}
}

// watchedServer is the server as run builds it, on a listener that counts
// the writes to a socket made while its connection's handler runs.
type watchedServer struct {
	net.Listener
	addr            string
	capped          *limitedListener
	writesInHandler atomic.Int64 // writes while the handler ran
	lateWrites      atomic.Int64 // writes under no deadline, or one over writeTimeout+deadlineSlack away
}

func newWatchedServer(tb testing.TB, hostname func() (string, error)) *watchedServer {
	tb.Helper()
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	w := &watchedServer{Listener: tcp, addr: tcp.Addr().String()}
	var srv *http.Server
	srv, w.capped = newCappedServer(w, defaultMaxConns, newHandler(hostname, discardLogger()), discardLogger())
	go srv.Serve(w.capped)
	tb.Cleanup(func() { srv.Close() })
	return w
}

func (w *watchedServer) Accept() (net.Conn, error) {
	c, err := w.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &watchedConn{Conn: c, w: w}, nil
}

// watchedConn is a socket that checks, at each write, the state of the
// connection that the cap made of it, and the deadline set on it.
type watchedConn struct {
	net.Conn
	w        *watchedServer
	deadline time.Time // for writes
}

func (c *watchedConn) SetWriteDeadline(t time.Time) error {
	c.deadline = t
	return c.Conn.SetWriteDeadline(t)
}

func (c *watchedConn) Write(p []byte) (int, error) {
	if c.deadline.IsZero() || time.Until(c.deadline) > writeTimeout+deadlineSlack {
		c.w.lateWrites.Add(1)
	}
	c.w.capped.mu.Lock()
	for _, tc := range c.w.capped.conns {
		if tc.Conn == c && tc.state.Load()&whatMask == answered {
			c.w.writesInHandler.Add(1)
		}
	}
	c.w.capped.mu.Unlock()
	return c.Conn.Write(p)
}

func (c *watchedConn) CloseWrite() error { return c.Conn.(*net.TCPConn).CloseWrite() }

func TestHealthcheck(t *testing.T) {
	t.Parallel() // it waits on time-outs
	live := start(t, nil, nil, os.Hostname)
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "broken", http.StatusInternalServerError)
	}))
	defer failing.Close()
	redirecting := httptest.NewServer(http.RedirectHandler("/elsewhere", http.StatusFound))
	defer redirecting.Close()
	// A server that accepts connections and never answers, and one that
	// answers something that is not HTTP.
	silent := rawServer(t, func(net.Conn) { <-t.Context().Done() })
	chatty := rawServer(t, func(c net.Conn) { io.WriteString(c, "SSH-2.0-OpenSSH_9.2\r\n") })

	for _, tt := range []struct {
		name, addr, port string
		wantErr          string // "": want nil
	}{
		{"a live server answers 200", live.addr, "", ""},
		{"PORT finds the live server", "", portOf(live.addr), ""},
		{"a 500 fails", failing.Listener.Addr().String(), "", "500 Internal Server Error"},
		{"a redirect is not a 200", redirecting.Listener.Addr().String(), "", "302 Found"},
		{"a server that never answers fails at the timeout", silent, "", "i/o timeout"},
		{"an answer that is not HTTP fails", chatty, "", "not an HTTP/1 answer"},
		{"nothing listening fails", "127.0.0.1:" + reservePort(t), "", "connection refused"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			args := []string{"-healthcheck"}
			if tt.addr != "" {
				args = append(args, "-addr", tt.addr)
			}
			done := make(chan error, 1)
			go func() {
				var stdout, stderr syncBuffer
				done <- run(t.Context(), args, env(map[string]string{"PORT": tt.port}), os.Hostname, listenTCP, &stdout, &stderr)
			}()
			var err error
			select {
			case err = <-done:
			case <-time.After(hang): // the probe's own bound is 2 s
				t.Fatalf("-healthcheck did not return within %v", hang)
			}
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("%v, want nil", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("%v, want an error with %q", err, tt.wantErr)
			}
		})
	}
}

// A real SIGTERM to this very process, as docker stop sends it: run catches
// it, shuts down gracefully and returns nil.
func TestSIGTERMStopsRunGracefully(t *testing.T) {
	p := start(t, nil, nil, os.Hostname)
	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := p.wait(); err != nil {
		t.Fatalf("run returned %v after SIGTERM, want nil", err)
	}
	for _, line := range []string{`msg="whoami shutting down"`, `msg="whoami stopped"`} {
		if !strings.Contains(p.stderr.String(), line) {
			t.Errorf("stderr lacks %q:\n%s", line, p.stderr.String())
		}
	}
}

// The handler allocates nothing of its own: the header values are shared
// and the body goes to the response's buffer as it is. (The hostname
// lookup allocates its string; here it is a constant.)
func TestHandlerDoesNotAllocate(t *testing.T) {
	h := handleWhoami(func() (string, error) { return "web-1", nil }, discardLogger())
	req := httptest.NewRequest("GET", "/whoami", nil)
	w := &bufferWriter{header: http.Header{}, body: make([]byte, 0, 1<<10)}
	if n := testing.AllocsPerRun(100, func() { clear(w.header); h.ServeHTTP(w, req) }); n != 0 {
		t.Errorf("%v allocations per request, want 0", n)
	}
	if got := string(w.body); got != strings.Repeat("web-1\n", 101) {
		t.Errorf("body %q, want web-1 and a newline for each of the 101 requests", got)
	}
	if got := w.header.Get("Content-Type"); got != "text/plain; charset=utf-8" {
		t.Errorf("Content-Type %q", got)
	}
}

// bufferWriter is a ResponseWriter into a buffer allocated beforehand that,
// like net/http's own, takes strings without converting them.
type bufferWriter struct {
	header http.Header
	body   []byte
}

func (w *bufferWriter) Header() http.Header         { return w.header }
func (w *bufferWriter) WriteHeader(int)             {}
func (w *bufferWriter) Write(b []byte) (int, error) { return w.WriteString(string(b)) }
func (w *bufferWriter) WriteString(s string) (int, error) {
	w.body = append(w.body, s...)
	return len(s), nil
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

// BenchmarkServe measures the whole server over loopback, as make bench's
// wrk does, against the tutorial's bare program: conns keep-alive
// connections share b.N requests of GET /whoami. The clients run in this
// process too, alike for both: compare the two, and profile with
// -cpuprofile to see where whoami's time goes.
func BenchmarkServe(b *testing.B) {
	tutorial := func(ln net.Listener) (*http.Server, net.Listener) {
		mux := http.NewServeMux()
		mux.HandleFunc("/whoami", func(w http.ResponseWriter, r *http.Request) {
			host, _ := os.Hostname()
			io.WriteString(w, host)
		})
		return &http.Server{Handler: mux}, ln
	}
	whoami := func(ln net.Listener) (*http.Server, net.Listener) {
		return newCappedServer(ln, defaultMaxConns, newHandler(hostnameOnce(os.Hostname), discardLogger()), discardLogger())
	}
	for _, server := range []struct {
		name string
		new  func(net.Listener) (*http.Server, net.Listener)
	}{{"tutorial", tutorial}, {"whoami", whoami}} {
		for _, conns := range []int{1, 64, 256} {
			b.Run(fmt.Sprintf("%s/conns=%d", server.name, conns), func(b *testing.B) {
				tcp, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					b.Fatal(err)
				}
				srv, ln := server.new(tcp)
				go srv.Serve(ln)
				defer srv.Close()
				var left atomic.Int64
				left.Store(int64(b.N))
				var wg sync.WaitGroup
				b.ResetTimer()
				for range conns {
					wg.Go(func() {
						c, err := net.Dial("tcp", tcp.Addr().String())
						if err != nil {
							b.Error(err)
							return
						}
						defer c.Close()
						r := bufio.NewReader(c)
						for left.Add(-1) >= 0 {
							if err := request(c, r); err != nil {
								b.Error(err)
								return
							}
						}
					})
				}
				wg.Wait()
			})
		}
	}
}
