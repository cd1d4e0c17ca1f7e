package main

import (
	"bufio"
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// profileRow is where one part of the per-request time goes, in the CPU
// profiles of the tutorial's program and of whoami, nanoseconds a request.
type profileRow struct {
	Part             string
	Tutorial, Whoami float64
}

// profileParts name the parts of the request path that tell the two
// programs apart, by the profile's function names (pprof -top -cum); a
// part is the sum of its functions' times, cumulative or flat as said.
var profileParts = []struct {
	part  string
	cum   bool
	match *regexp.Regexp
}{
	{"system calls (read, write, epoll)", false, regexp.MustCompile(`^internal/runtime/syscall/linux\.Syscall6$`)},
	{"deadlines (the runtime's timers): the four time-outs", true, regexp.MustCompile(`^internal/poll\.setDeadlineImpl$`)},
	{"the header map (its copy at WriteHeader, sorting, writing)", true, regexp.MustCompile(`^net/http\.Header\.(Clone|writeSubset)$`)},
	{"sniffing the Content-Type (the tutorial sets none)", true, regexp.MustCompile(`^net/http\.DetectContentType$`)},
	{"the hostname (uname)", true, regexp.MustCompile(`^os\.Hostname$`)},
	{"the cap's own code (conns.go)", false, regexp.MustCompile(`^whoami\.(\(\*limitedListener\)|\(\*conn\)|connContext|newCappedServer\.\(\*limitedListener\))`)},
	{"the clock (time.Now, time.Since)", true, regexp.MustCompile(`^time\.(Now|Since)$`)},
}

// profileConns is the concurrency the profiles are taken at.
const profileConns = 64

// profile runs the whole server in a Go benchmark (BenchmarkServe: the
// server over loopback, its clients in the same process) for the tutorial's
// program and for whoami, each with a CPU profile, and reads where each
// spends its time per request. It tells where whoami's extra time goes.
func (b *bench) profile(ctx context.Context, r *report) error {
	r.ProfileConns = profileConns
	per := map[string]map[string]float64{}
	for _, server := range []string{"tutorial", "whoami"} {
		b.say("go test -bench BenchmarkServe/%s/conns=%d -cpuprofile", server, profileConns)
		bin, prof := filepath.Join(b.work, "whoami.test"), filepath.Join(b.work, server+".prof")
		out, err := exec.CommandContext(ctx, "go", "test", "-run", "^$", "-bench", fmt.Sprintf("^BenchmarkServe$/^%s$/^conns=%d$", server, profileConns),
			"-benchtime", "3s", "-cpu", "1", "-cpuprofile", prof, "-o", bin, ".").CombinedOutput()
		if err != nil {
			return fmt.Errorf("go test -bench BenchmarkServe: %v: %s", err, out)
		}
		nsPerOp, err := benchNsPerOp(string(out))
		if err != nil {
			return err
		}
		top, err := exec.CommandContext(ctx, "go", "tool", "pprof", "-top", "-cum", "-nodecount=100000", bin, prof).Output()
		if err != nil {
			return fmt.Errorf("go tool pprof: %v", err)
		}
		per[server], err = profileShares(string(top), nsPerOp)
		if err != nil {
			return err
		}
		per[server]["total"] = nsPerOp
	}
	for _, p := range profileParts {
		r.Profile = append(r.Profile, profileRow{Part: p.part, Tutorial: per["tutorial"][p.part], Whoami: per["whoami"][p.part]})
	}
	r.Profile = append(r.Profile, profileRow{Part: "a request, in all (ns/op)", Tutorial: per["tutorial"]["total"], Whoami: per["whoami"]["total"]})
	return nil
}

// benchNsPerOp reads the ns/op of go test -bench's one result line.
func benchNsPerOp(out string) (float64, error) {
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) >= 4 && strings.HasPrefix(f[0], "BenchmarkServe/") && f[3] == "ns/op" {
			return strconv.ParseFloat(f[2], 64)
		}
	}
	return 0, fmt.Errorf("no ns/op in go test's output:\n%s", out)
}

// profileShares reads pprof -top's table (flat flat% sum% cum cum% name)
// and returns each part's time per request: its share of the samples times
// nsPerOp.
func profileShares(top string, nsPerOp float64) (map[string]float64, error) {
	shares := map[string]float64{}
	seen := false
	sc := bufio.NewScanner(strings.NewReader(top))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 6 || !strings.HasSuffix(f[1], "%") || !strings.HasSuffix(f[4], "%") {
			continue
		}
		flat, err1 := strconv.ParseFloat(strings.TrimSuffix(f[1], "%"), 64)
		cum, err2 := strconv.ParseFloat(strings.TrimSuffix(f[4], "%"), 64)
		if err1 != nil || err2 != nil {
			continue
		}
		seen = true
		name := f[5] // then, maybe, (inline)
		for _, p := range profileParts {
			if p.match.MatchString(name) {
				share := flat
				if p.cum {
					share = cum
				}
				shares[p.part] += share / 100 * nsPerOp
			}
		}
	}
	if !seen {
		return nil, fmt.Errorf("no table in pprof's output:\n%s", top)
	}
	return shares, nil
}
