// Package cli is the one command-line convention of the tools in cmd/,
// the service's own shape (docs/tools.md):
//
//   - main is cli.Main(name, run), and run(ctx, args, stdout, stderr)
//     does the work, so that a test calls it as main would;
//   - flags go before or after the command (replicas -n 5 demo, replicas
//     demo -n 5);
//   - -h or -help prints the usage to stdout and exits 0;
//   - a wrong command line (an unknown flag or command, a missing or bad
//     value) exits 2, a command that fails exits 1, a question answered
//     "no" (registry has) exits 1 and prints nothing; an error goes to
//     stderr as "name: why", a usage error on one line ending with
//     "(see name -h)".
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
)

// Run is a tool's body: what main does, with its arguments (without the
// program's name) and its outputs given.
type Run func(ctx context.Context, args []string, stdout, stderr io.Writer) error

// Main runs run with the process's arguments and outputs, and a context
// that ends on SIGINT or SIGTERM, then exits with the status Exit gives.
func Main(name string, run Run) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := Exit(ctx, name, run, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// Exit runs run and returns the exit status of its error: 0 for none or
// for the help the usage answered, 2 for a usage error, 1 for ErrNo or any
// other error. It prints the error, but ErrNo, on stderr: a usage error on
// one line; another's first line says why, and the rest, if any, is the
// end of what a program it ran printed (internal/command).
func Exit(ctx context.Context, name string, run Run, args []string, stdout, stderr io.Writer) int {
	err := run(ctx, args, stdout, stderr)
	var usage *usageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, ErrNo):
		return 1
	case errors.As(err, &usage):
		// One line, whatever the command line held (a flag's name may).
		fmt.Fprintf(stderr, "%s: %s (see %s -h)\n", name, strings.ReplaceAll(err.Error(), "\n", `\n`), name)
		return 2
	}
	fmt.Fprintf(stderr, "%s: %v\n", name, err)
	return 1
}

// ErrNo is a question's answer "no" (registry has REF: it does not): exit
// status 1, nothing printed.
var ErrNo = errors.New("no")

// usageError is a command line the tool cannot run.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

// Usagef returns a usage error: exit status 2, and a pointer to -h.
func Usagef(format string, a ...any) error {
	return &usageError{fmt.Errorf(format, a...)}
}

// Parse parses args with fs, whose flags may come before, between or after
// the other arguments, and returns those in order (all of those after
// "--"). Asked for help (-h,
// -help), it prints usage and fs's flags to stdout and returns
// flag.ErrHelp, which Exit turns into status 0; a flag it cannot parse is
// a usage error.
func Parse(fs *flag.FlagSet, args []string, stdout io.Writer, usage string) ([]string, error) {
	fs.SetOutput(io.Discard) // the errors are returned, the usage printed below
	var rest []string
	for {
		if err := fs.Parse(args); errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, usage)
			fs.SetOutput(stdout)
			fs.PrintDefaults()
			return nil, err
		} else if err != nil {
			return nil, &usageError{err}
		}
		left := fs.Args()
		if len(left) == 0 {
			return rest, nil
		}
		if i := len(args) - len(left) - 1; i >= 0 && args[i] == "--" && (i == 0 || !wantsValue(fs, args[i-1])) { // the flags' end
			return append(rest, left...), nil
		}
		args = left
		rest, args = append(rest, args[0]), args[1:]
	}
}

// wantsValue reports whether arg is a flag of fs that takes the next
// argument as its value (-name or --name, not a bool flag, no =).
func wantsValue(fs *flag.FlagSet, arg string) bool {
	name, ok := strings.CutPrefix(arg, "-")
	name = strings.TrimPrefix(name, "-")
	f := fs.Lookup(name)
	if !ok || strings.Contains(name, "=") || f == nil {
		return false
	}
	b, isBool := f.Value.(interface{ IsBoolFlag() bool })
	return !isBool || !b.IsBoolFlag()
}

// Command checks that args, what Parse returned, are one of commands
// followed by n arguments, and returns the command and its arguments.
func Command(args []string, n int, commands ...string) (string, []string, error) {
	if len(args) == 0 {
		return "", nil, Usagef("want one command, %s", or(commands))
	}
	cmd, rest := args[0], args[1:]
	if !slices.Contains(commands, cmd) {
		return "", nil, Usagef("unknown command %q: want %s", cmd, or(commands))
	}
	if len(rest) != n {
		return "", nil, Usagef("%s takes %d argument(s), not %d: %q", cmd, n, len(rest), rest)
	}
	return cmd, rest, nil
}

// or lists choices as a sentence: "a, b or c".
func or(choices []string) string {
	switch len(choices) {
	case 0:
		return "none"
	case 1:
		return choices[0]
	}
	s := choices[0]
	for _, c := range choices[1 : len(choices)-1] {
		s += ", " + c
	}
	return s + " or " + choices[len(choices)-1]
}
