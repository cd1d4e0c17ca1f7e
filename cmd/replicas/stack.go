package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"whoami/internal/command"
	"whoami/internal/dockercli"
	"whoami/internal/probe"
)

// The ports of haproxy.cfg's frontends, inside the balancer's container:
// the service's own (.env SERVICE_PORT) and the statistics page.
// facts_test.go checks that they are haproxy.cfg's.
const (
	servicePort = "8080"
	statsPort   = "8404"
)

// stack is one Compose project of compose.yaml.
type stack struct {
	dir     string   // where compose.yaml is; "" is the current directory
	env     []string // added to the environment of docker compose
	out     io.Writer
	verbose bool // print each step as it begins
	// run runs docker; nil is a process (the unit tests give a fake
	// engine).
	run command.Runner
}

// replica is one whoami container of the stack.
type replica struct {
	ID, Name, Hostname, Health, IP string
	State                          string // running, exited, ...
	Created                        time.Time
}

// compose runs docker compose with args and returns its standard output.
func (s *stack) compose(ctx context.Context, args ...string) (string, error) {
	return s.docker(ctx, append([]string{"compose"}, args...)...)
}

// docker runs docker with args in the stack's folder and environment. An
// interrupt does not cut a command short: it finishes its step, in a
// process group of its own (so that a Ctrl-C reaches this program only),
// and the caller then puts the stack back as it was (restore.go).
func (s *stack) docker(ctx context.Context, args ...string) (string, error) {
	return dockercli.Cmd{Dir: s.dir, Env: s.env, IgnoreInterrupt: true, Runner: s.run}.Run(ctx, args...)
}

// up starts (or scales) the stack and waits until every replica is healthy
// and the balancer sends traffic to exactly these replicas.
func (s *stack) up(ctx context.Context, replicas int) error {
	if _, err := s.compose(ctx, "up", "-d", "--wait", "--scale", fmt.Sprintf("whoami=%d", replicas)); err != nil {
		return err
	}
	return s.waitBalanced(ctx)
}

// waitBalanced waits until the servers HAProxy has UP are the replicas
// Docker runs: Docker's healthcheck and HAProxy's own check and DNS
// refresh are independent, so one can be a second ahead of the other.
func (s *stack) waitBalanced(ctx context.Context) error {
	rs, err := s.replicas(ctx)
	if err != nil {
		return err
	}
	var want []string
	for _, r := range rs {
		want = append(want, net.JoinHostPort(r.IP, servicePort))
	}
	slices.Sort(want)
	var up []string
	err = probe.Until(ctx, time.Minute, "HAProxy to balance over the replicas", func(ctx context.Context) (bool, error) {
		ss, err := s.servers(ctx)
		up = up[:0]
		for _, sv := range ss {
			if sv.Status == "UP" {
				up = append(up, sv.Addr)
			}
		}
		slices.Sort(up)
		return slices.Equal(up, want), err
	})
	if err != nil {
		return fmt.Errorf("%v: HAProxy has %v up, the replicas are %v", err, up, want)
	}
	return nil
}

// down removes every container and network of the stack.
func (s *stack) down(ctx context.Context) error {
	_, err := s.compose(ctx, "down", "--remove-orphans", "--timeout", "10")
	return err
}

// replicas lists the running whoami containers, as Docker sees them.
func (s *stack) replicas(ctx context.Context) ([]replica, error) {
	return s.containers(ctx, "ps", "-q", "whoami")
}

// containers lists the whoami containers that docker compose args prints,
// oldest first.
func (s *stack) containers(ctx context.Context, args ...string) ([]replica, error) {
	ids, err := s.compose(ctx, args...)
	if err != nil || ids == "" {
		return nil, err
	}
	out, err := s.docker(ctx, append([]string{"inspect"}, strings.Fields(ids)...)...)
	if err != nil {
		return nil, err
	}
	var inspected []struct {
		ID      string
		Name    string
		Created time.Time
		Config  struct{ Hostname string }
		State   struct {
			Status string
			Health *struct{ Status string }
		}
		NetworkSettings struct {
			Networks map[string]struct{ IPAddress string }
		}
	}
	if err := json.Unmarshal([]byte(out), &inspected); err != nil {
		return nil, fmt.Errorf("docker inspect: %v", err)
	}
	rs := make([]replica, 0, len(inspected))
	for _, c := range inspected {
		r := replica{ID: c.ID, Name: strings.TrimPrefix(c.Name, "/"), Hostname: c.Config.Hostname, Health: "none",
			State: c.State.Status, Created: c.Created}
		if c.State.Health != nil {
			r.Health = c.State.Health.Status
		}
		for _, n := range c.NetworkSettings.Networks {
			r.IP = n.IPAddress
		}
		rs = append(rs, r)
	}
	slices.SortFunc(rs, func(a, b replica) int { return a.Created.Compare(b.Created) })
	return rs, nil
}

// published returns the 127.0.0.1 address where a port of the balancer is
// published.
func (s *stack) published(ctx context.Context, port string) (string, error) {
	out, err := s.compose(ctx, "port", "lb", port)
	if err != nil {
		return "", err
	}
	return dockercli.Published(out)
}

// url is the balancer's /whoami.
func (s *stack) url(ctx context.Context) (string, error) {
	addr, err := s.published(ctx, servicePort)
	return "http://" + addr + "/whoami", err
}

// statsURL is HAProxy's statistics page.
func (s *stack) statsURL(ctx context.Context) (string, error) {
	addr, err := s.published(ctx, statsPort)
	return "http://" + addr + "/", err
}

// server is one slot of HAProxy's whoami backend, from its statistics.
type server struct {
	Name, Status, Addr string
	Sessions           int // requests sent to it since HAProxy started
}

// servers reads HAProxy's view of the whoami backend from its statistics
// page (CSV).
func (s *stack) servers(ctx context.Context) ([]server, error) {
	url, err := s.statsURL(ctx)
	if err != nil {
		return nil, err
	}
	url += ";csv"
	body, code, err := probe.Get(ctx, http.DefaultClient, url)
	if err != nil || code != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %d %v", url, code, err)
	}
	ss, err := parseServers(body)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %v", url, err)
	}
	return ss, nil
}

// parseServers reads the servers of the whoami backend from HAProxy's
// statistics as CSV: a header line that starts with "# ", then a line per
// frontend, server and backend.
func parseServers(body string) ([]server, error) {
	rows, err := csv.NewReader(strings.NewReader(strings.TrimPrefix(body, "# "))).ReadAll()
	if err != nil {
		return nil, err
	}
	if len(rows) < 1 {
		return nil, errors.New("no header line")
	}
	col := map[string]int{}
	for i, name := range rows[0] {
		col[name] = i
	}
	for _, name := range []string{"pxname", "svname", "status", "addr", "stot"} {
		if _, ok := col[name]; !ok {
			return nil, fmt.Errorf("no column %s in %q", name, rows[0])
		}
	}
	var ss []server
	for _, r := range rows[1:] {
		if r[col["pxname"]] != "whoami" || r[col["svname"]] == "BACKEND" {
			continue
		}
		var n int
		fmt.Sscan(r[col["stot"]], &n)
		ss = append(ss, server{Name: r[col["svname"]], Status: r[col["status"]], Addr: r[col["addr"]], Sessions: n})
	}
	return ss, nil
}
