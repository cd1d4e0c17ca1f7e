#!/usr/bin/env bash
# make bench: measures the images, the builds, the container's life cycle and
# the service under load on this machine, and prints one Markdown report. It
# writes it to docs/benchmarks.md and between the bench markers of README.md.
#
# Every figure is a median of several runs, with the spread (min-max): these
# machines are shared and noisy. Nothing here is a pass/fail test.
#
# Note: the cold-build figure empties BuildKit's cache (docker builder prune),
# so the next build of any project on this engine starts cold too.
#
# Usage: scripts/bench.sh GOLANG_IMAGE SINGLE_IMAGE MULTI_IMAGE BINARY
# Tunables: RUNS (default 5), COLD_RUNS (3), LOAD_RUNS (3), DURATION (5 s),
# RESTART_RUNS (3).
set -euo pipefail
cd "$(dirname "$0")/.."
golang=${1:?usage: bench.sh GOLANG_IMAGE SINGLE_IMAGE MULTI_IMAGE BINARY}
single=${2:?} multi=${3:?} binary=${4:?}
runs=${RUNS:-5} cold_runs=${COLD_RUNS:-3} load_runs=${LOAD_RUNS:-3} duration=${DURATION:-5}
restart_runs=${RESTART_RUNS:-3}
report=docs/benchmarks.md
command -v wrk >/dev/null || { echo "whoami: make bench needs wrk: apt-get install wrk (or scripts/provision.sh as root)" >&2; exit 1; }
scratch=whoami-bench-$$:tmp
work=$(mktemp -d)
pids=()
# The balancer's figures come from a Compose project of the bench's own, on
# ports Docker picks, removed at the end.
export COMPOSE_PROJECT_NAME=whoami-bench-$$ WHOAMI_IMAGE=$multi LB_PORT=127.0.0.1:0 LB_STATS_PORT=0
cleanup() {
	docker compose down --remove-orphans >/dev/null 2>&1 || true
	for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
	docker rm -f $(docker ps -aq --filter "label=whoami-bench=$$") >/dev/null 2>&1 || true
	docker image rm "$scratch" >/dev/null 2>&1 || true
	rm -rf "$work"
}
trap cleanup EXIT

say() { printf '  %s\n' "$*" >&2; } # progress, on stderr
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.3f", b - a }'; }
# summary prints the median, min, max and count of the numbers in file $1.
summary() {
	sort -g "$1" | awk '{ v[NR] = $1 } END {
		print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2), v[1], v[NR], NR }'
}
# row LABEL UNIT FORMAT FILE prints a table row: label, median, spread, runs.
row() {
	summary "$4" | awk -v l="$1" -v u="$2" -v f="$3" \
		'BEGIN { if (u != "") u = " " u } { printf "| %s | " f "%s | " f "-" f "%s | %d |\n", l, $1, u, $2, $3, u, $4 }'
}
# wait_200 URL polls until URL answers 200, and gives up after 30 s.
wait_200() {
	local end=$((SECONDS + 30))
	until [ "$(curl -s -o /dev/null -w '%{http_code}' "$1")" = 200 ]; do
		[ "$SECONDS" -lt "$end" ] || { echo "whoami: $1 did not answer 200 within 30 s" >&2; exit 1; }
	done
}
# wrk_row TARGET CONNECTIONS URL runs wrk LOAD_RUNS times and prints a table
# row: target, connections, requests/s (median and spread), p50 and p99.
wrk_row() {
	say "wrk $1, $2 connections ($load_runs runs of ${duration}s)"
	: >"$work/rps"; : >"$work/p50"; : >"$work/p99"
	for _ in $(seq "$load_runs"); do
		wrk -t "$(($2 < 2 ? 1 : 2))" -c "$2" -d "${duration}s" --latency "$3" >"$work/wrk"
		awk '/^Requests\/sec:/ { print $2 }' "$work/wrk" >>"$work/rps"
		# wrk prints latencies as 1.23ms, 456.00us or 1.02s: convert to ms.
		awk '$1 == "50%" || $1 == "99%" { v = $2; u = v; sub(/[0-9.]+/, "", u); sub(/[a-z]+$/, "", v)
			printf "%.3f\n", v * (u == "us" ? 0.001 : u == "s" ? 1000 : 1) > (FILENAME "." substr($1, 1, 2)) }' "$work/wrk"
		cat "$work/wrk.50" >>"$work/p50"; cat "$work/wrk.99" >>"$work/p99"
		grep -q 'Non-2xx\|Socket errors' "$work/wrk" && say "errors: $(grep 'Non-2xx\|Socket errors' "$work/wrk")"
	done
	read -r rps lo hi _ < <(summary "$work/rps")
	read -r p50 _ < <(summary "$work/p50")
	read -r p99 _ < <(summary "$work/p99")
	printf '| %s | %d | %.0f | %.0f-%.0f | %.2f ms | %.2f ms |\n' "$1" "$2" "$rps" "$lo" "$hi" "$p50" "$p99"
}
size_row() { awk -v n="$1" -v b="$2" 'BEGIN { printf "| %s | %d | %.2f |\n", n, b, b / 1e6 }'; }
rss_mb() { docker top "$1" -o pid,rss | awk 'NR > 1 { printf "%.1f", $2 / 1024 }'; }

# Build times, in a copy of the build context so the edits stay out of the repo.
cp go.mod http.go Dockerfile .dockerignore "$work/"
say "cold multistage build, empty build cache ($cold_runs runs)"
for _ in $(seq "$cold_runs"); do
	docker builder prune -af >/dev/null
	t=$(now); docker build -q --no-cache -t "$scratch" "$work" >/dev/null; since "$t"; echo
done >"$work/cold"
say "rebuild after a one-line edit of http.go ($runs runs)"
for i in $(seq "$runs"); do
	echo "// bench edit $i" >>"$work/http.go"
	t=$(now); docker build -q -t "$scratch" "$work" >/dev/null; since "$t"; echo
done >"$work/warm"

say "binary size by build flags"
binary_size() { CGO_ENABLED=0 go build -buildvcs=false "$@" -o "$work/whoami" . && stat -c %s "$work/whoami"; }
size_default=$(binary_size)
size_stripped=$(binary_size -trimpath -ldflags "-s -w")
size_omit_h2=$(binary_size -trimpath -ldflags "-s -w" -tags nethttpomithttp2)

say "start-up and docker stop ($runs runs)"
for _ in $(seq "$runs"); do
	t=$(now)
	id=$(docker run -d --label "whoami-bench=$$" -p 127.0.0.1::8080 "$multi")
	wait_200 "http://$(docker port "$id" 8080/tcp | head -1)/whoami"
	since "$t" >>"$work/start"; echo >>"$work/start"
	t=$(now); docker stop "$id" >/dev/null; since "$t" >>"$work/stop"; echo >>"$work/stop"
	docker inspect -f '{{.State.ExitCode}}' "$id" >>"$work/exit"
	docker rm "$id" >/dev/null
done
exits=$(sort -u "$work/exit" | paste -sd, -)

# Load: wrk with keep-alive against the binary on the host and the container
# through its published port (docker-proxy), on the same 2 cores as wrk.
"$binary" -addr 127.0.0.1:0 2>"$work/host.log" &
pids+=($!)
until grep -q 'whoami listening' "$work/host.log"; do
	kill -0 "${pids[0]}" 2>/dev/null || { cat "$work/host.log" >&2; exit 1; } # it exited
	sleep 0.05
done
host_url="http://$(sed -n 's/.* addr=\([^ ]*\).*/\1/p' "$work/host.log" | head -1)/whoami"
wait_200 "$host_url"
cid=$(docker run -d --label "whoami-bench=$$" -p 127.0.0.1::8080 "$multi")
container_url="http://$(docker port "$cid" 8080/tcp | head -1)/whoami"
wait_200 "$container_url"
rss_idle=$(rss_mb "$cid")
load_rows=()
for target in host container; do
	url=host_url; [ "$target" = container ] && url=container_url
	for c in 1 64 256; do
		load_rows+=("$(wrk_row "$target" "$c" "${!url}")")
	done
done
rss_load=$(rss_mb "$cid")
docker rm -f "$cid" >/dev/null

# Behind the balancer (compose.yaml): the same load with 1 and with 3
# replicas, then rolling restarts under load (go run ./replicas).
say "docker compose up: HAProxy and 1 replica"
docker compose up -d --wait --scale whoami=1 >/dev/null 2>&1
lb_url="http://127.0.0.1:$(docker compose port lb 8080 | sed 's/.*://')/whoami"
wait_200 "$lb_url"
lb_rows=("$(wrk_row "HAProxy, 1 replica" 64 "$lb_url")")
docker compose up -d --wait --scale whoami=3 >/dev/null 2>&1
lb_rows+=("$(wrk_row "HAProxy, 3 replicas" 64 "$lb_url")")
go build -o "$work/replicas" ./replicas
say "rolling restart of 3 replicas under load ($restart_runs runs)"
for _ in $(seq "$restart_runs"); do
	"$work/replicas" rolling-restart >"$work/restart" || { cat "$work/restart" >&2; exit 1; }
	sed -n 's/^rolling restart of .*: \([0-9.]*\) s$/\1/p' "$work/restart" >>"$work/restart.s"
	sed -n 's/.* \([0-9]*\) requests through the balancer (\([0-9]*\)\/s): .* \([0-9]*\) failed$/\1 \2 \3/p' "$work/restart" >>"$work/restart.load"
	sed -n 's/.* answering through the balancer \([0-9.]*\) s after start.*/\1/p' "$work/restart" >>"$work/first"
done
restart_requests=$(awk '{ n += $1 } END { print n }' "$work/restart.load")
restart_failed=$(awk '{ n += $3 } END { print n }' "$work/restart.load")
awk '{ print $2 }' "$work/restart.load" >"$work/restart.rps"

{
	echo "Measured $(date -u '+%Y-%m-%d %H:%M UTC') with \`make bench\` on $(nproc) CPUs ($(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)),"
	echo "$(uname -sr), Docker engine $(docker version -f '{{.Server.Version}}') (storage driver $(docker info -f '{{.Driver}}')), $(go env GOVERSION), $(wrk --version 2>&1 | awk '{ print $1, $2; exit }')."
	echo "Medians of the runs; the spread is min-max. Shared machine: expect noise."
	echo
	echo "**Image sizes** (\`docker image inspect -f '{{.Size}}'\`)"
	echo
	scripts/compare-sizes.sh "$golang" "$single" "$multi" | sed '/^Measured/d'
	echo
	echo "**Binary size by build flags** ($(go env GOVERSION) $(go env GOOS)/$(go env GOARCH), CGO_ENABLED=0)"
	echo
	echo "| flags | bytes | MB |"
	echo "|---|---:|---:|"
	size_row "(no flags)" "$size_default"
	size_row '`-trimpath -ldflags "-s -w"`, as in Dockerfile' "$size_stripped"
	size_row 'the same and `-tags nethttpomithttp2` (not used)' "$size_omit_h2"
	echo
	echo "**Build, start, stop** (\`$multi\`)"
	echo
	echo "| measurement | median | spread | runs |"
	echo "|---|---:|---:|---:|"
	row "cold multistage build (empty build cache, --no-cache)" s %.1f "$work/cold"
	row "rebuild after a one-line edit of http.go (cache mount)" s %.1f "$work/warm"
	row "\`docker run\` to the first 200 on /whoami" s %.2f "$work/start"
	row "\`docker stop\` to exit (exit code: $exits)" s %.2f "$work/stop"
	echo
	echo "**Memory** (resident set of the container's process, from \`docker top\`): $rss_idle MB idle, $rss_load MB right after the load below."
	echo
	echo "**GET /whoami under load** (wrk, keep-alive, ${duration} s a run, $load_runs runs; \"host\" is \`$binary\` on loopback, \"container\" goes through the published port)"
	echo
	echo "| target | connections | requests/s | spread | p50 latency | p99 latency |"
	echo "|---|---:|---:|---:|---:|---:|"
	printf '%s\n' "${load_rows[@]}"
	echo
	echo "**Behind the balancer** (compose.yaml: HAProxy $(docker compose exec -T lb haproxy -v 2>/dev/null | awk '{ print $3; exit }'), wrk through its published port, same run)"
	echo
	echo "| target | connections | requests/s | spread | p50 latency | p99 latency |"
	echo "|---|---:|---:|---:|---:|---:|"
	printf '%s\n' "${lb_rows[@]}"
	echo
	echo "| rolling restart (\`make rolling-restart\`, 3 replicas, 4 clients loading the balancer) | median | spread | runs |"
	echo "|---|---:|---:|---:|"
	row "duration of the restart" s %.1f "$work/restart.s"
	row "requests/s through the balancer meanwhile" "" %.0f "$work/restart.rps"
	row "a new replica's start to its first answer through the balancer" s %.1f "$work/first"
	echo
	echo "Failed requests during the $restart_runs rolling restarts: **$restart_failed of $restart_requests**."
} | tee "$report"

# README quotes the report verbatim between two markers.
awk -v report="$report" '
	/<!-- bench:end -->/ { while ((getline line < report) > 0) print line; skip = 0 }
	!skip { print }
	/<!-- bench:start -->/ { skip = 1 }' README.md >"$work/README.md"
cat "$work/README.md" >README.md
say "written to $report and to README.md's Performance section"
