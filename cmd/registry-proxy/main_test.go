package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"whoami/internal/cli/clitest"
)

func TestTheCommandLine(t *testing.T) {
	clitest.Check(t, "registry-proxy", run,
		clitest.Case{Args: nil, Code: 2, Stderr: "registry-proxy: -socket PATH is required (see registry-proxy -h)\n"},
		clitest.Case{Args: []string{"-socket", "/x", "extra"}, Code: 2, Stderr: `registry-proxy: no arguments, only flags: ["extra"]`},
		clitest.Case{Args: []string{"-socket", "/x", "-listen", "127.0.0.1:http-x"}, Code: 1, Stderr: "registry-proxy: listen tcp"},
	)
}

// listenUnix listens on the Unix socket path until the test ends.
func listenUnix(t *testing.T, path string) net.Listener {
	t.Helper()
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// proxy starts the proxy on a free port of the loopback, to socket, and
// returns its address; it stops with the test, and must then return nil.
func proxy(t *testing.T, socket string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- serve(ctx, l, socket, io.Discard) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("serve after its context ended: %v, want nil", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("serve did not return within 10 s of its context's end")
		}
	})
	return l.Addr().String()
}

// Whatever goes in comes out, byte for byte, both ways: an HTTP server on
// a Unix socket answers a client of the proxy, with bodies of a few MB in
// each direction, on one connection kept alive, and on many at once.
func TestItForwardsEachConnectionAsItIs(t *testing.T) {
	socket := filepath.Join(t.TempDir(), "registry.sock")
	l := listenUnix(t, socket)
	s := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The sum of what came in, then a body made of it.
		b, _ := io.ReadAll(r.Body)
		sum := sha256.Sum256(b)
		w.Header().Set("X-Sum", hex.EncodeToString(sum[:]))
		w.Write(bytes.Repeat(sum[:], len(b)/len(sum)))
	})}
	go s.Serve(l)
	t.Cleanup(func() { s.Close() })
	url := "http://" + proxy(t, socket) + "/"
	client := &http.Client{Transport: &http.Transport{MaxConnsPerHost: 4}, Timeout: 30 * time.Second}
	for i, size := range []int{0, 32, 4 << 20} {
		body := bytes.Repeat([]byte{byte(i + 1)}, size)
		r, err := client.Post(url, "application/octet-stream", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(r.Body)
		r.Body.Close()
		sum := sha256.Sum256(body)
		if err != nil || r.Header.Get("X-Sum") != hex.EncodeToString(sum[:]) || !bytes.Equal(got, bytes.Repeat(sum[:], size/len(sum))) {
			t.Errorf("%d bytes sent: %d bytes back (%v), sum %q; want %d bytes and the sum of what was sent", size, len(got), err, r.Header.Get("X-Sum"), size/len(sum)*len(sum))
		}
	}
	errs := make(chan error, 16)
	for range 16 {
		go func() {
			r, err := client.Get(url)
			if err == nil {
				_, err = io.Copy(io.Discard, r.Body)
				r.Body.Close()
			}
			errs <- err
		}()
	}
	for range 16 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

// A client that says it is done sending (a half close) still gets all of
// the answer; the server's end of sending reaches the client too.
func TestAHalfCloseIsPassedOn(t *testing.T) {
	socket := filepath.Join(t.TempDir(), "echo.sock")
	l := listenUnix(t, socket)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				// Reads to the end, then answers: only a half close
				// passed on lets it answer at all.
				b, _ := io.ReadAll(c)
				c.Write([]byte(strings.ToUpper(string(b))))
				c.Close()
			}()
		}
	}()
	c, err := net.Dial("tcp", proxy(t, socket))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	c.Write([]byte("whoami"))
	c.(*net.TCPConn).CloseWrite()
	got, err := io.ReadAll(c)
	if string(got) != "WHOAMI" || err != nil {
		t.Errorf("after a half close: %q, %v; want %q and the end of the stream", got, err, "WHOAMI")
	}
}

// With nothing on the socket, a connection is closed at once, and the
// proxy goes on: the next connection is forwarded once the socket is there.
func TestNoSocketClosesTheConnectionAndNothingElse(t *testing.T) {
	socket := filepath.Join(t.TempDir(), "later.sock")
	addr := proxy(t, socket)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if n, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("read from a connection with no socket behind it: %d bytes, %v; want EOF", n, err)
	}
	c.Close()
	l := listenUnix(t, socket)
	go func() {
		if c, err := l.Accept(); err == nil {
			c.Write([]byte("here"))
			c.Close()
		}
	}()
	c, err = net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if got, err := io.ReadAll(c); string(got) != "here" || err != nil {
		t.Errorf("once the socket is there: %q, %v; want %q", got, err, "here")
	}
}

// A client that never closes its connection does not keep the proxy's
// goroutines and descriptors once the socket's side is done.
func TestTheSocketsEndEndsTheConnection(t *testing.T) {
	socket := filepath.Join(t.TempDir(), "bye.sock")
	l := listenUnix(t, socket)
	addr := proxy(t, socket)
	accepted := make(chan struct{})
	go func() {
		defer close(accepted)
		if c, err := l.Accept(); err == nil {
			c.Write([]byte("bye"))
			c.Close()
		}
	}()
	before := runtime.NumGoroutine()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close() // not before the end: the client holds on
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if got, err := io.ReadAll(c); string(got) != "bye" || err != nil {
		t.Fatalf("%q, %v; want %q", got, err, "bye")
	}
	<-accepted
	for deadline := time.Now().Add(5 * time.Second); runtime.NumGoroutine() > before-1; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines with the client's connection still open, %d before it, the socket's server gone: the proxy still holds it", runtime.NumGoroutine(), before)
		}
	}
}
