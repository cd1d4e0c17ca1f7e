#!/usr/bin/env bash
# make mutate: mutation testing of the service (http.go, conns.go, memory.go), in a copy of its module
# (so that the Docker tests stay out of it). Two passes:
#  1. gremlins (a maintained Go mutation tool) changes conditions, arithmetic
#     and assignments one at a time; every mutant the tests cover must be
#     killed (--threshold-efficacy 100).
#  2. The one-line changes that reviews found the tests let through (the
#     server's limits, its error log, the healthcheck's bounds and
#     strictness, main's exit status and streams, the signals, the shutdown
#     past its grace, the cap on connections), every statement and state
#     change of conns.go (each case of the state hook, each field
#     assignment, each counter), and what gremlins cannot reach: the
#     documented values, the cases of switch statements (its coverage maps
#     them to no block), the answers' bounds, the admission wait, the
#     deadlines, the races, the open-file limit, the cgroup reading and Go's
#     limit: each must make `go test` fail.
# Usage: scripts/mutate.sh
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=../provision/lib.sh
. provision/lib.sh
load_facts .
gremlins=${GREMLINS:-go run github.com/go-gremlins/gremlins/cmd/gremlins@$GREMLINS_VERSION}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp go.mod ./*.go "$work/"
# facts_test.go checks the repository's files against .env, not the
# service: it needs the rest of the repository.
rm "$work/facts_test.go"
cd "$work"

echo "==> gremlins unleash (conditions, arithmetic, logic, loops, assignments)"
$gremlins unleash --threshold-efficacy 100 --workers 1 --test-cpu 2 --timeout-coefficient 5 \
	--invert-logical --invert-loopctrl --invert-assignments --remove-self-assignments .

echo "==> one-line mutants from reviews"
lived=0
while IFS='|' read -r what file sed_expr; do
	[ -n "$what" ] || continue
	cp "$file" "$file.orig"
	sed -i "$sed_expr" "$file"
	if cmp -s "$file" "$file.orig"; then
		echo "  not applied ($file changed?): $what"
		lived=1
	elif go test -count=1 -failfast -timeout 120s . >/dev/null 2>&1; then
		echo "  LIVED   $what"
		lived=1
	else
		echo "  killed  $what"
	fi
	mv "$file.orig" "$file"
done <<'MUTANTS'
no ReadHeaderTimeout|http.go|/ReadHeaderTimeout: readHeaderTimeout,/d
no ReadTimeout|http.go|/ReadTimeout: *readTimeout,/d
no WriteTimeout|http.go|/WriteTimeout: *writeTimeout,/d
no IdleTimeout|http.go|/IdleTimeout: *idleTimeout,/d
no ErrorLog|http.go|/ErrorLog: /d
maxHeaderBytes 1 MiB|http.go|s/maxHeaderBytes = 16 << 10/maxHeaderBytes = 1 << 20/
readHeaderTimeout an hour|http.go|s/readHeaderTimeout = 5 \* time.Second/readHeaderTimeout = time.Hour/
shutdownTimeout an hour|http.go|s/shutdownTimeout = 5 \* time.Second/shutdownTimeout = time.Hour/
healthcheckTimeout an hour|http.go|s/healthcheckTimeout = 2 \* time.Second/healthcheckTimeout = time.Hour/
no deadline on the probe's exchange|http.go|s/conn.SetDeadline(deadline)/_ = deadline/
probe accepts any status|http.go|s/code != "200"/code == ""/
no SIGTERM handling|http.go|s/os.Interrupt, syscall.SIGTERM)/os.Interrupt, syscall.SIGUSR2)/
main exits 0 on an error|http.go|s/os.Exit(1)/os.Exit(0)/
main writes its error on stdout|http.go|s/fmt.Fprintf(os.Stderr, "whoami: %v\\n", err)/fmt.Fprintf(os.Stdout, "whoami: %v\\n", err)/
no SIGINT handling|http.go|s/signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)/signal.NotifyContext(ctx, syscall.SIGTERM)/
a second signal waits for the grace|http.go|s/^\tstop() \/\/ a second signal.*$/\t_ = stop/
shutdown past the grace fails|http.go|s/^\t\tsrv.Close()$/\t\treturn fmt.Errorf("shutdown: %w", err)/
shutdown past the grace leaves the connections open|http.go|s/^\t\tsrv.Close()$/\t\t_ = srv/
the cut is no warning|http.go|s/logger.Warn("whoami cut/logger.Info("whoami cut/
the probe takes any 2xx|http.go|s/code != "200"/code[0] != '2'/
the probe takes any HTTP version|http.go|s/len(proto) != len("HTTP\/1.1") || //
the probe always asks 127.0.0.1|http.go|s/if ip := net.ParseIP(host); host == "" || ip != nil \&\& ip.IsUnspecified() {/if true {/
-h prints on stderr|http.go|s/fmt.Fprintf(stdout, "Usage: whoami/fmt.Fprintf(stderr, "Usage: whoami/
PORT 0 accepted|http.go|s/err != nil || n == 0 {/err != nil {/
PORT up to 131071|http.go|s/n, err := strconv.ParseUint(port, 10, 16)/n, err := strconv.ParseUint(port, 10, 17)/
-addr port up to 131071|http.go|s/if _, err := strconv.ParseUint(port, 10, 16)/if _, err := strconv.ParseUint(port, 10, 17)/
flag errors without the hint|http.go|s/return fmt.Errorf("%v (see whoami -h)", err)/return err/
MAX_CONNS ignored|http.go|s/getenv("MAX_CONNS")/getenv("MAX_CONN")/
the cap from a smaller connection|http.go|s/connMemory      = 48 << 10/connMemory      = 16 << 10/
GOMEMLIMIT ignored|http.go|s/if getenv("GOMEMLIMIT") != "" {/if false {/
Go's share the whole limit|http.go|s/goMemoryShare   = 0.7 /goMemoryShare   = 1.0 /
-max-conns 0 accepted|http.go|s/case flagMax != nil \&\& \*flagMax < 1:/case false:/
cgroup v1 not read|memory.go|s/v1, found1 = p, true/_ = p/
cgroup v2 not read|memory.go|s/v2, found2 = p, true/_ = p/
the last limit on the path, not the smallest|memory.go|s/found \&\& (!ok || n < limit)/found/
v1's "no limit" taken as a limit|memory.go|s/n > 0 \&\& n < noLimit/n > 0/
no cap|conns.go|s/for len(l.conns) >= l.max {/for false {/
StateIdle leaves it as it was|conns.go|s/c.state.CompareAndSwap(s, now<<whatBits|idle)/c.state.CompareAndSwap(s, s)/
a closed connection stays in the set|conns.go|/^\t\t\tl.remove(c)$/d
a byte of the next request leaves it idle|conns.go|s/c.state.CompareAndSwap(s, c.l.now()|sending)/_ = s/
the handler does not mark it answered|conns.go|s/if c.state.CompareAndSwap(s, answered) {/if true {/
a handler starts on a cut connection|conns.go|s/panic(http.ErrAbortHandler)/break/
the handler done, still answered|conns.go|/^\t\tc.state.Store(l.now() | sending)$/d
a new connection has no time|conns.go|/^\ttc.state.Store(l.now() | sending)$/d
a new connection out of the set|conns.go|/^\tl.conns = append(l.conns, tc)$/d
a cut connection stays in the set|conns.go|/^\t\t\tl.remove(v)$/d
the victim not closed|conns.go|s/^\tv.Conn.Close()$/\t_ = v/
cuts not counted|conns.go|/^\tl.cut.Add(1)$/d
refusals not counted|conns.go|/^\t\tl.refused.Add(1)$/d
a refused connection left open|conns.go|/^\t\tw.c.Close()$/d
a removed connection keeps its index|conns.go|/^\tc.index = -1$/d
the moved connection keeps its old index|conns.go|s/l.conns\[c.index\], last.index = last, c.index/l.conns[c.index] = last/
a removed slot still referenced|conns.go|/^\tl.conns\[len(l.conns)-1\] = nil$/d
the set not shortened|conns.go|/^\tl.conns = l.conns\[:len(l.conns)-1\]$/d
answered connections are candidates|conns.go|s/\tcase sending:/\tcase sending, answered:/
idle connections not cut first|conns.go|s/if oldestIdle != nil {/if false {/
the most recently idle cut first|conns.go|s/s < idleState/s > idleState/
the sender waited on least cut first|conns.go|s/mostWaited == nil || w > waited {/mostWaited == nil || w < waited {/
no grace|conns.go|s/; left > 0 {/; false {/
a new connection at the cap closed at once|conns.go|s/if c == nil \&\& time.Now().Add(wait).Before(w.until) {/if false {/
no log at the cap|conns.go|s/l.logger.Warn(/_ = l.logger.Warn; l.logger.Debug(/
the log's counts never reset|conns.go|s/l.cut.Swap(0), "refused", l.refused.Swap(0)/l.cut.Load(), "refused", l.refused.Load()/
the log's clock never advanced|conns.go|s/!l.logged.CompareAndSwap(last, now)/false/
write deadlines ignored|conns.go|/^\tc.wantWrite = c.l.at(t)$/d
the write deadline never set|conns.go|s/if err := c.Conn.SetWriteDeadline(c.l.time(set)); err != nil {/if err := error(nil); err != nil {/
the deadlines set without slack|conns.go|s/return want + min(int64(deadlineSlack), math.MaxInt64-want)/return want/
the deadline set forgotten|conns.go|/^\tc.setWrite = set$/d
the read deadline never set|conns.go|s/if err := c.Conn.SetReadDeadline(c.l.time(set)); err != nil {/if err := error(nil); err != nil {/
a deadline asked for while a read waits not set at once|conns.go|s/^\tif c.reading.Load() {$/\tif false {/
every deadline asked for set at once|conns.go|s/^\tif c.reading.Load() {$/\tif true {/
a read under a deadline in the past reaches the socket|conns.go|s/if c.wantRead.Load() < 0 {/if false {/
a read never marked waiting|conns.go|/^\tc.reading.Store(true)$/d
a deadline that fired early ends the read or write|conns.go|s/return errors.Is(err, os.ErrDeadlineExceeded) \&\& firesSooner(want, set)/return false/
a write that fired early starts again from its first byte|conns.go|s/c.Conn.Write(p\[written:\])/c.Conn.Write(p)/
a read's deadline that fired early kept|conns.go|/^\t\tc.setRead.CompareAndSwap(set, expired)/d
a write's deadline that fired early kept|conns.go|/^\t\tc.setWrite = expired$/d
a deadline at the end of time overflowing|conns.go|s/return want + min(int64(deadlineSlack), math.MaxInt64-want)/return want + int64(deadlineSlack)/
a deadline that would fire too late kept|conns.go|s/\tcase set != 0 \&\& set-want <= int64(deadlineSlack):/\tcase set != 0:/
a deadline in the past kept for a later one|conns.go|s/\tcase set < 0: \/\/ it has fired, or was in the past/\tcase false:/
io.Copy to a ResponseWriter under no deadline|conns.go|/^func (c \*conn) ReadFrom/,/^}/s/c.applyWriteDeadline(false)/error(nil)/
a copy under a deadline that may fire early|conns.go|/^func (c \*conn) ReadFrom/,/^}/s/c.applyWriteDeadline(false)/c.applyWriteDeadline(true)/
no CloseWrite for net/http|conns.go|s/^func (c \*conn) CloseWrite() error {/func (c *conn) closeWrite() error {/
the cap cuts the state it sees, not the one it chose|conns.go|s/if v.state.CompareAndSwap(s, cut) {/if v.state.CompareAndSwap(v.state.Load(), cut) {/
the idle hook stores over a cut|conns.go|s/for s := c.state.Load(); s\&whatMask != cut; s = c.state.Load() {/for s := c.state.Load(); ; s = c.state.Load() {/
a waiting connection never looks again|conns.go|s/return nil, 0, admitPoll \/\/ every one is being answered/return nil, 0, maxAdmitWait \/\/ every one is being answered/
one connection waits at a time|conns.go|s/maxWaiting   = 64/maxWaiting   = 1/
out of files, no room made|conns.go|s/if l.makeRoom() {/if false {/
the grace doubled|conns.go|s/unfinishedGrace = 100 \* time.Millisecond/unfinishedGrace = 200 * time.Millisecond/
the admission wait doubled|conns.go|s/maxAdmitWait = 2 \* time.Second/maxAdmitWait = 4 * time.Second/
the deadlines' slack doubled|conns.go|s/deadlineSlack = time.Second/deadlineSlack = 2 * time.Second/
no 414|http.go|s/case len(r.Method)+len(r.RequestURI)+len(r.Proto)+2 > maxRequestLine:/case false:/
a hostname of any length|http.go|s/if err == nil \&\& len(name) > maxHostname {/if false {/
answers of up to 64 KiB allowed|http.go|s/const maxAnswer = 512/const maxAnswer = 65536/
the cap ignores the open-file limit|http.go|s/if n := maxConnsForFiles(files); lim.maxConns > n {/if n := maxConnsForFiles(files); false \&\& lim.maxConns > n {/
no files kept for the rest|http.go|s/-fileReserve-maxWaiting, 1))/-maxWaiting, 1))/
GOMEMLIMIT=off sized by default|http.go|s/case lim.goMemory == math.MaxInt64 \&\& share == math.MaxInt64:/case lim.goMemory == math.MaxInt64:/
Go's share 80%|http.go|s/goMemoryShare   = 0.7 /goMemoryShare   = 0.8 /
Go's limit not set from the cgroup|http.go|s/^\t\tdebug.SetMemoryLimit(lim.goMemory)$/\t\t_ = lim.goMemory/
the hostname looked up each time|http.go|s/return func() (string, error) { return name, err }/return lookup/
a 32-bit kernel's "no limit" taken as a limit|memory.go|s/const noLimit = math.MaxInt32 \* 4096/const noLimit = 1 << 62/
mountinfo's mount point ignored|memory.go|s/return unescape(f\[4\]), dir/return "\/sys\/fs\/cgroup\/memory", dir/
the mount's top ignored|memory.go|s/top, dir := unescape(f\[3\]), "\/"/top, dir := "\/", "\/"/
a controller mounted with others missed|memory.go|s/slices.Contains(strings.Split(options, ","), "memory")/options == "rw,memory"/
a handler on a cut connection returns, and net/http answers|conns.go|s/panic(http.ErrAbortHandler)/return/
the waits of earlier requests forgotten|conns.go|s/c.waited.Store(c.waitedBy(now, since))/c.waited.Store(now - since)/
earlier waits never drained|conns.go|s/return max(waited-elapsed\/waitDrain, 0)/return waited/
earlier waits drained as fast as time passes|conns.go|s/return max(waited-elapsed\/waitDrain, 0)/return max(waited-elapsed, 0)/
the cap ranks senders by their stretch alone|conns.go|s/if w := c.waitedBy(now, s>>whatBits); /if w := now - s>>whatBits; /
a closed listener unseen while connections wait|conns.go|s/\t\tif l.closed.Load() {/\t\tif false \&\& l.closed.Load() {/
a body waited for before the answer|http.go|s/\t\t\tw.Header()\["Connection"\] = closeConn/\t\t\t_ = closeConn/
MUTANTS
exit "$lived"
