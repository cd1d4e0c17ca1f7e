package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"whoami/internal/command"
)

// engine is a fake Docker engine running one Compose project of
// compose.yaml, for the unit tests of what the tool decides: it answers
// the docker commands stack runs as Docker would, and its HAProxy (an
// HTTP server of the test) balances over the running, healthy replicas and
// shows them on its statistics page. A new replica is "starting" for its
// first few health checks.
type engine struct {
	mu         sync.Mutex
	replicas   []*container // oldest first
	next       int
	lb         *httptest.Server
	turn       int
	answered   map[string]bool // hostnames that answered through the balancer
	violations []string        // what Docker or a user would have seen go wrong
	ran        []string        // the commands, as run
	starting   int             // health checks a new replica fails first
	noNew      bool            // compose up starts nothing
}

type container struct {
	id, name, hostname, ip string
	state, health          string
	created                time.Time
	checks                 int
	upIn                   int // HAProxy's own checks until it marks the replica UP, once healthy
}

// check is Docker's health check, as an inspect sees it: a new replica is
// healthy after its first starting checks.
func (r *container) check(starting int) {
	if r.checks++; r.health == "starting" && r.checks > starting {
		r.health = "healthy"
	}
}

// newEngine starts a project with n healthy replicas.
func newEngine(t *testing.T, n int) *engine {
	e := &engine{answered: map[string]bool{}, starting: 2}
	e.lb = httptest.NewServer(http.HandlerFunc(e.serve))
	t.Cleanup(e.lb.Close)
	for range n {
		e.start().health = "healthy"
	}
	return e
}

func (e *engine) stack() *stack { return &stack{run: command.Func(e.run)} }

// start creates and starts one replica. e.mu is held.
func (e *engine) start() *container {
	e.next++
	c := &container{id: fmt.Sprintf("%064x", e.next), name: fmt.Sprintf("whoami-whoami-%d", e.next),
		hostname: fmt.Sprintf("host%d", e.next), ip: fmt.Sprintf("172.18.0.%d", e.next+1),
		state: "running", health: "starting", created: time.Unix(int64(e.next), 0), upIn: 2}
	e.replicas = append(e.replicas, c)
	return c
}

// serving are the replicas HAProxy sends requests to. e.mu is held.
func (e *engine) serving() []*container {
	var cs []*container
	for _, c := range e.replicas {
		if c.state == "running" && c.health == "healthy" {
			cs = append(cs, c)
		}
	}
	return cs
}

func (e *engine) serve(w http.ResponseWriter, r *http.Request) {
	e.mu.Lock()
	defer e.mu.Unlock()
	cs := e.serving()
	if r.URL.Path == "/;csv" {
		fmt.Fprintln(w, "# pxname,svname,status,addr,stot")
		for i, c := range cs {
			status := "UP"
			if c.upIn > 0 { // HAProxy checks on its own clock
				c.upIn--
				status = "DOWN"
			}
			fmt.Fprintf(w, "whoami,whoami%d,%s,%s:8080,0\n", i+1, status, c.ip)
		}
		return
	}
	if len(cs) == 0 {
		http.Error(w, "no server is available", http.StatusServiceUnavailable)
		return
	}
	c := cs[e.turn%len(cs)]
	e.turn++
	e.answered[c.hostname] = true
	fmt.Fprintln(w, c.hostname)
}

func (e *engine) find(id string) *container {
	for _, c := range e.replicas {
		if c.id == id {
			return c
		}
	}
	return nil
}

// run answers one docker command.
func (e *engine) run(_ context.Context, c command.Cmd) (string, string, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	line := strings.Join(c.Args, " ")
	e.ran = append(e.ran, line)
	fail := func(msg string) (string, string, error) {
		return "", msg, command.Errorf(c, fmt.Errorf("exit status 1"), msg)
	}
	if c.Name != "docker" || !c.Detach {
		return fail("want docker, detached from an interrupt")
	}
	a := c.Args
	switch {
	case line == "compose ps -q whoami", line == "compose ps -a -q whoami":
		var ids []string
		for _, r := range e.replicas {
			if r.state == "running" || strings.Contains(line, "-a") {
				ids = append(ids, r.id)
			}
		}
		return strings.Join(ids, "\n") + "\n", "", nil
	case len(a) == 4 && a[0] == "inspect" && a[1] == "-f":
		r := e.find(a[3])
		if r == nil {
			return fail("no such container")
		}
		r.check(e.starting)
		return r.health + "\n", "", nil
	case a[0] == "inspect":
		var out []map[string]any
		for _, id := range a[1:] {
			r := e.find(id)
			if r == nil {
				return fail("no such container")
			}
			r.check(e.starting)
			out = append(out, map[string]any{"ID": r.id, "Name": "/" + r.name, "Created": r.created,
				"Config":          map[string]any{"Hostname": r.hostname},
				"State":           map[string]any{"Status": r.state, "Health": map[string]any{"Status": r.health}},
				"NetworkSettings": map[string]any{"Networks": map[string]any{"whoami_default": map[string]any{"IPAddress": r.ip}}}})
		}
		b, _ := json.Marshal(out)
		return string(b), "", nil
	case strings.HasPrefix(line, "compose up -d --no-deps --no-recreate --scale whoami="), strings.HasPrefix(line, "compose up -d --wait --scale whoami="):
		var n int
		fmt.Sscanf(line[strings.Index(line, "whoami=")+len("whoami="):], "%d", &n)
		running := 0
		for _, r := range e.replicas {
			if r.state == "running" {
				running++
			}
		}
		for ; running < n && !e.noNew; running++ {
			e.start()
		}
		return "", "", nil
	case a[0] == "stop" && len(a) == 2:
		r := e.find(a[1])
		if r == nil {
			return fail("no such container")
		}
		// A rolling restart stops an old replica once its replacement
		// answers through the balancer: capacity never drops.
		if newest := e.replicas[len(e.replicas)-1]; newest != r && !e.answered[newest.hostname] {
			e.violations = append(e.violations, fmt.Sprintf("stopped %s before %s answered through the balancer", r.name, newest.name))
		}
		r.state = "exited"
		return "", "", nil
	case a[0] == "rm":
		id := a[len(a)-1]
		r := e.find(id)
		if r == nil {
			return fail("no such container")
		}
		if r.state == "running" && a[1] != "-f" {
			return fail("cannot remove a running container: stop it first")
		}
		e.replicas = slices.DeleteFunc(e.replicas, func(c *container) bool { return c == r })
		return "", "", nil
	case line == "compose port lb 8080", line == "compose port lb 8404":
		return e.lb.Listener.Addr().String() + "\n", "", nil
	}
	return fail("the fake engine does not know " + line)
}

// running are the running replicas' names, oldest first.
func (e *engine) running() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var names []string
	for _, r := range e.replicas {
		if r.state == "running" {
			names = append(names, r.name)
		}
	}
	return names
}

// What an interrupt can leave, at any step of a rolling restart or a
// demo, and what restore makes of it: n running, healthy, balanced
// replicas, keeping the newest healthy ones.
func TestRestoreUndoesWhatAnInterruptLeft(t *testing.T) {
	for _, tc := range []struct {
		name string
		set  func(e *engine) // from 3 healthy replicas 1, 2 and 3
		did  string
		want []string
	}{
		{"nothing", func(*engine) {}, "nothing to undo", []string{"whoami-whoami-1", "whoami-whoami-2", "whoami-whoami-3"}},
		{"a replica stopped, not removed", func(e *engine) { e.start().health = "healthy"; e.replicas[0].state = "exited" },
			"removed the stopped whoami-whoami-1", []string{"whoami-whoami-2", "whoami-whoami-3", "whoami-whoami-4"}},
		{"a new replica not healthy yet", func(e *engine) { e.start() },
			"undid the start of whoami-whoami-4", []string{"whoami-whoami-1", "whoami-whoami-2", "whoami-whoami-3"}},
		{"a new replica healthy, the old one not stopped", func(e *engine) { e.start().health = "healthy" },
			"finished the replacement of whoami-whoami-1", []string{"whoami-whoami-2", "whoami-whoami-3", "whoami-whoami-4"}},
		{"a replica missing", func(e *engine) { e.replicas = e.replicas[1:] },
			"started 1 replicas", []string{"whoami-whoami-2", "whoami-whoami-3", "whoami-whoami-4"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEngine(t, 3)
			tc.set(e)
			// After an interrupt: the context restore is given has ended.
			interrupted, cancel := context.WithCancel(t.Context())
			cancel()
			did, err := e.stack().restore(interrupted, 3)
			if err != nil || did != tc.did {
				t.Errorf("restore: %q, %v; want %q", did, err, tc.did)
			}
			if got := e.running(); !slices.Equal(got, tc.want) {
				t.Errorf("running after restore: %v, want %v", got, tc.want)
			}
			e.mu.Lock()
			defer e.mu.Unlock()
			for _, r := range e.replicas {
				if r.upIn > 0 {
					t.Errorf("restore returned before HAProxy had %s up", r.name)
				}
			}
		})
	}
}

// Each old replica is replaced once, by a new one that answered through
// the balancer before the old one was stopped.
func TestRollingRestartReplacesEachReplicaOnceWithoutDroppingCapacity(t *testing.T) {
	e := newEngine(t, 3)
	r, err := e.stack().rollingRestart(t.Context(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := e.running(), []string{"whoami-whoami-4", "whoami-whoami-5", "whoami-whoami-6"}; !slices.Equal(got, want) {
		t.Errorf("running after the restart: %v, want %v", got, want)
	}
	if n := len(e.replicas); n != 3 {
		t.Errorf("%d containers after the restart, want the 3 running: the old ones removed", n)
	}
	for i, st := range r.steps {
		if want := fmt.Sprintf("whoami-whoami-%d", i+1); st.old.Name != want || st.new.Name != fmt.Sprintf("whoami-whoami-%d", i+4) {
			t.Errorf("step %d replaced %s by %s, want %s by whoami-whoami-%d", i, st.old.Name, st.new.Name, want, i+4)
		}
	}
	if len(e.violations) > 0 {
		t.Errorf("%v\ncommands: %q", e.violations, e.ran)
	}
}

func TestReplaceFailsWithoutANewReplica(t *testing.T) {
	e := newEngine(t, 3)
	e.noNew = true
	_, err := e.stack().rollingRestart(t.Context(), 0)
	if err == nil || !strings.Contains(err.Error(), "started no new replica") {
		t.Errorf("rolling restart when compose up starts nothing: %v", err)
	}
	if got := e.running(); len(got) != 3 {
		t.Errorf("%v running, want the 3 replicas untouched", got)
	}
}

func TestReplaceStopsAtAnUnhealthyReplica(t *testing.T) {
	e := newEngine(t, 2)
	e.starting = 1 << 30 // never healthy...
	go func() {          // ...and unhealthy once checked
		for {
			e.mu.Lock()
			if len(e.replicas) == 3 && e.replicas[2].checks > 0 {
				e.replicas[2].health = "unhealthy"
				e.mu.Unlock()
				return
			}
			e.mu.Unlock()
			time.Sleep(time.Millisecond)
		}
	}()
	_, err := e.stack().rollingRestart(t.Context(), 0)
	if err == nil || !strings.Contains(err.Error(), "replica whoami-whoami-3 is unhealthy") {
		t.Errorf("rolling restart with an unhealthy new replica: %v", err)
	}
	if got := e.running(); !slices.Contains(got, "whoami-whoami-1") {
		t.Errorf("%v running: the old replica was stopped for an unhealthy one", got)
	}
}
