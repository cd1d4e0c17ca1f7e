package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestRun(t *testing.T) {
	var out, errs bytes.Buffer
	if code := run(nil, &out, &errs); code != 2 || errs.String() != "usage: resolve NAME...\n" {
		t.Errorf("no name: %d, %q", code, errs.String())
	}
	out.Reset()
	errs.Reset()
	// localhost is in every /etc/hosts; an address resolves to itself; a
	// name that is not one fails at once, without asking a server.
	code := run([]string{"localhost", "10.89.0.10", "not a name"}, &out, &errs)
	if code != 1 || !strings.HasPrefix(out.String(), "localhost ") || !strings.Contains(out.String(), "\n10.89.0.10 10.89.0.10\n") ||
		strings.Count(errs.String(), "resolve: ") != 1 {
		t.Errorf("run = %d\nstdout %q\nstderr %q", code, out.String(), errs.String())
	}
}
