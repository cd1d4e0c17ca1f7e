package main

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"whoami/internal/probe"
)

// restore puts the stack back to n running replicas, all healthy, with
// HAProxy balancing over exactly them, after an interrupt. Whatever step
// was cut short, it looks at what is there: it removes the containers that
// are not running (a replica stopped but not removed), then, if there is
// one replica too many, the one that is not healthy yet (a replacement
// undone) or else the oldest (a replacement finished), or starts the ones
// that are missing. It returns what it did, in words.
func (s *stack) restore(ctx context.Context, n int) (string, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*time.Minute)
	defer cancel()
	all, err := s.containers(ctx, "ps", "-a", "-q", "whoami")
	if err != nil {
		return "", err
	}
	var did []string
	var running []replica
	for _, r := range all {
		if r.State == "running" {
			running = append(running, r)
			continue
		}
		if _, err := s.docker(ctx, "rm", "-f", r.ID); err != nil {
			return "", err
		}
		did = append(did, "removed the stopped "+r.Name)
	}
	// Not healthy first, then the oldest.
	slices.SortStableFunc(running, func(a, b replica) int {
		return boolOrder(a.Health == "healthy", b.Health == "healthy")
	})
	for len(running) > n {
		r := running[0]
		if _, err := s.docker(ctx, "stop", r.ID); err != nil {
			return "", err
		}
		if _, err := s.docker(ctx, "rm", r.ID); err != nil {
			return "", err
		}
		if r.Health == "healthy" {
			did = append(did, "finished the replacement of "+r.Name)
		} else {
			did = append(did, "undid the start of "+r.Name)
		}
		running = running[1:]
	}
	if len(running) < n {
		if _, err := s.compose(ctx, "up", "-d", "--no-deps", "--no-recreate", "--scale", fmt.Sprintf("whoami=%d", n), "whoami"); err != nil {
			return "", err
		}
		did = append(did, fmt.Sprintf("started %d replicas", n-len(running)))
	}
	if err := probe.Until(ctx, time.Minute, "every replica healthy", func(ctx context.Context) (bool, error) {
		rs, err := s.replicas(ctx)
		return len(rs) == n && !slices.ContainsFunc(rs, func(r replica) bool { return r.Health != "healthy" }), err
	}); err != nil {
		return "", err
	}
	if err := s.waitBalanced(ctx); err != nil {
		return "", err
	}
	if len(did) == 0 {
		did = append(did, "nothing to undo")
	}
	return strings.Join(did, ", "), nil
}

// boolOrder sorts false before true.
func boolOrder(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	default:
		return -1
	}
}

// interrupted restores the stack to n replicas (none: down) and returns the
// one line that says so.
func (s *stack) interrupted(ctx context.Context, n int) error {
	if n == 0 {
		if err := s.down(context.WithoutCancel(ctx)); err != nil {
			return fmt.Errorf("interrupted, and removing what was started failed: %v", err)
		}
		return fmt.Errorf("interrupted: removed what was started; no stack runs, as before")
	}
	did, err := s.restore(ctx, n)
	if err != nil {
		return fmt.Errorf("interrupted, and putting the stack back failed: %v", err)
	}
	return fmt.Errorf("interrupted: the stack is as it was, %d replicas, all healthy and balanced (%s)", n, did)
}
