package main

import (
	"context"
	"maps"
	"slices"
	"strings"

	"whoami/internal/dockercli"
)

// lifeCycle times docker run to the first 200 against a run of the same
// image that does nothing, and docker stop.
func (b *bench) lifeCycle(ctx context.Context, r *report) error {
	b.say("start-up and docker stop (%d runs)", b.o.runs)
	var start, floor, stop []float64
	codes := map[string]bool{}
	for range b.o.runs {
		s, err := timed(func() error { _, err := dockercli.Run(ctx, "run", "--rm", b.o.multi, "-version"); return err })
		if err != nil {
			return err
		}
		floor = append(floor, s)
		var id string
		s, err = timed(func() (err error) {
			id, _, err = dockercli.RunContainer(ctx, b.o.multi, b.o.port, "--label", b.tag)
			return err
		})
		if err != nil {
			return err
		}
		start = append(start, s)
		if s, err = timed(func() error { _, err := dockercli.Run(ctx, "stop", id); return err }); err != nil {
			return err
		}
		stop = append(stop, s)
		code, _ := dockercli.Run(ctx, "inspect", "-f", "{{.State.ExitCode}}", id)
		codes[code] = true
		dockercli.Run(ctx, "rm", id)
	}
	r.Start, r.Floor, r.Stop = summarize(start), summarize(floor), summarize(stop)
	r.StartRatio = r.Start.Median / r.Floor.Median
	r.ExitCodes = strings.Join(slices.Sorted(maps.Keys(codes)), ", ")
	return nil
}
