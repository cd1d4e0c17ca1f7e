package cli_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"testing"

	"whoami/internal/cli"
	"whoami/internal/cli/clitest"
)

// tool is a tool as cmd/ writes one: commands a and b, a flag -n, and b
// fails.
func tool(_ context.Context, args []string, stdout, _ io.Writer) error {
	fs := flag.NewFlagSet("tool", flag.ContinueOnError)
	n := fs.Int("n", 1, "how many")
	args, err := cli.Parse(fs, args, stdout, "Usage: tool a|b [flags]\n")
	if err != nil {
		return err
	}
	cmd, _, err := cli.Command(args, 0, "a", "b")
	if err != nil {
		return err
	}
	if *n < 1 {
		return cli.Usagef("-n must be at least 1")
	}
	if cmd == "b" {
		return errors.New("b failed")
	}
	fmt.Fprintf(stdout, "a %d\n", *n)
	return nil
}

func TestTheConvention(t *testing.T) {
	clitest.Check(t, "tool", tool,
		clitest.Case{Args: []string{"a"}, Code: 0, Stdout: "a 1\n"},
		clitest.Case{Args: []string{"-n", "3", "a"}, Code: 0, Stdout: "a 3\n"},
		clitest.Case{Args: []string{"a", "-n", "3"}, Code: 0, Stdout: "a 3\n"},
		clitest.Case{Args: []string{"a", "-h"}, Code: 0, Stdout: "Usage: tool a|b [flags]\n  -n int\n"},
		clitest.Case{Args: []string{"b"}, Code: 1, Stderr: "tool: b failed\n"},
		clitest.Case{Args: []string{}, Code: 2, Stderr: "tool: want one command, a or b (see tool -h)\n"},
		clitest.Case{Args: []string{"c"}, Code: 2, Stderr: `tool: unknown command "c": want a or b (see tool -h)` + "\n"},
		clitest.Case{Args: []string{"a", "x"}, Code: 2, Stderr: `tool: a takes 0 argument(s), not 1: ["x"] (see tool -h)` + "\n"},
		clitest.Case{Args: []string{"a", "-n", "0"}, Code: 2, Stderr: "tool: -n must be at least 1 (see tool -h)\n"},
		clitest.Case{Args: []string{"-n", "x", "a"}, Code: 2, Stderr: `tool: invalid value "x" for flag -n: parse error (see tool -h)` + "\n"},
		clitest.Case{Args: []string{"-a\nb", "a"}, Code: 2, Stderr: `tool: flag provided but not defined: -a\nb (see tool -h)` + "\n"},
	)
}

func TestParse(t *testing.T) {
	for _, c := range []struct {
		args []string
		rest []string
		n    int
	}{
		{[]string{"x", "-n", "2", "y"}, []string{"x", "y"}, 2},
		{[]string{"-n", "2", "x", "y"}, []string{"x", "y"}, 2},
		{[]string{"x", "y", "-n=2"}, []string{"x", "y"}, 2},
		{[]string{"x", "--", "-n", "2"}, []string{"x", "-n", "2"}, 1}, // after --, no flags
		{[]string{"--", "x"}, []string{"x"}, 1},
		{[]string{"--", "x", "-n", "2"}, []string{"x", "-n", "2"}, 1},
		{[]string{"-s", "--", "x", "-n", "2"}, []string{"x"}, 2},            // "--" is -s's value
		{[]string{"-b", "--", "x", "-n", "2"}, []string{"x", "-n", "2"}, 1}, // -b takes none: "--" ends the flags
		{nil, nil, 1},
	} {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		n := fs.Int("n", 1, "")
		fs.String("s", "", "")
		fs.Bool("b", false, "")
		rest, err := cli.Parse(fs, c.args, io.Discard, "")
		if err != nil || !slices.Equal(rest, c.rest) || *n != c.n {
			t.Errorf("Parse(%q) = %q, %v with -n %d, want %q, nil with -n %d", c.args, rest, err, *n, c.rest, c.n)
		}
	}
}

func TestNoIsAnAnswerNotAFailure(t *testing.T) {
	no := func(context.Context, []string, io.Writer, io.Writer) error { return fmt.Errorf("has x: %w", cli.ErrNo) }
	clitest.Check(t, "ask", func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
		if _, err := cli.Parse(flag.NewFlagSet("ask", flag.ContinueOnError), args, stdout, "Usage: ask REF\n"); err != nil {
			return err
		}
		return no(ctx, args, stdout, stderr)
	}, clitest.Case{Args: []string{"x"}, Code: 1})
}
