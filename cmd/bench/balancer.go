package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"whoami/internal/dockercli"
	"whoami/internal/results"
)

// balancer runs the same load through HAProxy (compose.yaml) with 1 and 3
// replicas; nothing pinned.
func (b *bench) balancer(ctx context.Context, r *report) error {
	var url string
	for _, n := range []int{1, 3} {
		name := fmt.Sprintf("HAProxy, %d %s", n, map[bool]string{true: "replica", false: "replicas"}[n == 1])
		b.say("docker compose up: %s; wrk through it, %d runs", name, b.o.loadRuns)
		if _, err := b.compose.Run(ctx, "compose", "up", "-d", "--wait", "--scale", fmt.Sprintf("whoami=%d", n)); err != nil {
			return err
		}
		if url == "" {
			out, err := b.compose.Run(ctx, "compose", "port", "lb", b.o.port)
			if err != nil {
				return err
			}
			addr, err := dockercli.Published(out)
			if err != nil {
				return err
			}
			url = "http://" + addr + "/whoami"
		}
		if err := waitOK(ctx, url); err != nil {
			return err
		}
		var runs []wrkRun
		for range b.o.loadRuns {
			w, err := b.wrk(ctx, url, 64, false)
			if err != nil {
				return err
			}
			runs = append(runs, w)
		}
		r.Balancer = append(r.Balancer, newLoadRow(name, 64, runs))
	}
	v, _ := b.compose.Run(ctx, "compose", "exec", "-T", "lb", "haproxy", "-v")
	if f := strings.Fields(v); len(f) > 2 {
		r.HAProxy = f[2]
	}
	return nil
}

// restarts runs make rolling-restart's command, its result as JSON.
func (b *bench) restarts(ctx context.Context, r *report) error {
	replicas := filepath.Join(b.work, "replicas")
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", replicas, "./cmd/replicas").CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./cmd/replicas: %v: %s", err, out)
	}
	b.say("rolling restart of 3 replicas under load (%d runs)", b.o.restartRuns)
	var seconds, rps, first []float64
	for range b.o.restartRuns {
		cmd := exec.CommandContext(ctx, replicas, "-json", "rolling-restart")
		cmd.Env = append(os.Environ(), b.compose.Env...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return fmt.Errorf("replicas rolling-restart: %v: %s", err, stderr.String())
		}
		var res results.Restart
		if err := json.Unmarshal(out, &res); err != nil {
			return fmt.Errorf("replicas -json: %v: %s", err, out)
		}
		seconds = append(seconds, res.Seconds)
		rps = append(rps, math.Round(float64(res.Requests)/res.Seconds))
		first = append(first, res.FirstAnswer...)
		r.Restart.Requests += res.Requests
		r.Restart.Failed += res.Failed
	}
	r.Restart.Seconds, r.Restart.RPS, r.Restart.FirstAnswer = summarize(seconds), summarize(rps), summarize(first)
	r.Restart.Runs = b.o.restartRuns
	return nil
}
