package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// limitedListener caps the number of open connections, so that the memory
// and the files they take stay bounded whatever the clients do.
//
// The invariant: a connection holds a slot past unfinishedGrace only while
// the server itself works on it (its handler runs), never while the server
// waits on the client: for a request, its headers or its body, for the
// client to read an answer, or for a next request. The grace is not a
// request's but the connection's: the time the server has waited on it in
// its recent requests adds up, so that a client cannot renew it by
// starting a new request before each one runs out. No handler waits on the
// client either: every answer is at most maxAnswer bytes (http.go), which
// net/http keeps in its buffer until the handler has returned, and writes
// to the socket only then, when the connection is a candidate again.
//
// The policy, in the order admit applies it:
//
//  1. Under the cap, a new connection is let in.
//  2. At the cap, the idle connection (keep-alive, not a byte of its next
//     request received) whose last answer went out longest ago is closed to
//     make room.
//  3. Else, of the connections outside a handler, the one the server has
//     waited on longest is closed, once that is longer than
//     unfinishedGrace: the time spent sending a request (its headers, or
//     its next request on a kept-alive connection, counted from its first
//     byte), or, its handler done, a body nobody reads or an answer the
//     client does not read; the current stretch, and the earlier ones,
//     less one waitDrain-th of the time since. An ordinary client takes
//     microseconds of the server's waiting a request.
//  4. A connection whose handler is running is never closed. Else the new
//     connection waits, for maxAdmitWait at most from when it was
//     accepted, until a grace ends or a handler returns; then it is
//     closed. Up to maxWaiting wait at once, each on its own clock, first
//     come first in, while the listener goes on accepting; beyond that the
//     kernel queues the next ones.
//
// When accept fails because the process is out of files, the listener
// makes room as at the cap (rules 2 and 3), so that the cap's victims are
// the ones to go, not new clients.
//
// So a client can hold a slot only while its own request is being
// answered, which takes microseconds, or for a grace it cannot renew.
// nginx does much the same when it runs out of worker connections: it
// closes idle keep-alive connections, and drops the new one when there is
// none.
//
// A connection's state is its own atomic word, changed on every request
// without a lock, and only from the state its changer saw (compare and
// swap): a cut is final. The mutex guards only the set of connections,
// changed when one opens or closes.
type limitedListener struct {
	net.Listener
	max    int
	logger *slog.Logger
	epoch  time.Time // the clock of the connections' states

	mu    sync.Mutex
	conns []*conn // in no order; each knows its index

	closed atomic.Bool // Close was called

	// Accepted connections waiting for room, the first come first; and
	// whether the listener has a deadline for them. Only Accept uses them.
	waiting  []waiter
	deadline bool

	cut, refused, noFiles atomic.Int64 // since the last log line
	logged                atomic.Int64 // when the last line was logged (UnixNano)
}

// unfinishedGrace is how long the server may wait on a connection, outside
// a handler, before the cap may cut it. An ordinary client sends its
// request as it connects; the grace also bounds how fast new connections
// get in past stalled ones (cap / grace a second), which is why it is
// short: see docs/reliability.md. What it waited in earlier requests
// drains by one nanosecond for every waitDrain that pass: a client that
// keeps the server waiting less than half its time, however many requests
// it makes, adds nothing up; one that keeps it waiting all the time, as a
// client renewing its requests one after another does, passes the grace
// after twice the grace.
const (
	unfinishedGrace = 100 * time.Millisecond
	waitDrain       = 2
)

// maxAdmitWait bounds how long a new connection waits for room at the cap,
// from when it is accepted; admitPoll is how often it looks again.
// maxWaiting connections wait at most at once: each is an open file and
// the kernel's buffers, but no more (none of the server's memory).
const (
	maxAdmitWait = 2 * time.Second
	admitPoll    = time.Millisecond
	maxWaiting   = 64
)

// A waiter is a connection accepted at the cap, waiting for room until a
// deadline.
type waiter struct {
	c     net.Conn
	until time.Time
}

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

// conn is one open connection. Besides net.Conn's methods it has the
// optional ones net/http looks for on a connection (CloseWrite, to send
// its answer before closing on a client still sending; ReadFrom, for
// io.Copy to a ResponseWriter), passed on to the socket.
type conn struct {
	net.Conn
	l     *limitedListener
	state atomic.Int64 // since<<whatBits | what
	index int          // in l.conns, -1 once closed or cut; guarded by l.mu

	// How long the server waited on the client in the stretches of sending
	// that have ended (nanoseconds), as of updated (the listener's clock,
	// when the last one ended), to be drained for the time since. Only the
	// connection's own goroutine writes them.
	waited, updated atomic.Int64

	// The deadlines the server asked for, and those set on the socket, as
	// deadline values (see at). The write ones are used by the
	// connection's own goroutine only, as net/http writes. The read ones
	// also by another goroutine while a read waits (net/http ends its
	// background read with a deadline in the past): setRead changes under
	// readMu only, and reading says whether a Read is on the socket, or
	// about to be (net/http reads from one goroutine at a time).
	wantWrite, setWrite deadline
	wantRead, setRead   atomic.Int64
	readMu              sync.Mutex
	reading             atomic.Bool
}

// A deadline is a time on the listener's clock, nanoseconds from its
// epoch, so that it fits an atomic word and keeps the monotonic clock; 0 is
// none, and a negative one is "in the past": before the listener started,
// as net/http's time.Unix(1, 0).
type deadline = int64

// at returns t as a deadline.
func (l *limitedListener) at(t time.Time) deadline {
	if t.IsZero() {
		return 0
	}
	if d := int64(t.Sub(l.epoch)); d != 0 {
		return d
	}
	return 1 // the epoch itself: a nanosecond later will do
}

// time returns a deadline as a time.
func (l *limitedListener) time(d deadline) time.Time {
	if d == 0 {
		return time.Time{}
	}
	return l.epoch.Add(time.Duration(d))
}

// deadlineSlack is how late a deadline may fire. The server moves the read
// deadline several times a request (the idle time-out, the headers', the
// request's, none while its handler runs, one in the past to end its
// background read) and the write deadline twice (writeTimeout from its
// headers, none after the answer): each move of a socket's deadline is an
// operation on the runtime's timer heap. Here the socket's deadline need
// only end a read or a write no later than deadlineSlack after the one
// asked for: it may fire sooner, and then the read or the write goes on
// under the one asked for. So a deadline is set on the socket only when
// the one there would end it too late (or never), and then deadlineSlack
// later than asked, so that it holds for the requests that follow: on a
// kept-alive connection, about once every readHeaderTimeout rather than
// several times a request (make bench's profile shows the rest). A
// deadline in the past, which net/http sets to end its background read,
// is set at once if a read is waiting on the socket, and else ends the
// next read before it reaches the socket.
const deadlineSlack = time.Second

// expired is the deadline recorded as set on a socket whose deadline has
// fired: in the past.
const expired deadline = -1

func newLimitedListener(ln net.Listener, max int, logger *slog.Logger) *limitedListener {
	return &limitedListener{Listener: ln, max: max, logger: logger, epoch: time.Now()}
}

// clock is the time on the listener's clock, in nanoseconds since its
// epoch; now is the same shifted to make room for a state's what.
func (l *limitedListener) clock() int64 { return int64(time.Since(l.epoch)) }
func (l *limitedListener) now() int64   { return l.clock() << whatBits }

// endStretch adds to what the server waited on c a stretch of sending from
// since to now (the listener's clock, nanoseconds).
func (c *conn) endStretch(since, now int64) {
	c.waited.Store(c.waitedBy(now, since))
	c.updated.Store(now)
}

// waitedBy returns how long the server has waited on c by now, c sending
// since since: the current stretch, and the earlier ones.
func (c *conn) waitedBy(now, since int64) int64 {
	return drained(c.waited.Load(), now-c.updated.Load()) + now - since
}

// drained returns what is left of waited after elapsed.
func drained(waited, elapsed int64) int64 {
	return max(waited-elapsed/waitDrain, 0)
}

// Accept returns the next connection let in by the policy.
func (l *limitedListener) Accept() (net.Conn, error) {
	for {
		if l.closed.Load() {
			for _, w := range l.waiting {
				w.c.Close()
			}
			l.waiting = nil
			return nil, net.ErrClosed
		}
		c, wait := l.admitWaiting()
		if c != nil {
			return c, nil
		}
		if len(l.waiting) == maxWaiting {
			time.Sleep(wait) // the kernel queues the next ones meanwhile
			continue
		}
		nc, err := l.accept(wait)
		switch {
		case err == nil:
			l.waiting = append(l.waiting, waiter{nc, time.Now().Add(maxAdmitWait)})
		case wait > 0 && isTimeout(err):
			// Time to look at the waiting ones again.
		case errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE):
			l.noFiles.Add(1)
			if l.makeRoom() {
				time.Sleep(admitPoll) // for the victim's file to be closed
			} else {
				time.Sleep(unfinishedGrace / 10) // for a connection to close, or to be cut
			}
		default:
			for _, w := range l.waiting {
				w.c.Close()
			}
			l.waiting = nil
			return nil, err
		}
	}
}

// accept accepts the next connection, for wait at most if wait is not 0.
func (l *limitedListener) accept(wait time.Duration) (net.Conn, error) {
	if d, ok := l.Listener.(interface{ SetDeadline(time.Time) error }); ok && (wait > 0 || l.deadline) {
		var t time.Time
		if wait > 0 {
			t = time.Now().Add(wait)
		}
		if err := d.SetDeadline(t); err != nil {
			return nil, err
		}
		l.deadline = wait > 0
	}
	return l.Listener.Accept()
}

// admitWaiting lets in the first waiting connection if there is room for
// it now, closing those whose wait is over. Else it returns how long to
// wait before looking again; 0 if none waits.
func (l *limitedListener) admitWaiting() (*conn, time.Duration) {
	for len(l.waiting) > 0 {
		w := l.waiting[0]
		c, wait := l.admit(w.c)
		if c == nil && time.Now().Add(wait).Before(w.until) {
			return nil, wait
		}
		l.waiting = l.waiting[:copy(l.waiting, l.waiting[1:])]
		if c != nil {
			return c, 0
		}
		w.c.Close()
		l.refused.Add(1)
		l.logAtCap()
	}
	return nil, 0
}

// admit registers c, making room at the cap by cutting a connection as the
// policy says. If none may be cut yet, it returns nil and how long to wait
// before one may be.
func (l *limitedListener) admit(c net.Conn) (*conn, time.Duration) {
	l.mu.Lock()
	var victim *conn
	for len(l.conns) >= l.max {
		v, wait := l.cutOne()
		if v == nil {
			l.mu.Unlock()
			return nil, wait
		}
		victim = v
	}
	tc := &conn{Conn: c, l: l, index: len(l.conns)}
	tc.state.Store(l.now() | sending)
	l.conns = append(l.conns, tc)
	l.mu.Unlock()
	l.closeVictim(victim)
	return tc, 0
}

// makeRoom cuts a connection as the policy says, if one may be cut, to
// free its file, and reports whether it did.
func (l *limitedListener) makeRoom() bool {
	l.mu.Lock()
	v, _ := l.cutOne()
	l.mu.Unlock()
	l.closeVictim(v)
	return v != nil
}

// Close closes the listener: Accept returns, and closes the connections
// still waiting for room.
func (l *limitedListener) Close() error {
	l.closed.Store(true)
	return l.Listener.Close()
}

// cutOne cuts the connection the policy chooses (rules 2 and 3): its state
// becomes cut, from the state it was chosen in, and it leaves the set. If
// there is none, it returns nil and how long until there may be one (rule
// 4). l.mu is held.
func (l *limitedListener) cutOne() (*conn, time.Duration) {
	for {
		v, s, wait := l.victim()
		if v == nil {
			return nil, wait
		}
		if v.state.CompareAndSwap(s, cut) {
			l.remove(v)
			return v, 0
		}
		// It moved on since it was chosen (its next request began, its
		// handler started): choose again.
	}
}

// closeVictim closes a connection the cap cut, if any: the server sees its
// read or write fail, and forgets it.
func (l *limitedListener) closeVictim(v *conn) {
	if v == nil {
		return
	}
	v.Conn.Close()
	l.cut.Add(1)
	l.logAtCap()
}

// victim returns the connection to cut (rules 2 and 3) and the state it was
// chosen in, or nil and how long until there may be one (rule 4). l.mu is
// held.
func (l *limitedListener) victim() (*conn, int64, time.Duration) {
	now := l.clock()
	var oldestIdle, mostWaited *conn
	var idleState, sendingState, waited int64
	for _, c := range l.conns {
		s := c.state.Load()
		switch s & whatMask {
		case idle:
			if oldestIdle == nil || s < idleState {
				oldestIdle, idleState = c, s
			}
		case sending:
			if w := c.waitedBy(now, s>>whatBits); mostWaited == nil || w > waited {
				mostWaited, sendingState, waited = c, s, w
			}
		}
	}
	if oldestIdle != nil {
		return oldestIdle, idleState, 0
	}
	if mostWaited == nil {
		return nil, 0, admitPoll // every one is being answered: that takes microseconds
	}
	if left := unfinishedGrace - time.Duration(waited); left > 0 {
		return nil, 0, min(left, admitPoll) // one may become idle or close meanwhile
	}
	return mostWaited, sendingState, 0
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
// or refused, and how many accepts failed for want of a file: a flood must
// not flood the log too.
func (l *limitedListener) logAtCap() {
	now := time.Now().UnixNano()
	last := l.logged.Load()
	if now-last < int64(time.Second) || !l.logged.CompareAndSwap(last, now) {
		return
	}
	l.logger.Warn("at the connection limit: closed idle connections and requests stalled outside a handler",
		"limit", l.max, "cut", l.cut.Swap(0), "refused", l.refused.Swap(0), "out_of_files", l.noFiles.Swap(0))
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
	c.reading.Store(true)
	n, err := c.read(p)
	c.reading.Store(false)
	if n > 0 {
		if s := c.state.Load(); s&whatMask == idle {
			c.state.CompareAndSwap(s, c.l.now()|sending)
		}
	}
	return n, err
}

// read reads from the socket under the read deadline asked for.
func (c *conn) read(p []byte) (int, error) {
	for {
		if c.wantRead.Load() < 0 {
			return 0, os.ErrDeadlineExceeded // without a system call
		}
		if err := c.applyReadDeadline(); err != nil {
			return 0, err
		}
		set := c.setRead.Load()
		n, err := c.Conn.Read(p)
		if n > 0 || !firedEarly(err, c.wantRead.Load(), set) {
			return n, err
		}
		c.setRead.CompareAndSwap(set, expired) // unless set again meanwhile
	}
}

// firedEarly reports whether err is the time-out of the deadline set on
// the socket, set, before the one wanted, want: then the read or the write
// goes on under the one wanted.
func firedEarly(err error, want, set deadline) bool {
	return errors.Is(err, os.ErrDeadlineExceeded) && firesSooner(want, set)
}

// firesSooner reports whether the deadline set on the socket fires before
// the one wanted (none is the latest).
func firesSooner(want, set deadline) bool {
	return want >= 0 && (want == 0 || set < want)
}

// SetReadDeadline records the deadline; Read sets it on the socket. If a
// read waits on the socket, it is set at once (see lazy): that read must
// see it, as net/http's deadline in the past that ends its background read.
func (c *conn) SetReadDeadline(t time.Time) error {
	c.wantRead.Store(c.l.at(t))
	if c.reading.Load() {
		return c.applyReadDeadline()
	}
	return nil
}

// SetWriteDeadline records the deadline; Write sets it on the socket.
func (c *conn) SetWriteDeadline(t time.Time) error {
	c.wantWrite = c.l.at(t)
	return nil
}

// SetDeadline sets both deadlines, as SetReadDeadline and SetWriteDeadline
// do.
func (c *conn) SetDeadline(t time.Time) error {
	c.SetWriteDeadline(t)
	return c.SetReadDeadline(t)
}

// applyReadDeadline sets the read deadline asked for on the socket, unless
// the one there will do (see lazy). The reading goroutine and another
// that asks for a deadline while it waits may both apply it: one at a
// time, each the one asked for last.
func (c *conn) applyReadDeadline() error {
	if _, ok := lazy(c.wantRead.Load(), c.setRead.Load()); ok {
		return nil // as on most reads: no lock
	}
	c.readMu.Lock()
	defer c.readMu.Unlock()
	set, ok := lazy(c.wantRead.Load(), c.setRead.Load())
	if ok {
		return nil
	}
	if err := c.Conn.SetReadDeadline(c.l.time(set)); err != nil {
		return err
	}
	c.setRead.Store(set)
	return nil
}

// applyWriteDeadline is applyReadDeadline for writes, which only the
// connection's goroutine makes. If sooner, the deadline on the socket may
// fire before the one asked for (the write goes on); else not.
func (c *conn) applyWriteDeadline(sooner bool) error {
	set, ok := lazy(c.wantWrite, c.setWrite)
	if ok && !sooner && firesSooner(c.wantWrite, set) {
		set, ok = later(c.wantWrite), false
	}
	if ok {
		return nil
	}
	if err := c.Conn.SetWriteDeadline(c.l.time(set)); err != nil {
		return err
	}
	c.setWrite = set
	return nil
}

// lazy returns whether the deadline set on the socket will do for the one
// wanted: it ends a read or write no later than deadlineSlack after the
// one wanted (sooner is fine: the read or write goes on), and a deadline
// in the past only for one in the past. If not, it returns the one to set:
// the one wanted, deadlineSlack later if in the future.
func lazy(want, set deadline) (deadline, bool) {
	switch {
	case want < 0:
		return want, set < 0
	case set < 0: // it has fired, or was in the past
		return later(want), false
	case want == 0:
		return set, true
	case set != 0 && set-want <= int64(deadlineSlack):
		return set, true
	default:
		return later(want), false
	}
}

// later returns a deadline wanted, in the future or none, deadlineSlack
// later.
func later(want deadline) deadline {
	if want == 0 {
		return 0
	}
	return want + min(int64(deadlineSlack), math.MaxInt64-want) // at the end of time, no later
}

// Write writes p under the write deadline asked for, going on from its
// first byte not written when the socket's deadline fires early.
func (c *conn) Write(p []byte) (int, error) {
	written := 0
	for {
		if err := c.applyWriteDeadline(true); err != nil {
			return written, err
		}
		n, err := c.Conn.Write(p[written:])
		written += n
		if !firedEarly(err, c.wantWrite, c.setWrite) {
			return written, err
		}
		c.setWrite = expired
	}
}

// ReadFrom is Write for net/http's io.Copy to a ResponseWriter: the
// socket's own ReadFrom (sendfile, splice) under the same deadline. A copy
// cannot go on after a deadline fires (it would lose what it had read and
// not yet written): the socket's fires no sooner than the one asked for.
func (c *conn) ReadFrom(r io.Reader) (int64, error) {
	if err := c.applyWriteDeadline(false); err != nil {
		return 0, err
	}
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(c.Conn, r)
}

// CloseWrite shuts down the socket's writing side, so that net/http can
// send an answer before it closes on a client that is still sending (a
// 431, a 405 with a body): without it, the client gets a reset.
func (c *conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}

// track is the server's ConnState hook: a connection whose answer has gone
// out is idle, unless the cap cut it meanwhile; a closed one leaves the
// set. (New is when admit took it; Active, when its headers are read,
// changes nothing: the handler marks the connection answered.)
func (l *limitedListener) track(nc net.Conn, state http.ConnState) {
	c := nc.(*conn) // what Accept returned
	switch state {
	case http.StateIdle:
		// What is left of the request (an answer to write, a body to
		// drain) was waiting on the client too.
		now := l.clock()
		for s := c.state.Load(); s&whatMask != cut; s = c.state.Load() {
			if c.state.CompareAndSwap(s, now<<whatBits|idle) {
				if s&whatMask == sending {
					c.endStretch(s>>whatBits, now)
				}
				break
			}
		}
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
// the client does not read) is waiting on the client again.
func (l *limitedListener) answering(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := r.Context().Value(connKey{}).(*conn) // connContext put it there
		for {
			s := c.state.Load()
			if s&whatMask == cut {
				// The cap closed it a moment ago: nobody to answer. Abort,
				// or net/http would write an empty 200 in its stead.
				panic(http.ErrAbortHandler)
			}
			if c.state.CompareAndSwap(s, answered) {
				if s&whatMask == sending {
					c.endStretch(s>>whatBits, l.clock())
				}
				break
			}
		}
		h.ServeHTTP(w, r)
		// Nothing else changes an answered connection: the cap never cuts
		// one.
		c.state.Store(l.now() | sending)
	})
}

// connContext is the server's ConnContext hook: it gives each request its
// connection.
func connContext(ctx context.Context, c net.Conn) context.Context {
	return context.WithValue(ctx, connKey{}, c)
}

// isTimeout reports whether err is a deadline's.
func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}
