// Package command is the one way the tools in cmd/ run a program (docker,
// kubectl, git, the cluster's script): a Cmd says what to run, a Runner
// runs it. Exec starts a process; a test gives a tool a Func instead, a
// fake that answers as the program would, so that what the tool decides
// is tested without an engine or a cluster (as kind's exec.Cmder).
package command

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// Cmd is a program to run.
type Cmd struct {
	Name  string
	Args  []string
	Dir   string   // where it runs; "" is the current folder
	Env   []string // added to this process's environment
	Stdin string
	// Stream, if not nil, gets what the program prints on both outputs as
	// it prints it (a build's log, kubectl drain's progress), and Run
	// returns neither; the error still ends with the last lines.
	Stream io.Writer
	// Detach runs the program in a process group of its own, not cut short
	// when the caller's context is cancelled: a Ctrl-C reaches the tool
	// only, and the program finishes its step (bounded by the Runner's
	// time-out), before the tool puts things back as they were.
	Detach bool
}

// String is the command line, as an error names it.
func (c Cmd) String() string { return strings.Join(append([]string{c.Name}, c.Args...), " ") }

// Runner runs c and returns what it printed on standard output, as it is
// (it may be a tar stream), and on standard error, trimmed. An error names the command and ends with the
// last lines of its standard error.
type Runner interface {
	Run(ctx context.Context, c Cmd) (stdout, stderr string, err error)
}

// Func is a Runner made of a function: the tests' fakes.
type Func func(ctx context.Context, c Cmd) (stdout, stderr string, err error)

func (f Func) Run(ctx context.Context, c Cmd) (string, string, error) { return f(ctx, c) }

// Exec runs programs as processes. Timeout, if not zero, bounds each one
// unless the caller's context ends it sooner.
type Exec struct{ Timeout time.Duration }

// Lines is how many lines of a program's standard error an error keeps.
const Lines = 20

func (e Exec) Run(ctx context.Context, c Cmd) (string, string, error) {
	if c.Detach {
		ctx = context.WithoutCancel(ctx)
	}
	if e.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, e.Timeout)
		defer cancel()
	}
	cmd := exec.CommandContext(ctx, c.Name, c.Args...)
	cmd.Dir = c.Dir
	if c.Env != nil {
		cmd.Env = append(os.Environ(), c.Env...)
	}
	if c.Stdin != "" {
		cmd.Stdin = strings.NewReader(c.Stdin)
	}
	if c.Detach {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	}
	// A program that leaves a child holding its outputs (docker's plugins)
	// is not waited for longer than this once it has exited or been killed.
	cmd.WaitDelay = 2 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if c.Stream != nil {
		// One writer for both outputs: os/exec then gives the program one
		// pipe for both, so that their lines keep their order, and writes
		// from one goroutine. The error ends with the end of both.
		both := io.MultiWriter(c.Stream, &stderr)
		cmd.Stdout, cmd.Stderr = both, both
	}
	if err := cmd.Run(); err != nil {
		return "", "", Errorf(c, err, stderr.String())
	}
	return stdout.String(), strings.TrimSpace(stderr.String()), nil
}

// Errorf is the error of c that failed with err, having printed stderr: the
// command, the failure, and the last lines of what it printed.
func Errorf(c Cmd, err error, stderr string) error {
	if tail := LastLines(stderr, Lines); tail != "" {
		return fmt.Errorf("%s: %v: %s", c, err, tail)
	}
	return fmt.Errorf("%s: %v", c, err)
}

// LastLines returns the last n lines of s, trimmed: the end of what a
// program printed.
func LastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
