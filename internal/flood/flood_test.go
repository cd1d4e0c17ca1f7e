package flood

import (
	"context"
	"io"
	"net"
	"testing"
	"time"
)

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
