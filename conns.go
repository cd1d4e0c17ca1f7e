package main

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// limitedListener caps the number of open connections, so that the memory
// they take stays bounded whatever the clients do. The policy, in the order
// admit applies it:
//
//  1. Under the cap, a new connection is let in.
//  2. At the cap, the idle connection (keep-alive, not a byte of its next
//     request received) whose last answer went out longest ago is closed to
//     make room.
//  3. Else, the connection that has spent longest outside a handler is
//     closed, once that is longer than unfinishedGrace: one sending a
//     request (its headers, or its next request on a kept-alive
//     connection, counted from its first byte), or, its handler done, one
//     sending a body nobody reads or not reading its answer. An ordinary
//     client is quicker than the grace.
//  4. A connection whose handler is running is never closed. Else the new
//     connection waits, the kernel queueing the next clients meanwhile,
//     until a grace ends or a handler returns, for maxAdmitWait at most;
//     then it is closed.
//
// So a client can hold a slot only while its own request is being
// answered, which takes microseconds. nginx does much the same when it runs
// out of worker connections: it closes idle keep-alive connections, and
// drops the new one when there is none.
//
// A connection's state is its own atomic word, changed on every request
// without a lock; the mutex guards only the set of connections, changed
// when one opens or closes.
type limitedListener struct {
	net.Listener
	max    int
	logger *slog.Logger
	epoch  time.Time // the clock of the connections' states

	mu    sync.Mutex
	conns []*conn // in no order; each knows its index

	cut, refused atomic.Int64 // connections closed at the cap, since the last log line
	logged       atomic.Int64 // when the last line was logged (UnixNano)
}

// unfinishedGrace is how long a connection may spend outside a handler in
// the middle of a request before the cap may cut it. An ordinary client
// sends its request as it connects; the grace also bounds how fast new
// connections get in past stalled ones (cap / grace a second), which is
// why it is short: see docs/reliability.md.
const unfinishedGrace = 100 * time.Millisecond

// maxAdmitWait bounds how long a new connection waits for room at the cap,
// looking again every admitPoll.
const (
	maxAdmitWait = 2 * time.Second
	admitPoll    = time.Millisecond
)

// A connection's state: what it does, and since when (nanoseconds on the
// listener's clock), packed in one word: since<<2 | what.
const (
	cut      = iota // closed by the cap: its handler must not start
	sending         // in a request, outside its handler (a candidate after the grace)
	idle            // between requests (a candidate at once, the longest idle first)
	answered        // its handler is running: never cut
	whatBits = 2
	whatMask = 1<<whatBits - 1
)

// conn is one open connection.
type conn struct {
	net.Conn
	l     *limitedListener
	state atomic.Int64 // since<<whatBits | what
	index int          // in l.conns, -1 once closed or cut; guarded by l.mu

	// The write deadline the server asked for, and the one set on the
	// socket. Only the connection's own goroutine writes and sets it.
	wantWrite, setWrite time.Time
}

// writeSlack is how late a write deadline may fire. The server moves the
// deadline at every request (writeTimeout from its headers) and clears it
// after the answer: each is an operation on the runtime's timer heap. Set
// on the socket writeSlack later than asked, at the first write, the
// deadline holds for every request of the next writeSlack: one operation
// a second instead of two a request (make bench's profile shows the rest).
const writeSlack = time.Second

func newLimitedListener(ln net.Listener, max int, logger *slog.Logger) *limitedListener {
	return &limitedListener{Listener: ln, max: max, logger: logger, epoch: time.Now()}
}

// now is the time on the listener's clock, shifted to make room for what.
func (l *limitedListener) now() int64 { return int64(time.Since(l.epoch)) << whatBits }

// Accept returns the next connection, making room for it if the cap is
// reached, or waiting for room as the policy says.
func (l *limitedListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		deadline := time.Now().Add(maxAdmitWait)
		for {
			tc, wait := l.admit(c)
			if tc != nil {
				return tc, nil
			}
			if time.Now().Add(wait).After(deadline) {
				break
			}
			time.Sleep(wait)
		}
		c.Close()
		l.refused.Add(1)
		l.logAtCap()
	}
}

// admit registers c, making room at the cap by cutting a connection as the
// policy says. If none may be cut yet, it returns nil and how long to wait
// before one may be.
func (l *limitedListener) admit(c net.Conn) (*conn, time.Duration) {
	l.mu.Lock()
	var victim *conn
	for len(l.conns) >= l.max {
		v, wait := l.victim()
		if v == nil {
			l.mu.Unlock()
			return nil, wait
		}
		if s := v.state.Load(); s&whatMask != answered && v.state.CompareAndSwap(s, cut) {
			l.remove(v)
			victim = v
		} // else its handler began meanwhile: look again
	}
	tc := &conn{Conn: c, l: l, index: len(l.conns)}
	tc.state.Store(l.now() | sending)
	l.conns = append(l.conns, tc)
	l.mu.Unlock()
	if victim != nil {
		victim.Conn.Close() // the server sees its read or write fail, and forgets it
		l.cut.Add(1)
		l.logAtCap()
	}
	return tc, 0
}

// victim returns the connection to cut (rules 2 and 3), or nil and how long
// until there may be one (rule 4). l.mu is held.
func (l *limitedListener) victim() (*conn, time.Duration) {
	var oldestIdle, oldestSending *conn
	var idleSince, sendingSince int64
	for _, c := range l.conns {
		s := c.state.Load()
		since := s >> whatBits
		switch s & whatMask {
		case idle:
			if oldestIdle == nil || since < idleSince {
				oldestIdle, idleSince = c, since
			}
		case sending:
			if oldestSending == nil || since < sendingSince {
				oldestSending, sendingSince = c, since
			}
		}
	}
	if oldestIdle != nil {
		return oldestIdle, 0
	}
	if oldestSending == nil {
		return nil, admitPoll // every one is being answered: that takes microseconds
	}
	if left := unfinishedGrace - time.Duration(l.now()>>whatBits-sendingSince); left > 0 {
		return nil, min(left, admitPoll) // one may become idle or close meanwhile
	}
	return oldestSending, 0
}

// remove takes c out of the set. l.mu is held.
func (l *limitedListener) remove(c *conn) {
	last := l.conns[len(l.conns)-1]
	l.conns[c.index], last.index = last, c.index
	l.conns[len(l.conns)-1] = nil
	l.conns = l.conns[:len(l.conns)-1]
	c.index = -1
}

// logAtCap logs, at most once a second, how many connections the cap cut
// or refused: a flood must not flood the log too.
func (l *limitedListener) logAtCap() {
	now := time.Now().UnixNano()
	last := l.logged.Load()
	if now-last < int64(time.Second) || !l.logged.CompareAndSwap(last, now) {
		return
	}
	l.logger.Warn("at the connection limit: closed idle connections and requests stalled outside a handler",
		"limit", l.max, "cut", l.cut.Swap(0), "refused", l.refused.Swap(0))
}

// open returns how many connections are open.
func (l *limitedListener) open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.conns)
}

// Read marks an idle connection as sending its next request as soon as a
// byte of it arrives. (Bytes that came with the previous request, which
// only pipelining clients send, count from the next read instead.)
func (c *conn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		if s := c.state.Load(); s&whatMask == idle {
			c.state.CompareAndSwap(s, c.l.now()|sending)
		}
	}
	return n, err
}

// SetWriteDeadline records the deadline; Write sets it on the socket.
func (c *conn) SetWriteDeadline(t time.Time) error {
	c.wantWrite = t
	return nil
}

// SetDeadline sets both deadlines, the write one as SetWriteDeadline does.
func (c *conn) SetDeadline(t time.Time) error {
	c.wantWrite = t
	return c.Conn.SetReadDeadline(t)
}

// Write sets the write deadline asked for on the socket first, unless the
// one there already fires at most writeSlack after it.
func (c *conn) Write(p []byte) (int, error) {
	want, set := c.wantWrite, c.setWrite
	if want.IsZero() != set.IsZero() || set.Before(want) || set.Sub(want) > writeSlack {
		if !want.IsZero() {
			want = want.Add(writeSlack)
		}
		if err := c.Conn.SetWriteDeadline(want); err != nil {
			return 0, err
		}
		c.setWrite = want
	}
	return c.Conn.Write(p)
}

// track is the server's ConnState hook: a connection whose answer has gone
// out is idle, and a closed one leaves the set. (New is when admit took
// it; Active, when its headers are read, changes nothing: the handler
// marks the connection answered.)
func (l *limitedListener) track(nc net.Conn, state http.ConnState) {
	c := nc.(*conn) // what Accept returned
	switch state {
	case http.StateIdle:
		// Idle since the handler returned: the answer went out just after.
		c.state.Store(c.state.Load()&^whatMask | idle)
	case http.StateClosed, http.StateHijacked:
		l.mu.Lock()
		if c.index >= 0 {
			l.remove(c)
		}
		l.mu.Unlock()
	}
}

// connKey is the request context's key for its connection.
type connKey struct{}

// answering wraps the server's handler: while it runs, its connection
// cannot be cut; once it returns, what is left (a body to drain, an answer
// the client does not read) has the grace, like a request being sent.
func (l *limitedListener) answering(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := r.Context().Value(connKey{}).(*conn) // connContext put it there
		for {
			s := c.state.Load()
			if s&whatMask == cut {
				return // the cap closed it a moment ago: nobody to answer
			}
			if c.state.CompareAndSwap(s, answered) {
				break
			}
		}
		h.ServeHTTP(w, r)
		c.state.Store(l.now() | sending)
	})
}

// connContext is the server's ConnContext hook: it gives each request its
// connection.
func connContext(ctx context.Context, c net.Conn) context.Context {
	return context.WithValue(ctx, connKey{}, c)
}
