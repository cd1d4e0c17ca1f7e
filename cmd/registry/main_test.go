package main

import (
	"bytes"
	"strings"
	"testing"
)

// Bad arguments, and a registry where nothing listens: one line, exit 2
// (1 is kept for "the registry does not hold it").
func TestBadInputExitsTwoWithOneLine(t *testing.T) {
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "usage: registry ping HOST"},
		{[]string{"has"}, "usage:"},
		{[]string{"list", "x"}, `unknown command "list"`},
		{[]string{"has", "whoami:1.0"}, "no registry host"},
		{[]string{"has", "127.0.0.1:1/whoami:1.0"}, "connection refused"},
		{[]string{"ping", "127.0.0.1:1"}, "connection refused"},
	} {
		var out bytes.Buffer
		code := run(t.Context(), tc.args, &out)
		if code != 2 || !strings.HasPrefix(out.String(), "registry: ") || !strings.Contains(out.String(), tc.want) ||
			strings.Count(out.String(), "\n") != 1 {
			t.Errorf("run(%q) = %d, %q; want 2 and one line with %q", tc.args, code, out.String(), tc.want)
		}
	}
}
