package probe

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Flooded is what a flood did.
type Flooded struct {
	Opened, Cut int // connections opened, and closed by the server
}

// floodEnv carries addr, n and the deadline to the flood's own process.
const floodEnv = "WHOAMI_PROBE_FLOOD"

// Flood starts a flood of n connections to addr that ends at ctx's
// deadline, and returns at once; wait returns what it did once it has
// ended. Half of the connections trickle a request's headers (1 KiB every
// 100 ms, up to 15 KiB, and never end them), half send one request and
// then stay idle (keep-alive). A connection the server closes is opened
// again, so the flood keeps its n. Every connection goes to addr only.
//
// The flood runs in a process of its own: the test binary again, which
// RunFlood in its TestMain turns into the flood. Its thousands of
// goroutines would otherwise starve the caller's own ordinary clients (a
// client held up for half a second looks like a slow attacker to the
// server): an attacker and a client are not one program.
func Flood(ctx context.Context, addr string, n int) (wait func() (Flooded, error), err error) {
	deadline, ok := ctx.Deadline()
	if !ok {
		return nil, fmt.Errorf("probe.Flood: ctx has no deadline")
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
	cmd := exec.CommandContext(kill, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s %d %d", floodEnv, addr, n, deadline.UnixNano()))
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Start(); err != nil {
		stop()
		cancel()
		return nil, fmt.Errorf("the flood's process: %v", err)
	}
	return func() (Flooded, error) {
		defer cancel()
		defer stop()
		if err := cmd.Wait(); err != nil {
			return Flooded{}, fmt.Errorf("the flood's process: %v: %s", err, bytes.TrimSpace(errOut.Bytes()))
		}
		var f Flooded
		if err := json.Unmarshal(out.Bytes(), &f); err != nil {
			return Flooded{}, fmt.Errorf("the flood's process printed %q, not its results: does TestMain call probe.RunFlood first?", out.String())
		}
		return f, nil
	}, nil
}

// RunFlood makes this process the flood when Flood started it, and exits
// with its results on stdout; otherwise it returns at once. Call it first
// in the TestMain of a package whose tests call Flood.
func RunFlood() {
	spec, ok := os.LookupEnv(floodEnv)
	if !ok {
		return
	}
	var addr string
	var n int
	var deadline int64
	if _, err := fmt.Sscan(spec, &addr, &n, &deadline); err != nil {
		fmt.Fprintf(os.Stderr, "probe: %s=%q: %v\n", floodEnv, spec, err)
		os.Exit(2)
	}
	ctx, cancel := context.WithDeadline(context.Background(), time.Unix(0, deadline))
	f := flood(ctx, addr, n)
	cancel()
	json.NewEncoder(os.Stdout).Encode(f)
	os.Exit(0)
}

// flood is Flood, in this process.
func flood(ctx context.Context, addr string, n int) Flooded {
	var opened, cut atomic.Int64
	var wg sync.WaitGroup
	chunk := "X-Flood-" + strings.Repeat("a", 1000) + ": b\r\n"
	for i := range n {
		slow := i%2 == 0
		wg.Go(func() {
			for ctx.Err() == nil {
				c, err := (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, "tcp", addr)
				if err != nil {
					sleep(ctx, 100*time.Millisecond)
					continue
				}
				opened.Add(1)
				stop := context.AfterFunc(ctx, func() { c.Close() })
				if slow {
					io.WriteString(c, "GET /whoami HTTP/1.1\r\nHost: flood\r\n")
					for i := 0; i < 15 && ctx.Err() == nil; i++ {
						if _, err := io.WriteString(c, chunk); err != nil {
							break
						}
						sleep(ctx, 100*time.Millisecond)
					}
				} else {
					io.WriteString(c, "GET /whoami HTTP/1.1\r\nHost: flood\r\n\r\n")
				}
				// Wait until the server closes it (or the flood ends), then
				// open another a second later, as flood tools keep their count.
				io.Copy(io.Discard, c)
				stop()
				c.Close()
				if ctx.Err() == nil {
					cut.Add(1)
				}
				sleep(ctx, time.Second)
			}
		})
	}
	wg.Wait()
	return Flooded{Opened: int(opened.Load()), Cut: int(cut.Load())}
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
