package main

// The root package's test harness: the program run in this test process on
// a listener the test gives it, what it writes, and the clients the tests
// share.

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// hang bounds every wait in these tests. It only catches a hang: nothing
// here asserts how fast something is.
const hang = 10 * time.Second

// process is the real program, started through run in this test process.
type process struct {
	addr   string // where it listens
	asked  string // the address run asked for
	stderr *syncBuffer
	cancel context.CancelFunc
	done   chan error
}

// start runs the program with args and the given environment on a new
// listener of 127.0.0.1, and stops it when the test ends.
func start(t *testing.T, args []string, vars map[string]string, hostname func() (string, error)) *process {
	t.Helper()
	return startOn(t, listen(t, "127.0.0.1:0"), args, vars, hostname)
}

// startOn runs the program on ln, whatever address the flags and PORT
// name (which it records), and stops it when the test ends. Connections
// wait in ln's backlog until the server accepts them. A nil ln is the
// program's own, listenTCP on that address.
func startOn(t *testing.T, ln net.Listener, args []string, vars map[string]string, hostname func() (string, error)) *process {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	p := &process{stderr: &syncBuffer{}, cancel: cancel, done: make(chan error, 1)}
	given := func(addr string) (net.Listener, error) {
		p.asked = addr
		if ln == nil {
			l, err := listenTCP(addr)
			if err == nil {
				p.addr = l.Addr().String()
			}
			return l, err
		}
		p.addr = ln.Addr().String()
		return ln, nil
	}
	go func() { p.done <- run(ctx, args, env(vars), hostname, given, io.Discard, p.stderr) }()
	t.Cleanup(func() {
		if err := p.stop(); err != nil {
			t.Errorf("run returned %v, want nil", err)
		}
	})
	p.waitFor(t, `msg="whoami listening"`) // or run's error, at once
	return p
}

// listen listens on addr until the test ends.
func listen(t *testing.T, addr string) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
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
	b, err := io.ReadAll(resp.Body)
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

// reservePort holds a TCP port on 127.0.0.1 until the test ends: bound,
// so that no other program gets it, but not listening, so that connecting
// to it is refused. run can still listen on it: Go's listeners set
// SO_REUSEADDR, as this socket does, and Linux lets two such sockets bind
// one port while neither listens.
func reservePort(t *testing.T) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprint(sa.(*syscall.SockaddrInet4).Port)
}

// rawServer listens on 127.0.0.1, hands each connection to handle and
// closes it when handle returns. It stops when the test ends.
func rawServer(t *testing.T, handle func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				handle(c)
			}()
		}
	}()
	return ln.Addr().String()
}

func portOf(addr string) string {
	_, port, _ := net.SplitHostPort(addr)
	return port
}

// roundTrip writes a raw request on a new connection and returns all the
// server sent until it closed the connection.
func roundTrip(t *testing.T, addr, request string) string {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(hang))
	if _, err := io.WriteString(conn, request); err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(conn)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
