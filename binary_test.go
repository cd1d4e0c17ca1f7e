package main

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// These tests run the built binary, as Docker does: main's exit status and
// where its words go are what a HEALTHCHECK, an orchestrator and a user see.

var build struct {
	once sync.Once
	path string
	err  error
}

// binary builds the service once for the tests that run it.
func binary(t *testing.T) string {
	t.Helper()
	build.once.Do(func() {
		dir, err := os.MkdirTemp("", "whoami-bin-")
		if err != nil {
			build.err = err
			return
		}
		build.path = filepath.Join(dir, "whoami")
		if out, err := exec.Command("go", "build", "-o", build.path, ".").CombinedOutput(); err != nil {
			build.err = errors.New(string(out))
		}
	})
	if build.err != nil {
		t.Fatalf("go build: %v", build.err)
	}
	return build.path
}

// result runs the binary to its end, bounded, with env added.
func result(t *testing.T, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(binary(t), args...)
	cmd.Env = append(os.Environ(), env...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	cmd.WaitDelay = hang
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	timer := time.AfterFunc(hang, func() { cmd.Process.Kill() }) // a mutant that serves instead of failing
	defer timer.Stop()
	err := cmd.Wait()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatal(err)
	}
	return o.String(), e.String(), cmd.ProcessState.ExitCode()
}

func TestMainFailsWithStatus1AndOneLineOnStderr(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	for _, tt := range []struct {
		name string
		env  []string
		args []string
		want string
	}{
		{"an unknown flag", nil, []string{"-port", "80"}, "whoami: flag provided but not defined: -port (see whoami -h)\n"},
		{"a flag without its value", nil, []string{"-addr"}, "whoami: flag needs an argument: -addr (see whoami -h)\n"},
		{"a stray argument", nil, []string{"serve"}, "whoami: unexpected argument \"serve\" (see whoami -h)\n"},
		{"an -addr without a port", nil, []string{"-addr", "8080"}, "whoami: invalid -addr \"8080\": want host:port, such as :8080 or 127.0.0.1:9000\n"},
		{"an -addr port too large", nil, []string{"-addr", ":65536"}, "whoami: invalid -addr \":65536\": port must be a number from 0 to 65535\n"},
		{"a PORT that is no number", []string{"PORT=eighty"}, nil, "whoami: invalid PORT \"eighty\": must be a number from 1 to 65535\n"},
		{"a PORT too large", []string{"PORT=65536"}, nil, "whoami: invalid PORT \"65536\": must be a number from 1 to 65535\n"},
		{"PORT 0", []string{"PORT=0"}, nil, "whoami: invalid PORT \"0\": must be a number from 1 to 65535\n"},
		{"a negative -max-conns", nil, []string{"-max-conns", "-1"}, "whoami: invalid -max-conns -1: must be a positive number\n"},
		{"a -max-conns of 0", nil, []string{"-max-conns", "0"}, "whoami: invalid -max-conns 0: must be a positive number\n"},
		{"a MAX_CONNS that is no number", []string{"MAX_CONNS=many"}, nil, "whoami: invalid MAX_CONNS \"many\": must be a positive number\n"},
		{"a MAX_CONNS of 0", []string{"MAX_CONNS=0"}, nil, "whoami: invalid MAX_CONNS \"0\": must be a positive number\n"},
		{"a negative MAX_CONNS", []string{"MAX_CONNS=-3"}, nil, "whoami: invalid MAX_CONNS \"-3\": must be a positive number\n"},
		{"a port in use", nil, []string{"-addr", busy.Addr().String()}, "whoami: listen tcp " + busy.Addr().String() + ": bind: address already in use\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			stdout, stderr, code := result(t, tt.env, tt.args...)
			if code != 1 || stderr != tt.want || stdout != "" {
				t.Errorf("exit %d, stdout %q, stderr %q; want exit 1, nothing on stdout, and on stderr %q", code, stdout, stderr, tt.want)
			}
		})
	}
}

func TestMainPrintsHelpAndVersionOnStdout(t *testing.T) {
	for _, tt := range []struct{ arg, want string }{
		{"-h", "Usage: whoami [flags]\n\nServes GET /whoami with this machine's hostname.\n\n  -addr string\n"},
		{"-help", "Usage: whoami [flags]\n"},
		{"-version", "whoami dev\n"},
	} {
		stdout, stderr, code := result(t, nil, tt.arg)
		if code != 0 || !strings.HasPrefix(stdout, tt.want) || stderr != "" {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want exit 0 and stdout starting with %q", tt.arg, code, stdout, stderr, tt.want)
		}
	}
}

// serve starts the binary on a free port of 127.0.0.1 and returns it with
// its address and its log, once it listens.
func serve(t *testing.T, args ...string) (*exec.Cmd, string, *syncBuffer) {
	t.Helper()
	return serveWith(t, nil, args...)
}

// serveWith is serve with env added to the binary's environment.
func serveWith(t *testing.T, env []string, args ...string) (*exec.Cmd, string, *syncBuffer) {
	t.Helper()
	return serveIn(t, "", env, args...)
}

// serveIn is serveWith, the binary started by sh after the shell command
// before (a ulimit, say), if any.
func serveIn(t *testing.T, before string, env []string, args ...string) (*exec.Cmd, string, *syncBuffer) {
	t.Helper()
	addr := "127.0.0.1:" + reservePort(t)
	args = append([]string{"-addr", addr}, args...)
	cmd := exec.Command(binary(t), args...)
	if before != "" {
		cmd = exec.Command("sh", append([]string{"-c", before + ` && exec "$0" "$@"`, binary(t)}, args...)...)
	}
	cmd.Env = append(os.Environ(), env...)
	logs := &syncBuffer{}
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for deadline := time.Now().Add(hang); !strings.Contains(logs.String(), "whoami listening"); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("not listening after %v:\n%s", hang, logs)
		}
	}
	return cmd, addr, logs
}

// exited waits for cmd to end, bounded, and returns how.
func exited(t *testing.T, cmd *exec.Cmd) syscall.WaitStatus {
	t.Helper()
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(hang):
		t.Fatalf("still running %v after the signal", hang)
	}
	return cmd.ProcessState.Sys().(syscall.WaitStatus)
}

func TestMainStopsOnSIGTERMAndSIGINTWithStatus0(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			cmd, _, logs := serve(t)
			cmd.Process.Signal(sig)
			if ws := exited(t, cmd); ws.Signaled() || ws.ExitStatus() != 0 {
				t.Errorf("ended with %v, want exit status 0", cmd.ProcessState)
			}
			if !strings.Contains(logs.String(), `msg="whoami stopped"`) {
				t.Errorf("log:\n%s\nwant whoami stopped", logs)
			}
		})
	}
}

func TestASecondSignalDuringTheGraceStopsAtOnce(t *testing.T) {
	cmd, addr, logs := serve(t)
	// A client that holds the shutdown: half a body, up to the read time-out.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET /whoami HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nten bytes.")
	time.Sleep(100 * time.Millisecond)
	cmd.Process.Signal(syscall.SIGTERM)
	for deadline := time.Now().Add(hang); !strings.Contains(logs.String(), "whoami shutting down"); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no shutdown after SIGTERM:\n%s", logs)
		}
	}
	t0 := time.Now()
	cmd.Process.Signal(syscall.SIGTERM)
	ws := exited(t, cmd)
	if !ws.Signaled() || ws.Signal() != syscall.SIGTERM || time.Since(t0) > time.Second {
		t.Errorf("after a second SIGTERM: %v after %v; want killed by it at once, as a user who presses Ctrl-C twice expects", cmd.ProcessState, time.Since(t0))
	}
}

func TestMainHealthcheckExitStatus(t *testing.T) {
	_, addr, _ := serve(t)
	port := portOf(addr)
	if stdout, stderr, code := result(t, []string{"PORT=" + port}, "-healthcheck"); code != 0 || stdout != "" || stderr != "" {
		t.Errorf("healthy: exit %d, stdout %q, stderr %q; want exit 0 and no output", code, stdout, stderr)
	}
	free := reservePort(t)
	stdout, stderr, code := result(t, []string{"PORT=" + free}, "-healthcheck")
	want := "whoami: healthcheck: dial tcp 127.0.0.1:" + free + ": connect: connection refused\n"
	if code != 1 || stdout != "" || stderr != want {
		t.Errorf("unhealthy: exit %d, stdout %q, stderr %q; want exit 1 and %q", code, stdout, stderr, want)
	}
}

func TestHealthcheckReadsTheStatusLineStrictly(t *testing.T) {
	answer := func(line string) string {
		return rawServer(t, func(c net.Conn) {
			bufio.NewReader(c).ReadString('\n')
			io.WriteString(c, line+"\r\nContent-Length: 0\r\n\r\n")
		})
	}
	for _, tt := range []struct {
		line, wantErr string
	}{
		{"HTTP/1.1 200 OK", ""},
		{"HTTP/1.0 200 OK", ""},
		{"HTTP/1.1 200", ""},
		{"HTTP/1.1 204 No Content", "204 No Content"},
		{"HTTP/1.1 500 200", "500 200"},
		{"HTTP/1.1 2000 OK", "2000 OK"},
		{"HTTP/2 200", "not an HTTP/1 answer"},
		{"HTTP/1.1200 OK", "not an HTTP/1 answer"},
	} {
		t.Run(tt.line, func(t *testing.T) {
			var stdout, stderr syncBuffer
			err := run(t.Context(), []string{"-healthcheck", "-addr", answer(tt.line)}, env(nil), os.Hostname, listenTCP, &stdout, &stderr)
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("%q: %v, want %q", tt.line, err, tt.wantErr)
			}
		})
	}
}

func TestHealthcheckProbesTheHostThatAddrNames(t *testing.T) {
	// A server on 127.0.0.2 only: -addr 127.0.0.2:P probes it there, and
	// -addr :P (all interfaces) probes 127.0.0.1:P, where nothing listens.
	ln, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Fatalf("127.0.0.2 (loopback, on Linux): %v", err)
	}
	p := startOn(t, ln, []string{"-addr", ln.Addr().String()}, nil, os.Hostname)
	probeAt := func(addr string) error {
		var stdout, stderr syncBuffer
		return run(t.Context(), []string{"-healthcheck", "-addr", addr}, env(nil), os.Hostname, listenTCP, &stdout, &stderr)
	}
	if err := probeAt(p.addr); err != nil {
		t.Errorf("-addr %s: %v, want nil", p.addr, err)
	}
	if err := probeAt(":" + portOf(p.addr)); err == nil || !strings.Contains(err.Error(), "127.0.0.1:"+portOf(p.addr)) {
		t.Errorf("-addr :%s: %v, want a refusal at 127.0.0.1", portOf(p.addr), err)
	}
}

func TestGOMEMLIMITSetsTheCap(t *testing.T) {
	// The runtime reads GOMEMLIMIT when the process starts: only the binary
	// shows it. A GOMEMLIMIT of 64 MiB is Go's limit as given: 1,024
	// connections of at most 48 KiB, measured (TestConnectionMemory), after
	// the server's own 16 MiB.
	for _, tt := range []struct{ value, want string }{
		{"64MiB", "max_conns=1024 max_conns_from=go_memory_limit"},
		{"off", "max_conns=10000 max_conns_from=default"},
	} {
		t.Run(tt.value, func(t *testing.T) {
			_, _, logs := serveWith(t, []string{"GOMEMLIMIT=" + tt.value})
			if line := logs.String(); !strings.Contains(line, tt.want) || !strings.Contains(line, "go_memory_limit_from=GOMEMLIMIT") {
				t.Errorf("GOMEMLIMIT=%s: log %q, want %s from GOMEMLIMIT", tt.value, line, tt.want)
			}
		})
	}
}

func TestTheCapFitsALowOpenFileLimit(t *testing.T) {
	// 256 files, and 300 idle clients: the cap stops them short of the
	// limit, so that accept never fails for want of a file, and ordinary
	// clients get in as the idle ones make room.
	_, addr, logs := serveIn(t, "ulimit -n 256", nil)
	if line := logs.String(); !strings.Contains(line, "max_conns=176 max_conns_from=open_file_limit") || !strings.Contains(line, "open_file_limit=256") {
		t.Errorf("startup line %q: want max_conns=176 from open_file_limit=256", line)
	}
	for range 300 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		io.WriteString(c, "GET /whoami HTTP/1.1\r\nHost: x\r\n\r\n") // then idle
	}
	failed := 0
	for range 40 {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			err = request(c, bufio.NewReader(c))
			c.Close()
		}
		if err != nil {
			failed++
		}
	}
	if failed > 0 {
		t.Errorf("%d of 40 ordinary requests failed beside 300 idle clients at 256 open files", failed)
	}
	if strings.Contains(logs.String(), "too many open files") {
		t.Errorf("accept failed for want of files:\n%s", logs)
	}
}

func TestAMalformedGOMEMLIMITStopsTheRuntimeBeforeMain(t *testing.T) {
	// Go's runtime reads GOMEMLIMIT before main runs: the service cannot
	// say it its way. README says what happens; this holds README to it.
	_, stderr, code := result(t, []string{"GOMEMLIMIT=64 MB"})
	if code != 2 || !strings.Contains(stderr, "fatal error: malformed GOMEMLIMIT") {
		t.Errorf("exit %d, stderr %.300q; want exit 2 and Go's fatal error", code, stderr)
	}
}
