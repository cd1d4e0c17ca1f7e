package flood

import (
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestMain(m *testing.M) {
	Main() // when TestTheFloodRunsAtTheNiceAskedFor's Start runs this binary
	os.Exit(m.Run())
}

func TestTheFloodRunsAtTheNiceAskedFor(t *testing.T) {
	// Every thread of the flood's process, whichever made it, runs at the
	// nice asked for: what the kernel says of each, from /proc, while the
	// flood holds a connection.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	wait, err := Start(ctx, ln.Addr().String(), 1, Idle, 19)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); wait() }() // cancelled early, it is killed
	// Once the flood's connection is in, its process is up, its threads made.
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	var threads int
	for _, stat := range stats {
		if f := procStat(t, stat); f == nil || f[1] != strconv.Itoa(os.Getpid()) {
			continue // not a child of this test
		}
		tasks, _ := filepath.Glob(filepath.Join(filepath.Dir(stat), "task", "*", "stat"))
		for _, task := range tasks {
			if f := procStat(t, task); f != nil {
				threads++
				if f[16] != "19" {
					t.Errorf("%s: nice %s, want 19", task, f[16])
				}
			}
		}
	}
	if threads < 2 {
		t.Errorf("found %d threads of the flood's process, want its Go runtime's several", threads)
	}
}

// procStat returns the fields of a /proc stat file after the command's
// name: the first is the state, the second the parent's PID, the
// seventeenth the nice value. nil if it is gone.
func procStat(t *testing.T, path string) []string {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	_, after, ok := strings.Cut(string(b), ") ")
	if f := strings.Fields(after); ok && len(f) > 16 {
		return f
	}
	t.Fatalf("%s: %q is not a stat line", path, b)
	return nil
}

func TestEachFloodSendsWhatItSaysAndStopsByItself(t *testing.T) {
	for _, tt := range []struct {
		kind Kind
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
			done := make(chan Result, 1)
			go func() { done <- run(ctx, ln.Addr().String(), 2, tt.kind) }()
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

func TestANiceOutOfRangeIsRefused(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	defer cancel()
	for _, nice := range []int{-1, 20} {
		if _, err := Start(ctx, "127.0.0.1:1", 1, Idle, nice); err == nil {
			t.Errorf("Start with nice %d: no error, want one", nice)
		}
	}
}
