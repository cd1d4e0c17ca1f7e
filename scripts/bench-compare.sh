#!/usr/bin/env bash
# make bench-compare: the handler benchmark (BenchmarkWhoami) of a base
# revision and of the working tree, side by side with benchstat: ns/op, B/op
# and allocs/op, with their confidence intervals and p-values. The two are
# run in alternation, ROUNDS times, so that the machine's noise falls on both.
# Usage: scripts/bench-compare.sh [BASE]   (default: HEAD)
set -euo pipefail
cd "$(dirname "$0")/.."
base=${1:-HEAD}
rounds=${ROUNDS:-5}
benchstat=${BENCHSTAT:-go run golang.org/x/perf/cmd/benchstat@v0.0.0-20260908200009-22c9c6c9d4da}
git rev-parse --verify -q "$base^{commit}" >/dev/null || { echo "whoami: $base is not a revision of this repository: BASE=<commit, tag or branch>" >&2; exit 1; }
work=$(mktemp -d)
trap 'git worktree remove --force "$work/base" >/dev/null 2>&1; rm -rf "$work"' EXIT
git worktree add -q --detach "$work/base" "$base"
bench() { go test -run '^$' -bench '^BenchmarkWhoami$' -benchmem -count 2 . ; }
for i in $(seq "$rounds"); do
	printf '  round %d of %d\n' "$i" "$rounds" >&2
	(cd "$work/base" && bench) >>"$work/base.txt"
	bench >>"$work/new.txt"
done
$benchstat "$(git rev-parse --short "$base")=$work/base.txt" "working tree=$work/new.txt"
