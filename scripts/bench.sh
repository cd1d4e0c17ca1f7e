#!/usr/bin/env bash
# make bench: measures the images, the builds, the container's life cycle and
# the service under load on this machine, and prints one Markdown report. It
# writes it to docs/benchmarks.md and between the bench markers of README.md.
#
# Every figure is a median of several runs, with the spread (min-max): these
# machines are shared and noisy. Nothing here is a pass/fail test.
#
# The cold builds use a Go build cache of their own (a cache mount at a path
# no other build uses) and --no-cache; what they leave in BuildKit's cache
# is removed at the end, by ID. Nothing else in the build cache is touched.
#
# The server under load runs on CPU 0 and wrk on CPU 1 (taskset), so that
# they do not compete; on a machine with one CPU they share it.
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
	# The build cache records of the bench's own builds, and only those.
	for id in $(docker buildx du --verbose 2>/dev/null | awk -v tag="whoami-bench-$$" '/^ID:/ { id = $2 } /^Description:/ && index($0, tag) { print id }'); do
		docker builder prune -af --filter "id=$id" >/dev/null 2>&1 || true
	done
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
# wrk_once NAME CONNECTIONS URL runs wrk once and appends its requests/s,
# p50 and p99 (in ms) to $work/NAME.CONNECTIONS.{rps,p50,p99}.
wrk_once() {
	local out=$work/$1.$2
	"${wrk_cpu[@]}" wrk -t 1 -c "$2" -d "${duration}s" --latency "$3" >"$work/wrk"
	awk '/^Requests\/sec:/ { print $2 }' "$work/wrk" >>"$out.rps"
	# wrk prints latencies as 1.23ms, 456.00us or 1.02s: convert to ms.
	awk -v out="$out" '$1 == "50%" || $1 == "99%" { v = $2; u = v; sub(/[0-9.]+/, "", u); sub(/[a-z]+$/, "", v)
		printf "%.3f\n", v * (u == "us" ? 0.001 : u == "s" ? 1000 : 1) >> (out "." (($1 == "50%") ? "p50" : "p99")) }' "$work/wrk"
	if grep -q 'Non-2xx\|Socket errors' "$work/wrk"; then say "errors: $(grep 'Non-2xx\|Socket errors' "$work/wrk")"; fi
}
# load_row LABEL NAME CONNECTIONS prints a table row from wrk_once's files:
# label, connections, requests/s (median and spread), p50 and p99.
load_row() {
	local rps lo hi p50 p99 _
	read -r rps lo hi _ < <(summary "$work/$2.$3.rps")
	read -r p50 _ < <(summary "$work/$2.$3.p50")
	read -r p99 _ < <(summary "$work/$2.$3.p99")
	printf '| %s | %d | %.0f | %.0f-%.0f | %.2f ms | %.2f ms |\n' "$1" "$3" "$rps" "$lo" "$hi" "$p50" "$p99"
}
# free_port prints a TCP port that nothing listens on right now.
free_port() {
	local p
	for _ in $(seq 50); do
		p=$((20000 + RANDOM % 20000))
		(exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
	done
	echo "whoami: no free port found" >&2; exit 1
}
size_row() { awk -v n="$1" -v b="$2" 'BEGIN { printf "| %s | %d | %.2f |\n", n, b, b / 1e6 }'; }
rss_mb() { docker top "$1" -o pid,rss | awk 'NR > 1 { printf "%.1f", $2 / 1024 }'; }

# Build times, in a copy of the build context so the edits stay out of the repo.
# cache_dockerfile NAME writes the Dockerfile with its Go build cache at a
# path of the bench's own: an empty cache the first time, so a cold build,
# without emptying the cache that the user's builds use.
cp go.mod ./*.go .dockerignore "$work/"
cache_dockerfile() {
	sed -e "s|--mount=type=cache,target=/root/.cache/go-build|--mount=type=cache,target=/root/.cache/$1|" \
		-e "s|\tCGO_ENABLED=0 GOOS=|\tGOCACHE=/root/.cache/$1 CGO_ENABLED=0 GOOS=|" Dockerfile >"$work/Dockerfile"
	grep -q "GOCACHE=/root/.cache/$1" "$work/Dockerfile" || { echo "whoami: bench.sh no longer finds the cache mount in Dockerfile" >&2; exit 1; }
}
say "cold multistage build: empty Go cache of the bench's own, --no-cache ($cold_runs runs)"
for i in $(seq "$cold_runs"); do
	cache_dockerfile "whoami-bench-$$-$i"
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
	# The floor: the same image doing nothing (print the version and exit).
	t=$(now); docker run --rm "$multi" -version >/dev/null; since "$t" >>"$work/floor"; echo >>"$work/floor"
	t=$(now)
	id=$(docker run -d --label "whoami-bench=$$" -p 127.0.0.1::8080 "$multi")
	wait_200 "http://$(docker port "$id" 8080/tcp | head -1)/whoami"
	since "$t" >>"$work/start"; echo >>"$work/start"
	t=$(now); docker stop "$id" >/dev/null; since "$t" >>"$work/stop"; echo >>"$work/stop"
	docker inspect -f '{{.State.ExitCode}}' "$id" >>"$work/exit"
	docker rm "$id" >/dev/null
done
exits=$(sort -u "$work/exit" | paste -sd, -)
start_ratio=$(awk -v a="$(summary "$work/start" | cut -d' ' -f1)" -v b="$(summary "$work/floor" | cut -d' ' -f1)" 'BEGIN { printf "%.2f", a / b }')

# Load: wrk with keep-alive, on its own CPU, against servers on the other:
# the tutorial's bare program and whoami on the host, side by side, then
# the container through its published port (docker-proxy) and on the host
# network (no proxy).
if [ "$(nproc)" -ge 2 ]; then
	server_cpu=(taskset -c 0) wrk_cpu=(taskset -c 1) docker_cpu=(--cpuset-cpus 0)
	cpus="the servers on CPU 0, wrk on CPU 1 (taskset; docker-proxy is not pinned)"
else
	server_cpu=() wrk_cpu=() docker_cpu=()
	cpus="the servers and wrk on the one CPU"
fi
# start_host NAME COMMAND... starts a server on the host, its address
# 127.0.0.1:PORT given last, and sets url once it answers 200.
start_host() {
	local name=$1 port
	shift
	port=$(free_port)
	"${server_cpu[@]}" "$@" "127.0.0.1:$port" >/dev/null 2>"$work/$name.log" &
	pids+=($!)
	url="http://127.0.0.1:$port/whoami"
	wait_200 "$url"
}
go build -o "$work/tutorial-server" ./scripts/tutorial-server
start_host tutorial "$work/tutorial-server" && tutorial_url=$url
start_host host "$binary" -addr && host_url=$url
cid=$(docker run -d --label "whoami-bench=$$" "${docker_cpu[@]}" -p 127.0.0.1::8080 "$multi")
container_url="http://$(docker port "$cid" 8080/tcp | head -1)/whoami"
wait_200 "$container_url"
hostnet_port=$(free_port)
hid=$(docker run -d --label "whoami-bench=$$" "${docker_cpu[@]}" --network host "$multi" -addr "127.0.0.1:$hostnet_port")
hostnet_url="http://127.0.0.1:$hostnet_port/whoami"
wait_200 "$hostnet_url"
rss_idle=$(rss_mb "$cid")
# The targets take turns within each round, so that the machine's drift
# falls on all of them alike; the ratio is taken run by run.
load_rows=() ratio_rows=()
declare -A labels
labels=([tutorial]="the tutorial's program (bare net/http)" [host]="whoami" [container]="whoami:2.0, published port" [hostnet]="whoami:2.0, host network")
for c in 1 64 256; do
	say "wrk, $c connections: $load_runs rounds of ${duration}s on each of the 4 targets"
	for _ in $(seq "$load_runs"); do
		for target in tutorial host container hostnet; do
			url=${target}_url
			wrk_once "$target" "$c" "${!url}"
		done
	done
	for target in tutorial host container hostnet; do
		load_rows+=("$(load_row "${labels[$target]}" "$target" "$c")")
	done
	paste "$work/host.$c.rps" "$work/tutorial.$c.rps" | awk '{ printf "%.4f\n", $1 / $2 }' >"$work/ratio.$c"
	read -r r lo hi _ < <(summary "$work/ratio.$c")
	ratio_rows+=("$(printf '| %d | %.0f | %.0f | %.2f | %.2f-%.2f |' "$c" \
		"$(summary "$work/tutorial.$c.rps" | cut -d' ' -f1)" "$(summary "$work/host.$c.rps" | cut -d' ' -f1)" "$r" "$lo" "$hi")")
done
rss_load=$(rss_mb "$cid")
docker rm -f "$cid" "$hid" >/dev/null

# Behind the balancer (compose.yaml): the same load with 1 and with 3
# replicas, then rolling restarts under load (go run ./replicas).
say "docker compose up: HAProxy and 1 replica"
docker compose up -d --wait --scale whoami=1 >/dev/null 2>&1
lb_url="http://127.0.0.1:$(docker compose port lb 8080 | sed 's/.*://')/whoami"
wait_200 "$lb_url"
wrk_cpu=() # HAProxy and the replicas are not pinned: neither is wrk
say "wrk through HAProxy, 1 replica and 3 replicas: $load_runs runs of ${duration}s each"
for _ in $(seq "$load_runs"); do wrk_once lb1 64 "$lb_url"; done
docker compose up -d --wait --scale whoami=3 >/dev/null 2>&1
for _ in $(seq "$load_runs"); do wrk_once lb3 64 "$lb_url"; done
lb_rows=("$(load_row "HAProxy, 1 replica" lb1 64)" "$(load_row "HAProxy, 3 replicas" lb3 64)")
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
	row "cold multistage build (an empty Go cache of its own, --no-cache)" s %.1f "$work/cold"
	row "rebuild after a one-line edit of http.go (cache mount)" s %.1f "$work/warm"
	row "\`docker run\` to the first 200 on /whoami" s %.2f "$work/start"
	row "\`docker run --rm $multi -version\`: the same image doing nothing" s %.2f "$work/floor"
	row "\`docker stop\` to exit (exit code: $exits)" s %.2f "$work/stop"
	echo
	echo "Start-up against its floor: the first 200 comes $start_ratio times as late as a run that does nothing."
	echo
	echo "**Memory** (resident set of the container's process, from \`docker top\`): $rss_idle MB idle, $rss_load MB right after the load below."
	echo
	echo "**GET /whoami under load** (wrk, keep-alive, ${duration} s a run, $load_runs runs, $cpus; on the host on 127.0.0.1, the container through its published port or on the host network)"
	echo
	echo "| target | connections | requests/s | spread | p50 latency | p99 latency |"
	echo "|---|---:|---:|---:|---:|---:|"
	printf '%s\n' "${load_rows[@]}"
	echo
	echo "whoami, with its timeouts, header limit and two extra headers, against the tutorial's bare program, same run:"
	echo
	echo "| connections | tutorial's program, requests/s | whoami, requests/s | ratio (median of the rounds) | spread |"
	echo "|---:|---:|---:|---:|---:|"
	printf '%s\n' "${ratio_rows[@]}"
	echo
	echo "**Behind the balancer** (compose.yaml: HAProxy $(docker compose exec -T lb haproxy -v 2>/dev/null | awk '{ print $3; exit }'), wrk through its published port, same run; nothing pinned)"
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
