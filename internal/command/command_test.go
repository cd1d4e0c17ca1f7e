package command

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestLastLines(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{
		{"a\nb\nc\n", 2, "b\nc"},
		{"a\nb\n", 5, "a\nb"},
		{"\n  only  \n\n", 1, "only"},
		{"", 3, ""},
	} {
		if got := LastLines(tc.in, tc.n); got != tc.want {
			t.Errorf("LastLines(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
}

// Real processes: sh is on every machine the tools run on.
func TestExec(t *testing.T) {
	ctx := t.Context()
	out, warn, err := Exec{}.Run(ctx, Cmd{Name: "sh", Args: []string{"-c", `cat; echo " $X"; echo careful >&2`}, Stdin: "in", Env: []string{"X=env"}, Dir: "/"})
	if out != "in env\n" || warn != "careful" || err != nil {
		t.Errorf("Run = %q, %q, %v; want the output as printed, standard error trimmed", out, warn, err)
	}
	_, _, err = Exec{}.Run(ctx, Cmd{Name: "sh", Args: []string{"-c", `for i in $(seq 30); do echo line $i >&2; done; exit 3`}})
	if msg := err.Error(); !strings.HasPrefix(msg, "sh -c for i in") || !strings.Contains(msg, "exit status 3: line 11\n") || !strings.HasSuffix(msg, "line 30") {
		t.Errorf("the error %q, want the command, its failure and the last 20 lines", msg)
	}
	var stream strings.Builder
	out, _, err = Exec{}.Run(ctx, Cmd{Name: "sh", Args: []string{"-c", "echo one; echo two >&2; exit 1"}, Stream: &stream})
	if out != "" || stream.String() != "one\ntwo\n" || err == nil || !strings.HasSuffix(err.Error(), "exit status 1: one\ntwo") {
		t.Errorf("streamed: %q, %q, %v; want both outputs streamed, and at the error's end", out, stream.String(), err)
	}
	var long strings.Builder // both outputs at once, and a lot: the race detector watches
	_, _, err = Exec{}.Run(ctx, Cmd{Name: "sh", Args: []string{"-c", "for i in $(seq 2000); do echo out $i; echo err $i >&2; done"}, Stream: &long})
	if lines := strings.Count(long.String(), "\n"); err != nil || lines != 4000 || !strings.HasSuffix(long.String(), "out 2000\nerr 2000\n") {
		t.Errorf("streamed %d lines (%v), want 4000 in the order printed", lines, err)
	}
	for _, c := range []Cmd{{Name: "sleep", Args: []string{"10"}}, {Name: "sh", Args: []string{"-c", "sleep 10 & sleep 10"}}} {
		t0 := time.Now()
		_, _, err = Exec{Timeout: 100 * time.Millisecond}.Run(ctx, c)
		if err == nil || time.Since(t0) > 5*time.Second {
			t.Errorf("%s past the time-out: %v after %v, want it killed, and not waited for its child", c, err, time.Since(t0))
		}
	}
}

func TestDetachedFinishesItsStep(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if out, _, err := (Exec{}).Run(ctx, Cmd{Name: "sh", Args: []string{"-c", "sleep 0.2; echo done"}, Detach: true}); out != "done\n" || err != nil {
		t.Errorf("detached, its context cancelled: %q, %v; want it to finish", out, err)
	}
	if _, _, err := (Exec{}).Run(ctx, Cmd{Name: "sh", Args: []string{"-c", "echo done"}}); err == nil {
		t.Error("not detached, its context cancelled: no error")
	}
}

func TestFunc(t *testing.T) {
	var got Cmd
	f := Func(func(_ context.Context, c Cmd) (string, string, error) { got = c; return "", "", errors.New("x") })
	var r Runner = f
	if _, _, err := r.Run(t.Context(), Cmd{Name: "kubectl", Args: []string{"get", "pods"}}); err == nil || got.String() != "kubectl get pods" {
		t.Errorf("Func ran %q, %v", got, err)
	}
}
