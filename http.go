// Command whoami is a tiny HTTP service that answers GET /whoami with the
// name of the machine it runs on. In a container that name is the container's
// hostname (by default its short ID), so behind a load balancer it tells you
// which replica answered.
//
// It grew out of the program of a multistage-build tutorial and keeps its
// behaviour, adding what a service needs in production: timeouts against slow
// or oversized clients, a graceful shutdown on SIGTERM, and a -healthcheck
// mode so that an image built FROM scratch (no shell, no curl) can have a
// Docker HEALTHCHECK.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// version is set at build time: go build -ldflags "-X main.version=v1.2.3".
var version = "dev"

// Limits of the HTTP server. They protect it from clients that are slow or
// send too much, so that one bad client cannot tie up the others.
const (
	// readHeaderTimeout cuts off clients that trickle their headers
	// (Slowloris): a well-behaved client sends a few hundred bytes at once.
	readHeaderTimeout = 5 * time.Second
	// readTimeout bounds the whole request, body included; GET has none.
	readTimeout = 10 * time.Second
	// writeTimeout bounds the time from the end of the headers to the end
	// of the response, so a client that does not read cannot hold a goroutine.
	writeTimeout = 10 * time.Second
	// idleTimeout is how long a keep-alive connection may wait for its next
	// request. It is longer than the 60 s idle timeout common in load
	// balancers, so that it is the balancer that closes idle connections,
	// never the server under a request the balancer is about to send.
	idleTimeout = 120 * time.Second
	// maxHeaderBytes is 16 KiB instead of Go's 1 MiB default: /whoami reads
	// no header, and 16 KiB still holds a browser's cookies plus the
	// forwarding headers a proxy adds. Larger requests get 431. (net/http
	// reads 4 KiB more than this before it gives up: a request line and
	// headers of over 20 KiB in all get 431 whatever they hold.)
	maxHeaderBytes = 16 << 10
	// maxRequestLine is the longest request line (method, URI, version)
	// answered: 8 KiB, as nginx's default. A longer one gets 414.
	maxRequestLine = 8 << 10
	// shutdownTimeout bounds how long in-flight requests may run after
	// SIGTERM: well under the 10 s Docker waits before it sends SIGKILL.
	shutdownTimeout = 5 * time.Second
	// healthcheckTimeout bounds the -healthcheck probe.
	healthcheckTimeout = 2 * time.Second
)

// route is the service's one path: GET (and HEAD) answers the hostname.
const route = "/whoami"

// maxAnswer bounds the bytes of every answer, headers included: the
// service echoes nothing of a request, every status has a short fixed
// body, and the hostname is at most maxHostname bytes. Being far under the
// 2 KiB that net/http buffers before it writes, no answer reaches the
// socket before its handler returns: no handler ever waits on a client
// that does not read (conns.go's policy counts on it). The fuzz test
// holds every answer to it.
const maxAnswer = 512

// maxHostname is the longest name answered: 255 bytes, a DNS name's
// longest (Linux allows 64). A longer one is taken for a failed lookup.
const maxHostname = 255

// The cap on open connections (see conns.go), from the memory the process
// may use. When GOMEMLIMIT is unset, the service finds its container's
// memory limit itself (memory.go) and sets Go's soft limit to goMemoryShare
// of it: the rest is headroom for what the Go runtime does not count (the
// binary's pages, the kernel's buffers) and for the runtime's own overshoot.
// The cap is then what is left of Go's limit (or of that share of the
// container's limit, if smaller: with GOMEMLIMIT=off too) after the
// server's own baseMemory, divided by the worst case per connection,
// connMemory, which TestConnectionMemory measures (idle, header- and
// body-trickling connections) and holds the cost to; the image's flood
// tests check the container's peak against its limit.
const (
	goMemoryShare   = 0.7      // of the container's limit, for Go's soft limit
	connMemory      = 48 << 10 // bytes per connection, the worst case measured, rounded up
	baseMemory      = 16 << 20 // the server's own, and room for the garbage collector
	defaultMaxConns = 10000    // with no memory limit
)

// Each connection is an open file, and so is each one waiting for room
// (maxWaiting, conns.go): the cap leaves fileReserve more of the process's
// open-file limit for the rest (the standard streams, the listener, the
// runtime's poller, a file os.Hostname may read), so that accept does not
// fail for want of one. If it does all the same, conns.go makes room.
const fileReserve = 16

// maxConnsFor returns the cap on connections for a memory budget in bytes.
func maxConnsFor(budget int64) int {
	return int(max((budget-baseMemory)/connMemory, 16))
}

// maxConnsForFiles returns the most connections that the open-file limit
// leaves room for.
func maxConnsForFiles(files uint64) int {
	return int(max(int64(min(files, math.MaxInt32))-fileReserve-maxWaiting, 1))
}

func main() {
	err := run(context.Background(), os.Args[1:], os.Getenv, hostnameOnce(os.Hostname), listenTCP, os.Stdout, os.Stderr)
	if err != nil {
		fmt.Fprintf(os.Stderr, "whoami: %v\n", err)
		os.Exit(1)
	}
}

// listenTCP listens on addr, host:port.
func listenTCP(addr string) (net.Listener, error) { return net.Listen("tcp", addr) }

// hostnameOnce looks the hostname up once, and returns a lookup that gives
// that answer: a container's name does not change while it runs, and each
// lookup is a system call (uname), about 4% of the throughput of a request
// (docs/performance.md). The tutorial's program looked it up at every
// request.
func hostnameOnce(lookup func() (string, error)) func() (string, error) {
	name, err := lookup()
	return func() (string, error) { return name, err }
}

// run is the whole program: it parses args, then serves until ctx is done or
// SIGTERM/SIGINT arrives, then shuts down gracefully. It returns nil on a
// clean exit. Its dependencies are arguments so that tests can drive it:
// listen opens the socket for the address the flags and PORT name (main:
// listenTCP; a test hands over one it made).
func run(ctx context.Context, args []string, getenv func(string) string,
	hostname func() (string, error), listen func(addr string) (net.Listener, error), stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("whoami", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are returned, usage is printed on -h only
	addrFlag := fs.String("addr", "", `listen address (default ":8080", or ":$PORT" when PORT is set)`)
	maxConnsFlag := fs.Int("max-conns", 0, "most connections open at once (default MAX_CONNS, else from the memory limit, else 10000)")
	healthcheck := fs.Bool("healthcheck", false, "probe the server on the configured port: exit 0 if it answers 200, 1 otherwise")
	showVersion := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(stdout, "Usage: whoami [flags]\n\nServes GET /whoami with this machine's hostname.\n\n")
			fs.SetOutput(stdout)
			fs.PrintDefaults()
			return nil
		}
		return fmt.Errorf("%v (see whoami -h)", err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (see whoami -h)", fs.Arg(0))
	}
	if *showVersion {
		fmt.Fprintf(stdout, "whoami %s\n", version)
		return nil
	}
	addr, err := listenAddr(*addrFlag, getenv)
	if err != nil {
		return err
	}
	if *healthcheck {
		return checkHealth(ctx, addr)
	}

	var maxConns *int // nil: not given
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "max-conns" {
			maxConns = maxConnsFlag
		}
	})
	var files syscall.Rlimit // Go has raised it to the hard limit already
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &files); err != nil {
		return fmt.Errorf("reading the open-file limit: %v", err)
	}
	lim, err := sizeLimits(maxConns, getenv, "/", files.Cur)
	if err != nil {
		return err
	}
	lim.goMemory = setMemoryLimit(lim)

	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	logger := slog.New(slog.NewTextHandler(stderr, nil))

	tcp, err := listen(addr)
	if err != nil {
		return err
	}
	srv, ln := newCappedServer(tcp, lim.maxConns, newHandler(hostname, logger), logger)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	logger.Info("whoami listening", "addr", ln.Addr().String(), "version", version,
		"max_conns", lim.maxConns, "max_conns_from", lim.maxConnsFrom,
		"memory_limit", lim.memory, "memory_limit_from", lim.memoryFrom,
		"go_memory_limit", lim.goMemory, "go_memory_limit_from", lim.goMemoryFrom,
		"open_file_limit", lim.files)

	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	stop() // a second signal now kills the process the default way
	logger.Info("whoami shutting down", "addr", ln.Addr().String(), "grace", shutdownTimeout)
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		// The grace is over: what is still open is a client that sends
		// nothing or reads nothing. Cut it: stopping is not a failure.
		open := ln.open()
		srv.Close()
		logger.Warn("whoami cut the connections still open after the shutdown grace", "connections", open, "grace", shutdownTimeout)
	}
	logger.Info("whoami stopped", "addr", ln.Addr().String())
	return nil
}

// limits are the figures the service sizes itself by, and where each came
// from, as the startup log line shows them.
type limits struct {
	memory       int64  // the container's memory limit in bytes; 0: none found
	memoryFrom   string // the cgroup file it was read from, or "none"
	goMemory     int64  // Go's soft memory limit (math.MaxInt64: none)
	goMemoryFrom string // "GOMEMLIMIT", "memory_limit" or "none"
	maxConns     int    // the cap on open connections
	maxConnsFrom string // "-max-conns", "MAX_CONNS", "go_memory_limit", "memory_limit", "default" or "open_file_limit"
	files        uint64 // the open-file limit
}

// sizeLimits works out the limits. Go's soft memory limit: GOMEMLIMIT if
// set (the runtime has read it), else goMemoryShare of the memory limit of
// the cgroup found under root ("/" but in tests), else none. The cap: the
// -max-conns flag if given (flagMax not nil), else MAX_CONNS if set, else
// from the smaller of Go's limit and goMemoryShare of the cgroup's, else
// defaultMaxConns; and in every case at most what the open-file limit
// files leaves room for.
func sizeLimits(flagMax *int, getenv func(string) string, root string, files uint64) (limits, error) {
	lim := limits{memoryFrom: "none", goMemory: math.MaxInt64, goMemoryFrom: "none", files: files}
	share := int64(math.MaxInt64) // goMemoryShare of the cgroup's limit
	if n, file, ok := cgroupMemoryLimit(root); ok {
		share = int64(float64(n) * goMemoryShare)
		lim.memory, lim.memoryFrom = n, file
		lim.goMemory, lim.goMemoryFrom = share, "memory_limit"
	}
	if getenv("GOMEMLIMIT") != "" {
		lim.goMemory, lim.goMemoryFrom = debug.SetMemoryLimit(-1), "GOMEMLIMIT"
	}
	switch s := getenv("MAX_CONNS"); {
	case flagMax != nil && *flagMax < 1:
		return lim, fmt.Errorf("invalid -max-conns %d: must be a positive number", *flagMax)
	case flagMax != nil:
		lim.maxConns, lim.maxConnsFrom = *flagMax, "-max-conns"
	case s != "":
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			return lim, fmt.Errorf("invalid MAX_CONNS %q: must be a positive number", s)
		}
		lim.maxConns, lim.maxConnsFrom = n, "MAX_CONNS"
	case lim.goMemory == math.MaxInt64 && share == math.MaxInt64:
		lim.maxConns, lim.maxConnsFrom = defaultMaxConns, "default"
	case lim.goMemory <= share:
		lim.maxConns, lim.maxConnsFrom = maxConnsFor(lim.goMemory), "go_memory_limit"
	default: // GOMEMLIMIT above the share, or off
		lim.maxConns, lim.maxConnsFrom = maxConnsFor(share), "memory_limit"
	}
	if n := maxConnsForFiles(files); lim.maxConns > n {
		lim.maxConns, lim.maxConnsFrom = n, "open_file_limit"
	}
	return lim, nil
}

// setMemoryLimit sets Go's soft memory limit to lim's, unless GOMEMLIMIT
// set it already, and returns the limit the runtime now has.
func setMemoryLimit(lim limits) int64 {
	if lim.goMemoryFrom == "memory_limit" {
		debug.SetMemoryLimit(lim.goMemory)
	}
	return debug.SetMemoryLimit(-1)
}

// listenAddr picks the address to listen on: the -addr flag if given, else
// ":$PORT" if PORT is set, else ":8080". PORT, not WHOAMI_PORT: Kubernetes
// sets WHOAMI_PORT=tcp://... in every pod when a Service is named whoami.
func listenAddr(flagAddr string, getenv func(string) string) (string, error) {
	if flagAddr != "" {
		_, port, err := net.SplitHostPort(flagAddr)
		if err != nil {
			return "", fmt.Errorf("invalid -addr %q: want host:port, such as :8080 or 127.0.0.1:9000", flagAddr)
		}
		if _, err := strconv.ParseUint(port, 10, 16); err != nil {
			return "", fmt.Errorf("invalid -addr %q: port must be a number from 0 to 65535", flagAddr)
		}
		return flagAddr, nil
	}
	if port := getenv("PORT"); port != "" {
		if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
			return "", fmt.Errorf("invalid PORT %q: must be a number from 1 to 65535", port)
		}
		return ":" + port, nil
	}
	return ":8080", nil
}

// newServer returns the HTTP server with the limits above.
func newServer(h http.Handler, logger *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
}

// newCappedServer returns the server with the limits above, serving h on
// ln with the cap on connections; serve it on the listener it returns.
func newCappedServer(ln net.Listener, maxConns int, h http.Handler, logger *slog.Logger) (*http.Server, *limitedListener) {
	capped := newLimitedListener(ln, maxConns, logger)
	srv := newServer(capped.answering(h), logger)
	srv.ConnState, srv.ConnContext = capped.track, connContext
	return srv, capped
}

// newHandler returns the service's one route, GET (and HEAD) /whoami, and
// what every other request gets: a request line over maxRequestLine 414,
// another path 404, another method 405 with Allow. Each has a short fixed
// body, and none echoes the request. It routes by itself rather than with
// http.ServeMux, which redirects a path that is not clean (/x/../y) to the
// cleaned one, repeating the path in Location and in an HTML body: an
// answer several times the size of the request.
func newHandler(hostname func() (string, error), logger *slog.Logger) http.Handler {
	whoami := handleWhoami(hostname, logger)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength != 0 {
			// No route reads a body: answer at once, then close, rather
			// than wait for the body to arrive and drain it (net/http drains
			// one of up to 256 KiB before it answers, and a client that
			// sends it slowly would hold the answer, and the connection).
			w.Header()["Connection"] = closeConn
		}
		switch {
		case len(r.Method)+len(r.RequestURI)+len(r.Proto)+2 > maxRequestLine:
			fail(w, http.StatusRequestURITooLong)
		case r.RequestURI == "*": // OPTIONS * is net/http's; PRI * is HTTP/2's preface
			fail(w, http.StatusBadRequest)
		case r.URL.Path != route:
			http.NotFound(w, r)
		case r.Method != http.MethodGet && r.Method != http.MethodHead:
			w.Header()["Allow"] = allowed
			fail(w, http.StatusMethodNotAllowed)
		default:
			whoami.ServeHTTP(w, r)
		}
	})
}

// Header values shared by every response. Assigned to the header map under
// their canonical keys, they cost no allocation per request, where Set
// would make a new slice each time. Sharing is safe: net/http never changes
// a value in place, and an Add would copy (each slice is full).
var (
	textPlain = []string{"text/plain; charset=utf-8"}
	noStore   = []string{"no-store"}
	allowed   = []string{"GET, HEAD"}
	closeConn = []string{"close"}
)

// handleWhoami answers with the hostname and a newline, or "unknown" if the
// lookup fails, as the original tutorial program did.
func handleWhoami(hostname func() (string, error), logger *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name, err := hostname()
		if err == nil && len(name) > maxHostname {
			err = errHostnameTooLong
		}
		if err != nil {
			logger.Error("hostname lookup failed", "err", err)
			name = "unknown"
		}
		h := w.Header()
		h["Content-Type"] = textPlain
		// Each replica answers differently: a cache must never merge them.
		h["Cache-Control"] = noStore
		// No X-Content-Type-Options: nosniff. It guards an answer whose
		// body a client can shape from being run as a script or a page;
		// this body is the operator's hostname, never anything from the
		// request, and its type is stated. Each header costs about 2% of
		// the throughput (docs/performance.md).
		// Two writes into the response's buffer rather than name+"\n",
		// which would copy the name into a new string.
		io.WriteString(w, name)
		io.WriteString(w, "\n")
	})
}

// fail answers code with its status text as the body, as http.Error does.
func fail(w http.ResponseWriter, code int) {
	http.Error(w, http.StatusText(code), code)
}

var errHostnameTooLong = errors.New("hostname longer than 255 bytes")

// checkHealth makes one GET to the server's own /whoami on addr's port and
// returns nil if it answers 200. It lets a FROM scratch image, which has no
// shell and no curl, have a HEALTHCHECK: the binary checks itself.
//
// It speaks HTTP/1.1 over a plain connection and reads only the status
// line, rather than use net/http's client: that would link the client and
// its HTTP/2 transport into the binary for this one request (what they
// weigh: docs/performance.md, "What the binary weighs").
func checkHealth(ctx context.Context, addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if port == "0" {
		return errors.New("healthcheck: needs a fixed port, not 0")
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1" // the server listens on all interfaces
	}
	target := net.JoinHostPort(host, port)
	url := "http://" + target + route
	ctx, cancel := context.WithTimeout(ctx, healthcheckTimeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", target)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	defer conn.Close()
	deadline, _ := ctx.Deadline()
	conn.SetDeadline(deadline) // the whole exchange, not only the dial
	if _, err := io.WriteString(conn, "GET /whoami HTTP/1.1\r\nHost: "+target+"\r\nConnection: close\r\n\r\n"); err != nil {
		return fmt.Errorf("healthcheck: GET %s: %w", url, err)
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return fmt.Errorf("healthcheck: GET %s: no answer: %w", url, err)
	}
	// The status line: HTTP/1.1 200 OK
	proto, status, _ := strings.Cut(strings.TrimRight(line, "\r\n"), " ")
	if len(proto) != len("HTTP/1.1") || !strings.HasPrefix(proto, "HTTP/1.") {
		return fmt.Errorf("healthcheck: GET %s: not an HTTP/1 answer: %q", url, line)
	}
	if code, _, _ := strings.Cut(status, " "); code != "200" {
		return fmt.Errorf("healthcheck: GET %s: %s", url, status)
	}
	return nil
}
