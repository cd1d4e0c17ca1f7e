package main

import (
	"math"
	"testing"
)

func TestProfileSharesReadsPprofTop(t *testing.T) {
	// The head of `go tool pprof -top -cum` on a BenchmarkServe profile.
	top := `File: whoami.test
Type: cpu
Showing nodes accounting for 4.68s, 80.14% of 5.84s total
      flat  flat%   sum%        cum   cum%
     3.16s 54.11% 54.11%      3.16s 54.11%  internal/runtime/syscall/linux.Syscall6
     0.02s  0.34% 79.11%      2.61s 44.69%  net.(*netFD).Write
     0.01s  0.17% 59.42%      0.39s  6.68%  whoami.(*conn).Read
     0.02s  0.25% 64.48%      0.43s  5.42%  internal/poll.setDeadlineImpl
     0.01s  0.13% 80.35%      0.06s  0.76%  whoami.(*limitedListener).now (partial-inline)
     0.01s  0.13% 69.02%      0.20s  2.52%  net/http.Header.writeSubset
         0     0% 69.02%      0.10s  1.00%  net/http.Header.Clone (inline)
`
	got, err := profileShares(top, 10000)
	if err != nil {
		t.Fatal(err)
	}
	for part, want := range map[string]float64{
		"system calls (read, write, epoll)":                          5411, // flat
		"deadlines (the runtime's timers): the four time-outs":       542,  // cum
		"the header map (its copy at WriteHeader, sorting, writing)": 352,  // two functions, cum
		"the cap's own code (conns.go)":                              30,   // two functions, flat
	} {
		if math.Abs(got[part]-want) > 0.5 {
			t.Errorf("%s: %.1f ns, want %.0f", part, got[part], want)
		}
	}
	if _, err := profileShares("no table here", 1); err == nil {
		t.Error("no error for an output without pprof's table")
	}
}

func TestBenchNsPerOpReadsTheResultLine(t *testing.T) {
	out := "goos: linux\nBenchmarkServe/whoami/conns=64         	  145044	     27230 ns/op\nPASS\n"
	if got, err := benchNsPerOp(out); err != nil || got != 27230 {
		t.Errorf("%v, %v; want 27230", got, err)
	}
	if _, err := benchNsPerOp("PASS\n"); err == nil {
		t.Error("no error for an output without a result")
	}
}
