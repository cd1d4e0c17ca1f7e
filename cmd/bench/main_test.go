package main

import (
	"testing"

	"whoami/internal/cli/clitest"
)

func TestTheCommandLine(t *testing.T) {
	clitest.Check(t, "bench", run,
		clitest.Case{Args: nil, Code: 2, Stderr: "bench: -golang, -single, -multi, -binary and -port are required"},
		clitest.Case{Args: []string{"-port", "8080", "now"}, Code: 2, Stderr: `bench: unexpected argument "now"`},
		clitest.Case{Args: []string{"-port", "abc"}, Code: 2, Stderr: `bench: -port "abc": want a port number`},
		clitest.Case{Args: []string{"-runs=-1"}, Code: 2, Stderr: "bench: -runs, -cold-runs"},
	)
}
