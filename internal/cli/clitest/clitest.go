// Package clitest checks that a tool in cmd/ keeps the command-line
// convention of package cli, by running its run function as main would.
package clitest

import (
	"bytes"
	"strings"
	"testing"

	"whoami/internal/cli"
)

// Case is one command line and what it must give: the exit status, and
// text that stdout and stderr must each begin with ("" for nothing).
type Case struct {
	Args           []string
	Code           int
	Stdout, Stderr string
}

// Check runs each case, then what every tool must answer: -h and -help
// print the usage to stdout and exit 0, an unknown flag exits 2 with one
// line on stderr. The cases must not need an engine or a cluster: they end
// on the command line.
func Check(t *testing.T, name string, run cli.Run, cases ...Case) {
	t.Helper()
	usage := "Usage: " + name + " "
	cases = append(cases,
		Case{Args: []string{"-h"}, Code: 0, Stdout: usage},
		Case{Args: []string{"-help"}, Code: 0, Stdout: usage},
		Case{Args: []string{"-no-such-flag"}, Code: 2,
			Stderr: name + ": flag provided but not defined: -no-such-flag (see " + name + " -h)\n"},
	)
	for _, c := range cases {
		var stdout, stderr bytes.Buffer
		code := cli.Exit(t.Context(), name, run, c.Args, &stdout, &stderr)
		line := name + " " + strings.Join(c.Args, " ")
		if code != c.Code {
			t.Errorf("%s: exit status %d, want %d (stderr %q)", line, code, c.Code, stderr.String())
		}
		for _, out := range []struct {
			what, got, want string
		}{{"stdout", stdout.String(), c.Stdout}, {"stderr", stderr.String(), c.Stderr}} {
			if !strings.HasPrefix(out.got, out.want) || out.want == "" && out.got != "" {
				t.Errorf("%s: %s %q, want it to begin with %q", line, out.what, out.got, out.want)
			}
		}
		if n := strings.Count(stderr.String(), "\n"); n > 1 {
			t.Errorf("%s: %d lines on stderr, want at most one: %q", line, n, stderr.String())
		}
	}
}
