package main

import (
	"bytes"
	"slices"
	"testing"
	"time"

	"whoami/internal/cli/clitest"
)

// The unit tests: what the tool decides and prints without an engine (the
// e2e tests drive the real stack).

func TestTheCommandLine(t *testing.T) {
	clitest.Check(t, "replicas", run,
		clitest.Case{Args: nil, Code: 2, Stderr: "replicas: want one command, demo or rolling-restart (see replicas -h)\n"},
		clitest.Case{Args: []string{"demo", "rolling-restart"}, Code: 2, Stderr: "replicas: demo takes 0 argument(s)"},
		clitest.Case{Args: []string{"restart"}, Code: 2, Stderr: `replicas: unknown command "restart"`},
		clitest.Case{Args: []string{"-n", "0", "demo"}, Code: 2, Stderr: "replicas: -n and -replicas must be at least 1"},
		clitest.Case{Args: []string{"demo", "-n", "0"}, Code: 2, Stderr: "replicas: -n and -replicas must be at least 1"},
		clitest.Case{Args: []string{"demo", "-replicas", "0"}, Code: 2, Stderr: "replicas: -n and -replicas must be at least 1"},
		clitest.Case{Args: []string{"rolling-restart", "-clients", "-1"}, Code: 2, Stderr: "replicas: -n and -replicas must be at least 1, -clients at least 0"},
		clitest.Case{Args: []string{"rolling-restart", "-h"}, Code: 0, Stdout: "Usage: replicas "},
		clitest.Case{Args: []string{"demo", "-timeout=0"}, Code: 2, Stderr: "replicas: -n and -replicas must be at least 1, -clients at least 0, -timeout more than 0"},
	)
}

// What HAProxy 2.6 serves at its statistics page's ;csv, cut to the
// columns that matter and a few around them.
const statsCSV = `# pxname,svname,qcur,scur,stot,status,weight,addr,agent_status
stats,FRONTEND,,1,12,OPEN,,,
web,FRONTEND,,0,90,OPEN,,,
whoami,whoami1,0,0,30,UP,1,172.18.0.3:8080,
whoami,whoami2,0,0,31,DOWN,1,172.18.0.4:8080,
whoami,whoami3,0,0,0,MAINT,1,,
whoami,BACKEND,0,0,61,UP,2,,
`

func TestParseServers(t *testing.T) {
	ss, err := parseServers(statsCSV)
	if err != nil {
		t.Fatal(err)
	}
	want := []server{
		{Name: "whoami1", Status: "UP", Addr: "172.18.0.3:8080", Sessions: 30},
		{Name: "whoami2", Status: "DOWN", Addr: "172.18.0.4:8080", Sessions: 31},
		{Name: "whoami3", Status: "MAINT"},
	}
	if !slices.Equal(ss, want) {
		t.Errorf("parseServers:\n%+v\nwant\n%+v", ss, want)
	}
	for _, bad := range []string{"", "# pxname,svname\nwhoami,whoami1\n", "# a,b\n1,2,3\n"} {
		if ss, err := parseServers(bad); err == nil {
			t.Errorf("parseServers(%q) = %v, want an error", bad, ss)
		}
	}
}

func TestRestartResult(t *testing.T) {
	r := &restart{duration: 12 * time.Second, clients: 4, steps: []step{{firstAnswer: 1500 * time.Millisecond}, {firstAnswer: time.Second}}}
	res := r.result()
	if res.Replicas != 2 || res.Seconds != 12 || res.Clients != 4 || res.Requests != 0 || res.Failed != 0 ||
		!slices.Equal(res.FirstAnswer, []float64{1.5, 1}) {
		t.Errorf("result %+v", res)
	}
	var out bytes.Buffer
	r.print(&out)
	if out.String() != "\nrolling restart of 2 replicas: 12.0 s\n" {
		t.Errorf("print without a load: %q", out.String())
	}
}

func TestBoolOrder(t *testing.T) {
	bs := []bool{true, false, true, false}
	slices.SortFunc(bs, boolOrder)
	if !slices.Equal(bs, []bool{false, false, true, true}) {
		t.Errorf("sorted %v", bs)
	}
}
