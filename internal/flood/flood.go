// Package flood is the hostile clients of the tests (docs/reliability.md):
// floods of connections that each hold the server in a way of their own,
// run in a process of their own. Test-only: no tool uses it.
package flood

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Result is what a flood did.
type Result struct {
	Opened, Cut int // connections opened, and closed by the server
}

// A Kind is what the connections of a flood do.
type Kind string

// The kinds of flood: each is a way to hold a connection open while
// costing the client little.
const (
	// Headers trickles a request's headers, 1 KiB every 100 ms, up to
	// 15 KiB, and never ends them.
	Headers Kind = "headers"
	// Idle sends one request, reads the answer, and stays open (keep-alive).
	Idle Kind = "idle"
	// Body sends GET /whoami with a body of 100,000 bytes, a byte every
	// 100 ms: the handler answers at once, the server drains the body.
	Body Kind = "body"
	// NextRequest sends one request, reads the answer, then trickles the
	// next one on the same connection, a header line every 100 ms.
	NextRequest Kind = "next-request"
	// SlowRead asks for the largest answer there was (a path that is not
	// clean, with 19,000 "&": ServeMux redirected it with a 114 KB
	// answer), through a receive buffer of a byte and segments of 88
	// bytes, and reads what comes a byte every 100 ms.
	SlowRead Kind = "slow-read"
	// SlowPipelined pipelines three such requests on the same small
	// buffer, and reads 1 KiB every 80 ms.
	SlowPipelined Kind = "slow-pipelined"
	// Oversized sends 32 KiB of headers at once (a 431) and reads nothing.
	Oversized Kind = "oversized"
	// EarlyAnswer sends POST /whoami with a body of 1 MB, a KiB every
	// 100 ms: the server answers 405 at once, then has a body to drain.
	EarlyAnswer Kind = "early-answer"
	// Silent connects and sends nothing.
	Silent Kind = "silent"
	// Renewing sends one request after another on the same connection,
	// each one's headers over 60 ms (within a grace of 100 ms a request),
	// the next as soon as the answer is read: the server waits on it
	// nearly all the time, one short request at a time.
	Renewing Kind = "renewing"
	// Mixed gives each kind above to one connection in ten.
	Mixed Kind = "mixed"
	// Unread pipelines 1,000 requests with a small receive buffer, reads
	// none of the answers, and waits: the server is stuck writing an
	// answer. It is a flood of requests as much as of connections: each
	// connection makes the server answer a hundred requests or so first.
	Unread Kind = "unread"
)

// Kinds are the kinds a flood can be of.
var Kinds = []Kind{Headers, Idle, Body, NextRequest, SlowRead, SlowPipelined, Oversized, EarlyAnswer, Silent, Renewing, Mixed, Unread}

// holders are the kinds of a Mixed flood: every kind that holds a
// connection rather than sending requests.
var holders = []Kind{Headers, Idle, Body, NextRequest, SlowRead, SlowPipelined, Oversized, EarlyAnswer, Silent, Renewing}

// floodEnv carries addr, n, the deadline and the kind to the flood's own
// process.
const floodEnv = "WHOAMI_FLOOD"

// Start starts a flood of n connections of a kind to addr that ends at
// ctx's deadline, and returns at once; wait returns what it did once it
// has ended. A connection the server closes is opened again a second
// later, so the flood keeps its n. Every connection goes to addr only.
//
// The flood runs in a process of its own: the test binary again, which
// Main in its TestMain turns into the flood. Its thousands of
// goroutines would otherwise starve the caller's own ordinary clients (a
// client held up for half a second looks like a slow attacker to the
// server): an attacker and a client are not one program.
//
// The process runs at CPU priority nice (0 is the caller's, 19 the
// lowest). At 0 the flood opens connections as fast as it can, the
// harder test of the server's memory. But it shares this machine's CPUs
// with the server, which an attacker elsewhere does not, and takes most
// of them (a flood at one pod took 69% of the two, the pod 55%): a test
// of what else must keep up, a kubelet's probes with their 1 s time-out,
// runs it at 19, so that it takes only what the others leave.
func Start(ctx context.Context, addr string, n int, kind Kind, nice int) (wait func() (Result, error), err error) {
	if !slices.Contains(Kinds, kind) {
		return nil, fmt.Errorf("flood.Start: no flood of kind %q", kind)
	}
	if nice < 0 || nice > 19 {
		return nil, fmt.Errorf("flood.Start: nice %d: want 0 (the caller's priority) to 19 (the lowest)", nice)
	}
	deadline, ok := ctx.Deadline()
	if !ok {
		return nil, fmt.Errorf("flood.Start: ctx has no deadline")
	}
	// The process stops at the deadline by itself; it is killed if it does
	// not, or if the caller gives up earlier.
	kill, cancel := context.WithDeadline(context.WithoutCancel(ctx), deadline.Add(10*time.Second))
	stop := context.AfterFunc(ctx, func() {
		if time.Until(deadline) > time.Second {
			cancel()
		}
	})
	var out, errOut bytes.Buffer
	// nice sets the priority before the binary starts, so that every
	// thread of it has it (a thread's priority is its own on Linux).
	cmd := exec.CommandContext(kill, "nice", "-n", strconv.Itoa(nice), os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s %d %d %s", floodEnv, addr, n, deadline.UnixNano(), kind))
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Start(); err != nil {
		stop()
		cancel()
		return nil, fmt.Errorf("the flood's process: %v", err)
	}
	return func() (Result, error) {
		defer cancel()
		defer stop()
		if err := cmd.Wait(); err != nil {
			return Result{}, fmt.Errorf("the flood's process: %v: %s", err, bytes.TrimSpace(errOut.Bytes()))
		}
		var f Result
		if err := json.Unmarshal(out.Bytes(), &f); err != nil {
			return Result{}, fmt.Errorf("the flood's process printed %q, not its results: does TestMain call flood.Main first?", out.String())
		}
		return f, nil
	}, nil
}

// Main makes this process the flood when Start started it, and exits
// with its results on stdout; otherwise it returns at once. Call it first
// in the TestMain of a package whose tests call Start.
func Main() {
	spec, ok := os.LookupEnv(floodEnv)
	if !ok {
		return
	}
	var addr string
	var n int
	var deadline int64
	var kind Kind
	if _, err := fmt.Sscan(spec, &addr, &n, &deadline, &kind); err != nil {
		fmt.Fprintf(os.Stderr, "flood: %s=%q: %v\n", floodEnv, spec, err)
		os.Exit(2)
	}
	ctx, cancel := context.WithDeadline(context.Background(), time.Unix(0, deadline))
	f := run(ctx, addr, n, kind)
	cancel()
	json.NewEncoder(os.Stdout).Encode(f)
	os.Exit(0)
}

// run is Start's flood, in this process.
func run(ctx context.Context, addr string, n int, kind Kind) Result {
	var opened, cut atomic.Int64
	var wg sync.WaitGroup
	for i := range n {
		k := kind
		if k == Mixed {
			k = holders[i%len(holders)]
		}
		wg.Go(func() {
			for ctx.Err() == nil {
				c, err := (&net.Dialer{Timeout: 5 * time.Second, Control: smallBuffers(k)}).DialContext(ctx, "tcp", addr)
				if err != nil {
					sleep(ctx, 100*time.Millisecond)
					continue
				}
				opened.Add(1)
				stop := context.AfterFunc(ctx, func() { c.Close() })
				hold(ctx, c, k)
				stop()
				c.Close()
				if ctx.Err() == nil {
					cut.Add(1)
				}
				sleep(ctx, time.Second) // then open another, as flood tools keep their count
			}
		})
	}
	wg.Wait()
	return Result{Opened: int(opened.Load()), Cut: int(cut.Load())}
}

// smallBuffers returns a dialer's Control that gives a connection of kind
// k a small receive buffer, so that a few answers fill it: 4 KiB for an
// Unread connection; for the slow readers, the least the kernel allows
// (it rounds a byte up to about 2 KiB) and the least segment size, 88
// bytes, so that the server's answer crawls. nil for other kinds.
func smallBuffers(k Kind) func(network, address string, c syscall.RawConn) error {
	var rcvbuf, mss int
	switch k {
	case Unread:
		rcvbuf = 4096
	case SlowRead, SlowPipelined:
		rcvbuf, mss = 1, 88
	default:
		return nil
	}
	return func(network, address string, c syscall.RawConn) error {
		var err error
		c.Control(func(fd uintptr) {
			err = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, rcvbuf)
			if err == nil && mss > 0 {
				err = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_MAXSEG, mss)
			}
		})
		return err
	}
}

// The pieces of the floods' requests.
var (
	get        = "GET /whoami HTTP/1.1\r\nHost: flood\r\n"
	headerLine = "X-Flood-" + strings.Repeat("a", 1000) + ": b\r\n"
	pipelined  = strings.Repeat(get+"\r\n", 1000)
	unclean    = "GET /x/../" + strings.Repeat("&", 19000) + " HTTP/1.1\r\nHost: flood\r\n\r\n"
	oversized  = get + "X-Flood: " + strings.Repeat("a", 32<<10) + "\r\n\r\n"
)

// hold does what a connection of kind k does, until the server closes c
// (or the flood ends and closes it).
func hold(ctx context.Context, c net.Conn, k Kind) {
	r := bufio.NewReader(c)
	if k == Idle || k == NextRequest {
		io.WriteString(c, get+"\r\n")
		if resp, err := http.ReadResponse(r, nil); err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}
	switch k {
	case Headers, NextRequest:
		io.WriteString(c, get)
		for i := 0; i < 15 && ctx.Err() == nil; i++ {
			if _, err := io.WriteString(c, headerLine); err != nil {
				return
			}
			sleep(ctx, 100*time.Millisecond)
		}
	case Body:
		io.WriteString(c, get+"Content-Length: 100000\r\n\r\n")
		for ctx.Err() == nil {
			if _, err := io.WriteString(c, "a"); err != nil {
				return
			}
			sleep(ctx, 100*time.Millisecond)
		}
	case SlowRead:
		io.WriteString(c, unclean)
		readSlowly(ctx, c, 1, 100*time.Millisecond)
		return
	case SlowPipelined:
		io.WriteString(c, unclean+unclean+unclean)
		readSlowly(ctx, c, 1<<10, 80*time.Millisecond)
		return
	case Oversized:
		io.WriteString(c, oversized)
		untilClosed(ctx, c)
		return
	case Renewing:
		for ctx.Err() == nil {
			io.WriteString(c, get)
			sleep(ctx, 60*time.Millisecond)
			if _, err := io.WriteString(c, "X-Flood: renewing\r\n\r\n"); err != nil {
				return
			}
			resp, err := http.ReadResponse(r, nil)
			if err != nil {
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		return
	case EarlyAnswer:
		io.WriteString(c, "POST /whoami HTTP/1.1\r\nHost: flood\r\nContent-Length: 1048576\r\n\r\n")
		chunk := strings.Repeat("a", 1<<10)
		for ctx.Err() == nil {
			if _, err := io.WriteString(c, chunk); err != nil {
				return
			}
			sleep(ctx, 100*time.Millisecond)
		}
	case Unread:
		// The answers fill the small receive buffer, then the server's
		// send buffer: the server is stuck writing, the rest unread.
		io.WriteString(c, pipelined)
		untilClosed(ctx, c)
		return
	}
	io.Copy(io.Discard, r) // until the server closes it
}

// untilClosed waits, reading nothing, until the server closes c: a write
// of an empty line (allowed between requests) fails then, where it only
// stalls while the connection is open.
func untilClosed(ctx context.Context, c net.Conn) {
	for ctx.Err() == nil {
		sleep(ctx, time.Second)
		c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
		if _, err := io.WriteString(c, "\r\n"); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			return
		}
	}
}

// readSlowly reads n bytes from c every d until the server closes it.
func readSlowly(ctx context.Context, c net.Conn, n int, d time.Duration) {
	b := make([]byte, n)
	for ctx.Err() == nil {
		if _, err := c.Read(b); err != nil {
			return
		}
		sleep(ctx, d)
	}
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
