package main

import (
	"container/list"
	"context"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// limitedListener caps the number of open connections, so that the memory
// they take stays bounded whatever the clients do. At the cap, a new
// connection takes the place of one that does nothing useful: the oldest
// idle one (keep-alive, between requests), else the oldest one that has
// been sending a request's headers for over unfinishedGrace (an ordinary
// client sends them at once). A connection whose request is being
// answered, or that has only just started its request, is never cut: the
// new connection waits for room, and is closed if none comes. nginx does
// much the same when it runs out of worker connections: it closes idle
// keep-alive connections, and drops the new one when there is none.
type limitedListener struct {
	net.Listener
	max    int
	logger *slog.Logger

	mu    sync.Mutex
	conns list.List // of *conn, the oldest idle or unfinished first

	cut, refused atomic.Int64 // connections closed at the cap, since the last log line
	logged       atomic.Int64 // when the last line was logged (UnixNano)
}

// unfinishedGrace is how long a connection may take to send a request's
// headers before the cap may cut it: long enough for a client on a slow
// network, short next to the 5 s header timeout.
const unfinishedGrace = 500 * time.Millisecond

// conn is one open connection and its place in the list. Its fields are
// guarded by l.mu.
type conn struct {
	net.Conn
	l     *limitedListener
	elem  *list.Element // nil once closed or cut
	since time.Time     // when it was accepted or began its last request
	idle  bool          // between requests
	busy  bool          // a request is in a handler
}

func newLimitedListener(ln net.Listener, max int, logger *slog.Logger) *limitedListener {
	return &limitedListener{Listener: ln, max: max, logger: logger}
}

// Accept returns the next connection, making room for it if the cap is
// reached. When no connection may be cut yet, it waits until one may (the
// kernel queues the next clients meanwhile), for maxAdmitWait at most, and
// then closes the new connection.
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

// maxAdmitWait bounds how long a new connection waits for room at the cap.
const maxAdmitWait = 2 * time.Second

// admit registers c, making room at the cap by cutting a connection that
// does nothing useful. If there is none yet, it returns nil and how long
// to wait before one may be.
func (l *limitedListener) admit(c net.Conn) (*conn, time.Duration) {
	now := time.Now()
	l.mu.Lock()
	var victim *conn
	if l.conns.Len() >= l.max {
		if victim = l.oldest(func(v *conn) bool { return v.idle }); victim == nil {
			victim = l.oldest(func(v *conn) bool { return !v.busy })
			if victim == nil || now.Sub(victim.since) < unfinishedGrace {
				wait := 10 * time.Millisecond // all busy: they end in microseconds
				if victim != nil {
					wait = unfinishedGrace - now.Sub(victim.since)
				}
				l.mu.Unlock()
				return nil, wait
			}
		}
		l.conns.Remove(victim.elem)
		victim.elem = nil
	}
	tc := &conn{Conn: c, l: l, since: now}
	tc.elem = l.conns.PushBack(tc)
	l.mu.Unlock()
	if victim != nil {
		victim.Conn.Close() // the server sees the read fail, and forgets it
		l.cut.Add(1)
		l.logAtCap()
	}
	return tc, 0
}

// oldest returns the first connection of the list (the one whose state
// changed longest ago) that ok accepts, or nil. l.mu is held.
func (l *limitedListener) oldest(ok func(*conn) bool) *conn {
	for e := l.conns.Front(); e != nil; e = e.Next() {
		if c := e.Value.(*conn); ok(c) {
			return c
		}
	}
	return nil
}

// logAtCap logs, at most once a second, how many connections the cap cut
// or refused: a flood must not flood the log too.
func (l *limitedListener) logAtCap() {
	now := time.Now().UnixNano()
	last := l.logged.Load()
	if now-last < int64(time.Second) || !l.logged.CompareAndSwap(last, now) {
		return
	}
	l.logger.Warn("at the connection limit: closed the oldest idle or unfinished connections",
		"limit", l.max, "cut", l.cut.Swap(0), "refused", l.refused.Swap(0))
}

// open returns how many connections are open.
func (l *limitedListener) open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.conns.Len()
}

// track is the server's ConnState hook. A connection that begins a request
// (its headers read) moves to the back of the list, the newest: the list is
// in the order the connections were last used, which the clients see (the
// server marks a connection idle only after it has sent the answer). A
// closed one leaves the list.
func (l *limitedListener) track(nc net.Conn, state http.ConnState) {
	c, ok := nc.(*conn)
	if !ok {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if c.elem == nil {
		return // already cut
	}
	switch state {
	case http.StateActive:
		c.idle, c.since = false, time.Now()
		l.conns.MoveToBack(c.elem)
	case http.StateIdle:
		c.idle, c.busy = true, false
	case http.StateClosed, http.StateHijacked:
		l.conns.Remove(c.elem)
		c.elem = nil
	}
}

// connKey is the request context's key for its connection.
type connKey struct{}

// busy wraps the server's handler: once a request's headers are read and
// it is being answered, its connection cannot be cut.
func (l *limitedListener) busy(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if c, ok := r.Context().Value(connKey{}).(*conn); ok {
			l.mu.Lock()
			c.busy = true
			l.mu.Unlock()
		}
		h.ServeHTTP(w, r)
	})
}

// connContext is the server's ConnContext hook: it gives each request its
// connection.
func connContext(ctx context.Context, c net.Conn) context.Context {
	return context.WithValue(ctx, connKey{}, c)
}
