package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"whoami/internal/dockercli"
)

// builds times cold multistage builds and rebuilds after a one-line edit, in
// a copy of the build context, so that the edits stay out of the repository.
func (b *bench) builds(ctx context.Context, r *report) error {
	ctxDir := filepath.Join(b.work, "context")
	if err := os.MkdirAll(ctxDir, 0o755); err != nil {
		return err
	}
	files, _ := filepath.Glob("*.go")
	for _, f := range append(files, "go.mod", ".dockerignore") {
		if err := copyFile(f, filepath.Join(ctxDir, f)); err != nil {
			return err
		}
	}
	dockerfile, err := os.ReadFile("Dockerfile")
	if err != nil {
		return err
	}
	// The Go build cache at a path of the bench's own: empty the first time,
	// a cold build, without emptying the cache of the user's builds.
	withCache := func(name string) error {
		const mount, env = "--mount=type=cache,target=/root/.cache/go-build", "\tCGO_ENABLED=0 GOOS="
		if !bytes.Contains(dockerfile, []byte(mount)) || !bytes.Contains(dockerfile, []byte(env)) {
			return errors.New("bench no longer finds the Go cache mount in Dockerfile")
		}
		d := bytes.Replace(dockerfile, []byte(mount), []byte("--mount=type=cache,target=/root/.cache/"+name), 1)
		d = bytes.Replace(d, []byte(env), []byte("\tGOCACHE=/root/.cache/"+name+" CGO_ENABLED=0 GOOS="), 1)
		return os.WriteFile(filepath.Join(ctxDir, "Dockerfile"), d, 0o644)
	}
	build := func(args ...string) error {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
		defer cancel()
		_, err := dockercli.Run(ctx, append(append([]string{"build", "-q", "-t", b.tag + ":tmp"}, args...), ctxDir)...)
		return err
	}
	b.say("cold multistage build: an empty Go cache of the bench's own, --no-cache (%d runs)", b.o.coldRuns)
	var cold, warm []float64
	for i := range b.o.coldRuns {
		if err := withCache(fmt.Sprintf("%s-%d", b.tag, i)); err != nil {
			return err
		}
		s, err := timed(func() error { return build("--no-cache") })
		if err != nil {
			return err
		}
		cold = append(cold, s)
	}
	b.say("rebuild after a one-line edit of http.go (%d runs)", b.o.runs)
	for i := range b.o.runs {
		f, err := os.OpenFile(filepath.Join(ctxDir, "http.go"), os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			return err
		}
		fmt.Fprintf(f, "// bench edit %d\n", i)
		f.Close()
		s, err := timed(func() error { return build() })
		if err != nil {
			return err
		}
		warm = append(warm, s)
	}
	r.Cold, r.Warm = summarize(cold), summarize(warm)
	return nil
}
