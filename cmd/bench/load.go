package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"whoami/internal/dockercli"
)

// wrkRun is one run of wrk, from its Lua done() hook.
type wrkRun struct {
	Requests   int64   `json:"requests"`
	DurationUS float64 `json:"duration_us"`
	Errors     int64   `json:"errors"`
	P50US      float64 `json:"p50_us"`
	P99US      float64 `json:"p99_us"`
}

func (w wrkRun) rps() float64 { return float64(w.Requests) / (w.DurationUS / 1e6) }

// loadRow is a target under a number of connections.
type loadRow struct {
	Target   string
	Conns    int
	RPS      stats
	P50, P99 float64 // medians, ms
	Errors   int64
}

func newLoadRow(target string, conns int, runs []wrkRun) loadRow {
	var rps, p50, p99 []float64
	var errs int64
	for _, w := range runs {
		rps, p50, p99 = append(rps, w.rps()), append(p50, w.P50US/1000), append(p99, w.P99US/1000)
		errs += w.Errors
	}
	return loadRow{Target: target, Conns: conns, RPS: summarize(rps), P50: summarize(p50).Median, P99: summarize(p99).Median, Errors: errs}
}

// The Lua hook that makes wrk print its figures as JSON.
const wrkScript = `done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('{"requests": %d, "duration_us": %d, "errors": %d, "p50_us": %d, "p99_us": %d}\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.status + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
`

// wrk runs wrk with conns keep-alive connections against url, pinned to
// CPU 1 if pin.
func (b *bench) wrk(ctx context.Context, url string, conns int, pin bool) (wrkRun, error) {
	script := filepath.Join(b.work, "json.lua")
	if err := os.WriteFile(script, []byte(wrkScript), 0o644); err != nil {
		return wrkRun{}, err
	}
	args := []string{"wrk", "-t", "1", "-c", fmt.Sprint(conns), "-d", fmt.Sprint(b.o.duration.Seconds()) + "s", "-s", script, url}
	if pin {
		args = cpus("1", args...)
	}
	ctx, cancel := context.WithTimeout(ctx, b.o.duration+time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, args[0], args[1:]...).Output()
	if err != nil {
		return wrkRun{}, fmt.Errorf("wrk: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	var w wrkRun
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &w); err != nil {
		return wrkRun{}, fmt.Errorf("wrk's figures: %v: %s", err, lines[len(lines)-1])
	}
	return w, nil
}

// rss is the resident memory of the container's process, in MB, as ps on
// the engine's host sees it (docker top needs the pid column too).
func rss(ctx context.Context, id string) float64 {
	out, _ := dockercli.Run(ctx, "top", id, "-o", "pid,rss")
	fields := strings.Fields(out) // PID RSS pid rss
	var kb float64
	if len(fields) == 4 {
		fmt.Sscan(fields[3], &kb)
	}
	return kb / 1024
}

// load runs wrk against the tutorial's bare program and whoami on this
// machine, side by side, then the container through its published port and
// on the host network. The targets take turns within each round, so that
// the machine's drift falls on all of them alike; the ratio is taken round
// by round.
func (b *bench) load(ctx context.Context, r *report) error {
	r.Pinning = "the servers on CPU 0, wrk on CPU 1 (taskset)"
	if runtime.NumCPU() < 2 {
		r.Pinning = "the servers and wrk on the one CPU"
	}
	tutorial := filepath.Join(b.work, "tutorial")
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", tutorial, "./cmd/bench/tutorial").CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./cmd/bench/tutorial: %v: %s", err, out)
	}
	type target struct{ name, url string }
	var targets []target
	url, err := b.startHost(ctx, tutorial)
	if err != nil {
		return err
	}
	targets = append(targets, target{"the tutorial's program (bare net/http)", url})
	if url, err = b.startHost(ctx, b.o.binary, "-addr"); err != nil {
		return err
	}
	targets = append(targets, target{"whoami", url})
	pin := []string{"--label", b.tag}
	if runtime.NumCPU() >= 2 {
		pin = append(pin, "--cpuset-cpus", "0")
	}
	id, url, err := dockercli.RunContainer(ctx, b.o.multi, b.o.port, pin...)
	if err != nil {
		return err
	}
	targets = append(targets, target{b.o.multi + ", published port", url})
	addr, err := freeAddr()
	if err != nil {
		return err
	}
	args := append(append([]string{"run", "-d", "--network", "host"}, pin...), b.o.multi, "-addr", addr)
	if _, err := dockercli.Run(ctx, args...); err != nil {
		return err
	}
	url = "http://" + addr + "/whoami"
	if err := waitOK(ctx, url); err != nil {
		return err
	}
	targets = append(targets, target{b.o.multi + ", host network", url})
	r.RSSIdle = rss(ctx, id)
	for _, conns := range []int{1, 64, 256} {
		b.say("wrk, %d connections: %d rounds of %v on each of the %d targets", conns, b.o.loadRuns, b.o.duration, len(targets))
		runs := make([][]wrkRun, len(targets))
		var ratios []float64
		for range b.o.loadRuns {
			for i, t := range targets {
				w, err := b.wrk(ctx, t.url, conns, true)
				if err != nil {
					return err
				}
				runs[i] = append(runs[i], w)
			}
			ratios = append(ratios, runs[1][len(runs[1])-1].rps()/runs[0][len(runs[0])-1].rps())
		}
		rows := make([]loadRow, len(targets))
		for i, t := range targets {
			rows[i] = newLoadRow(t.name, conns, runs[i])
		}
		r.Load = append(r.Load, rows...)
		r.Ratios = append(r.Ratios, ratioRow{Conns: conns, Tutorial: rows[0].RPS.Median, Whoami: rows[1].RPS.Median, Ratio: summarize(ratios)})
	}
	r.RSSLoad = rss(ctx, id)
	return nil
}
