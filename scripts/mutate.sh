#!/usr/bin/env bash
# make mutate: mutation testing of http.go, in a copy of the service module
# (so that the Docker tests stay out of it). Two passes:
#  1. gremlins (a maintained Go mutation tool) changes conditions, arithmetic
#     and assignments one at a time; every mutant the tests cover must be
#     killed (--threshold-efficacy 100).
#  2. The one-line changes that a review found the tests let through (the
#     server's limits, its error log, the healthcheck's bounds): each must
#     now make `go test` fail.
# Usage: scripts/mutate.sh
set -euo pipefail
cd "$(dirname "$0")/.."
gremlins=${GREMLINS:-go run github.com/go-gremlins/gremlins/cmd/gremlins@v0.6.0}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp go.mod http.go http_test.go "$work/"
cd "$work"

echo "==> gremlins unleash (conditions, arithmetic, logic, loops, assignments)"
$gremlins unleash --threshold-efficacy 100 --workers 1 --test-cpu 2 --timeout-coefficient 5 \
	--invert-logical --invert-loopctrl --invert-assignments --remove-self-assignments .

echo "==> one-line mutants from review"
cp http.go http.go.orig
lived=0
while IFS='|' read -r what sed_expr; do
	[ -n "$what" ] || continue
	cp http.go.orig http.go
	sed -i "$sed_expr" http.go
	if cmp -s http.go http.go.orig; then echo "  not applied (http.go changed?): $what"; lived=1; continue; fi
	if go test -count=1 -timeout 120s . >/dev/null 2>&1; then
		echo "  LIVED   $what"; lived=1
	else
		echo "  killed  $what"
	fi
done <<'MUTANTS'
no ReadHeaderTimeout|/ReadHeaderTimeout: readHeaderTimeout,/d
no ReadTimeout|/ReadTimeout: *readTimeout,/d
no WriteTimeout|/WriteTimeout: *writeTimeout,/d
no IdleTimeout|/IdleTimeout: *idleTimeout,/d
no ErrorLog|/ErrorLog: /d
maxHeaderBytes 1 MiB|s/maxHeaderBytes = 16 << 10/maxHeaderBytes = 1 << 20/
readHeaderTimeout an hour|s/readHeaderTimeout = 5 \* time.Second/readHeaderTimeout = time.Hour/
shutdownTimeout an hour|s/shutdownTimeout = 5 \* time.Second/shutdownTimeout = time.Hour/
healthcheckTimeout an hour|s/healthcheckTimeout = 2 \* time.Second/healthcheckTimeout = time.Hour/
no deadline on the probe's exchange|s/conn.SetDeadline(deadline)/_ = deadline/
probe accepts any status|s/code != "200"/code == ""/
no SIGTERM handling|s/os.Interrupt, syscall.SIGTERM)/os.Interrupt, syscall.SIGUSR2)/
MUTANTS
exit "$lived"
