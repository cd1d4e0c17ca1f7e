#!/usr/bin/env bash
# make mutate: mutation testing of the service (http.go, conns.go), in a copy of its module
# (so that the Docker tests stay out of it). Two passes:
#  1. gremlins (a maintained Go mutation tool) changes conditions, arithmetic
#     and assignments one at a time; every mutant the tests cover must be
#     killed (--threshold-efficacy 100).
#  2. The one-line changes that reviews found the tests let through (the
#     server's limits, its error log, the healthcheck's bounds and
#     strictness, main's exit status and streams, the signals, the shutdown
#     past its grace, the cap on connections): each must make `go test` fail.
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
	elif go test -count=1 -timeout 120s . >/dev/null 2>&1; then
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
no cap|conns.go|s/if l.conns.Len() >= l.max {/if false {/
the cap cuts the newest|conns.go|s/for e := l.conns.Front(); e != nil; e = e.Next() {/for e := l.conns.Back(); e != nil; e = e.Prev() {/
the cap cuts requests being answered|conns.go|s/c.busy = true/c.busy = false/
a used connection stays old|conns.go|s/l.conns.MoveToBack(c.elem)/_ = c.elem/
no grace for a request just begun|conns.go|s/now.Sub(victim.since) < unfinishedGrace/false/
idle connections not cut first|conns.go|s/return v.idle })/return false })/
a new connection at the cap closed at once|conns.go|s/time.Sleep(wait)/break/
no log at the cap|conns.go|s/l.logger.Warn(/_ = l.logger.Warn; l.logger.Debug(/
MUTANTS
exit "$lived"
