package main

import (
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
)

// The sizing of the service: the memory limit read from the cgroup file
// system (memory.go), and the cap and Go's soft limit worked out from it,
// the environment and the open-file limit (http.go's sizeLimits).

// manyFiles is an open-file limit that limits nothing here.
const manyFiles = 1 << 20

// The cgroup file systems below are laid out as each kernel writes them,
// the /proc files copied from real machines (a container of this project's
// on cgroup v1, trimmed).

// dockerV1 is a process's cgroup as a Docker container sees it under cgroup
// v1: its own cgroup mounted at the top of each hierarchy, read-only.
func dockerV1(limit string) map[string]string {
	return map[string]string{
		"proc/self/cgroup": "9:name=systemd:/docker/abc\n8:pids:/docker/abc\n4:memory:/docker/abc\n1:cpu:/docker/abc\n0::/docker/abc\n",
		"proc/self/mountinfo": "82 81 0:48 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime - tmpfs tmpfs rw,mode=755\n" +
			"83 82 0:29 /docker/abc /sys/fs/cgroup/cpu ro,nosuid,nodev,noexec,relatime - cgroup cgroup rw,cpu\n" +
			"86 82 0:32 /docker/abc /sys/fs/cgroup/memory ro,nosuid,nodev,noexec,relatime - cgroup cgroup rw,memory\n" +
			"91 82 0:37 /docker/abc /sys/fs/cgroup/systemd ro,nosuid,nodev,noexec,relatime - cgroup cgroup rw,name=systemd\n",
		"sys/fs/cgroup/memory/memory.limit_in_bytes": limit,
	}
}

// namespacedV2 is a process's cgroup as a container sees it under cgroup
// v2, in a cgroup namespace of its own (Docker's and containerd's default
// there).
func namespacedV2(limit string) map[string]string {
	return map[string]string{
		"proc/self/cgroup":         "0::/\n",
		"proc/self/mountinfo":      "1234 1233 0:26 / /sys/fs/cgroup ro,nosuid,nodev,noexec,relatime - cgroup2 cgroup rw,nsdelegate,memory_recursiveprot\n",
		"sys/fs/cgroup/memory.max": limit,
	}
}

// cgroupFS lays out files under a new directory, the root of /proc and
// /sys/fs/cgroup as cgroupMemoryLimit reads them.
func cgroupFS(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for name, content := range files {
		f := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(f), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f, []byte(content+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestTheMemoryLimitIsReadAsEachKernelWritesIt(t *testing.T) {
	const (
		v1Host  = "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
		v2Host  = "29 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate\n"
		noneV1  = "9223372036854771712" // LONG_MAX rounded down to a 4 KiB page: a 64-bit kernel's "no limit"
		none64K = "9223372036854710272" // the same with 64 KiB pages (arm64, ppc64le kernels)
		none32  = "8796093018112"       // LONG_MAX pages of 4 KiB: a 32-bit kernel's (arm/v7)
	)
	for _, tt := range []struct {
		name     string
		files    map[string]string
		want     int64
		wantFile string // "": no limit found
	}{
		{"cgroup v1 in a Docker container", dockerV1("67108864"), 64 << 20, "/sys/fs/cgroup/memory/memory.limit_in_bytes"},
		{"cgroup v2 in a cgroup namespace", namespacedV2("67108864"), 64 << 20, "/sys/fs/cgroup/memory.max"},
		{"a limit of 2 GiB or more", namespacedV2("4294967296"), 4 << 30, "/sys/fs/cgroup/memory.max"},
		{"v1, no limit, 64-bit kernel", dockerV1(noneV1), 0, ""},
		{"v1, no limit, 64-bit kernel with 64 KiB pages", dockerV1(none64K), 0, ""},
		{"v1, no limit, 32-bit kernel", dockerV1(none32), 0, ""},
		{"v1, 8 TiB less a page: a limit", dockerV1("8796093018111"), 8796093018111, "/sys/fs/cgroup/memory/memory.limit_in_bytes"},
		{"v2, no limit", namespacedV2("max"), 0, ""},
		{"no cgroup file system", nil, 0, ""},
		{"no mountinfo", map[string]string{"proc/self/cgroup": "0::/\n", "sys/fs/cgroup/memory.max": "67108864"}, 0, ""},
		{"a limit that is no number", namespacedV2("64M"), 0, ""},
		// The whole hierarchy seen, as on a host or with the host's cgroup
		// namespace: every level read, the smallest limit wins, whichever
		// level it is on.
		{"v1, the pod's limit on the container, a larger one above", map[string]string{
			"proc/self/cgroup":                                            "4:memory:/kubepods/pod1/c1\n",
			"proc/self/mountinfo":                                         v1Host,
			"sys/fs/cgroup/memory/memory.limit_in_bytes":                  noneV1,
			"sys/fs/cgroup/memory/kubepods/pod1/memory.limit_in_bytes":    "134217728",
			"sys/fs/cgroup/memory/kubepods/pod1/c1/memory.limit_in_bytes": "67108864",
		}, 64 << 20, "/sys/fs/cgroup/memory/kubepods/pod1/c1/memory.limit_in_bytes"},
		{"v2, a parent's limit smaller than its child's", map[string]string{
			"proc/self/cgroup":                          "0::/kubepods/pod1/c1\n",
			"proc/self/mountinfo":                       v2Host,
			"sys/fs/cgroup/kubepods/memory.max":         "268435456",
			"sys/fs/cgroup/kubepods/pod1/memory.max":    "67108864",
			"sys/fs/cgroup/kubepods/pod1/c1/memory.max": "134217728",
		}, 64 << 20, "/sys/fs/cgroup/kubepods/pod1/memory.max"},
		{"the memory controller mounted with another", map[string]string{
			"proc/self/cgroup":    "3:cpu,memory:/app\n2:pids:/app\n",
			"proc/self/mountinfo": "40 31 0:33 / /sys/fs/cgroup/cpu,memory rw,relatime - cgroup cgroup rw,cpu,memory\n",
			"sys/fs/cgroup/cpu,memory/app/memory.limit_in_bytes": "67108864",
		}, 64 << 20, "/sys/fs/cgroup/cpu,memory/app/memory.limit_in_bytes"},
		{"a mount point with a space, escaped", map[string]string{
			"proc/self/cgroup":    "0::/\n",
			"proc/self/mountinfo": `29 23 0:26 / /cg\040roups rw - cgroup2 cgroup2 rw` + "\n",
			"cg roups/memory.max": "67108864",
		}, 64 << 20, "/cg roups/memory.max"},
		{"v1's memory controller beside a v2 line (hybrid): v1 wins", map[string]string{
			"proc/self/cgroup":                               "4:memory:/app\n0::/app\n",
			"proc/self/mountinfo":                            v2Host + v1Host,
			"sys/fs/cgroup/memory/app/memory.limit_in_bytes": "67108864",
			"sys/fs/cgroup/app/memory.max":                   "33554432",
		}, 64 << 20, "/sys/fs/cgroup/memory/app/memory.limit_in_bytes"},
		{"a cgroup outside what the mount shows: its top is read", map[string]string{
			"proc/self/cgroup":                   "0::/../../elsewhere\n",
			"proc/self/mountinfo":                "1234 1233 0:26 /mine /sys/fs/cgroup ro - cgroup2 cgroup rw\n",
			"sys/fs/cgroup/memory.max":           "67108864",
			"sys/fs/cgroup/elsewhere/memory.max": "1048576",
		}, 64 << 20, "/sys/fs/cgroup/memory.max"},
		{"a mount whose top only starts like the cgroup's path", map[string]string{
			"proc/self/cgroup":                               "4:memory:/docker/abcdef\n",
			"proc/self/mountinfo":                            "86 82 0:32 /docker/abc /sys/fs/cgroup/memory ro - cgroup cgroup rw,memory\n",
			"sys/fs/cgroup/memory/memory.limit_in_bytes":     "67108864",
			"sys/fs/cgroup/memory/def/memory.limit_in_bytes": "1048576",
		}, 64 << 20, "/sys/fs/cgroup/memory/memory.limit_in_bytes"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			n, file, ok := cgroupMemoryLimit(cgroupFS(t, tt.files))
			if ok != (tt.wantFile != "") || n != tt.want || file != tt.wantFile {
				t.Errorf("limit %d from %q (found: %v); want %d from %q", n, file, ok, tt.want, tt.wantFile)
			}
		})
	}
}

func TestTheCapFollowsTheContainersMemoryLimit(t *testing.T) {
	if limit := debug.SetMemoryLimit(-1); limit != math.MaxInt64 {
		t.Fatalf("this test process has a Go memory limit (%d): unset GOMEMLIMIT to run it", limit)
	}
	// The expected caps are what TestConnectionMemory measured a connection
	// to cost at worst (36 KB, one that trickles 15 KB of headers), with
	// room to spare: at 64 MiB, 614 such connections take 22 MB, and the
	// container peaked at 70% of its limit under the floods of
	// imagetest/faults_test.go.
	for _, tt := range []struct {
		name                 string
		files                map[string]string
		vars                 map[string]string
		wantConns            int
		wantGo               int64
		wantFrom, wantGoFrom string
	}{
		{"cgroup v1, the pod's 64 MiB", dockerV1("67108864"), nil, 614, 46976204, "go_memory_limit", "memory_limit"},
		{"cgroup v2, the pod's 64 MiB", namespacedV2("67108864"), nil, 614, 46976204, "go_memory_limit", "memory_limit"},
		{"cgroup v2, 256 MiB", namespacedV2("268435456"), nil, 3481, 187904819, "go_memory_limit", "memory_limit"},
		{"cgroup v2, 4 GiB", namespacedV2("4294967296"), nil, 60825, 3006477107, "go_memory_limit", "memory_limit"},
		{"cgroup v1, 16 MiB: too small to be of use, still a few", dockerV1("16777216"), nil, 16, 11744051, "go_memory_limit", "memory_limit"},
		{"cgroup v1, no limit", dockerV1("9223372036854771712"), nil, 10000, math.MaxInt64, "default", "none"},
		{"cgroup v1 of a 32-bit kernel, no limit", dockerV1("8796093018112"), nil, 10000, math.MaxInt64, "default", "none"},
		{"cgroup v2, no limit", namespacedV2("max"), nil, 10000, math.MaxInt64, "default", "none"},
		{"no cgroup file system", nil, nil, 10000, math.MaxInt64, "default", "none"},
		// GOMEMLIMIT=off leaves Go without a soft limit, as this test
		// process is (the runtime, not getenv, says what the limit is):
		// the cap still comes from the container's.
		{"GOMEMLIMIT=off in 64 MiB", dockerV1("67108864"), map[string]string{"GOMEMLIMIT": "off"}, 614, math.MaxInt64, "memory_limit", "GOMEMLIMIT"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			lim, err := sizeLimits(nil, env(tt.vars), cgroupFS(t, tt.files), manyFiles)
			if err != nil {
				t.Fatal(err)
			}
			if lim.maxConns != tt.wantConns || lim.maxConnsFrom != tt.wantFrom || lim.goMemory != tt.wantGo || lim.goMemoryFrom != tt.wantGoFrom {
				t.Errorf("cap %d from %s, Go's limit %d from %s; want %d from %s, %d from %s",
					lim.maxConns, lim.maxConnsFrom, lim.goMemory, lim.goMemoryFrom, tt.wantConns, tt.wantFrom, tt.wantGo, tt.wantGoFrom)
			}
		})
	}
}

func TestTheCapComesFromTheFlagThenMAX_CONNSThenTheMemoryLimit(t *testing.T) {
	pod := cgroupFS(t, dockerV1("67108864"))
	for _, tt := range []struct {
		name     string
		flag     *int
		vars     map[string]string
		want     int
		wantFrom string
	}{
		{"the flag", new(7), map[string]string{"MAX_CONNS": "9"}, 7, "-max-conns"},
		{"MAX_CONNS", nil, map[string]string{"MAX_CONNS": "9"}, 9, "MAX_CONNS"},
		{"the memory limit", nil, nil, 614, "go_memory_limit"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			lim, err := sizeLimits(tt.flag, env(tt.vars), pod, manyFiles)
			if err != nil || lim.maxConns != tt.want || lim.maxConnsFrom != tt.wantFrom {
				t.Errorf("cap %d from %s, %v; want %d from %s", lim.maxConns, lim.maxConnsFrom, err, tt.want, tt.wantFrom)
			}
		})
	}
}

func TestTheCapFitsTheOpenFileLimit(t *testing.T) {
	// Each connection is a file, and so is each one waiting for room: the
	// cap leaves those and fileReserve for the rest, whatever sized it.
	pod := cgroupFS(t, dockerV1("67108864"))
	for _, tt := range []struct {
		name     string
		flag     *int
		vars     map[string]string
		files    uint64
		want     int
		wantFrom string
	}{
		{"ulimit -n 256, sized by memory", nil, nil, 256, 256 - 16 - 64, "open_file_limit"},
		{"ulimit -n 256, MAX_CONNS", nil, map[string]string{"MAX_CONNS": "10000"}, 256, 256 - 16 - 64, "open_file_limit"},
		{"ulimit -n 256, the flag", new(1000), nil, 256, 256 - 16 - 64, "open_file_limit"},
		{"ulimit -n 1024: memory is the smaller", nil, nil, 1024, 614, "go_memory_limit"},
		{"the cap just fits", new(944), nil, 1024, 944, "-max-conns"},
		{"one file too few", new(945), nil, 1024, 944, "open_file_limit"},
		{"ulimit -n 64: one connection all the same", nil, nil, 64, 1, "open_file_limit"},
		{"an infinite limit", nil, nil, math.MaxUint64, 614, "go_memory_limit"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			lim, err := sizeLimits(tt.flag, env(tt.vars), pod, tt.files)
			if err != nil || lim.maxConns != tt.want || lim.maxConnsFrom != tt.wantFrom || lim.files != tt.files {
				t.Errorf("cap %d from %s (files %d), %v; want %d from %s", lim.maxConns, lim.maxConnsFrom, lim.files, err, tt.want, tt.wantFrom)
			}
		})
	}
}

func TestGoGetsItsShareOfTheContainersLimit(t *testing.T) {
	// setMemoryLimit sets what sizeLimits found, and returns what the
	// runtime has then: what the startup line reports.
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1))
	debug.SetMemoryLimit(math.MaxInt64)
	lim, err := sizeLimits(nil, env(nil), cgroupFS(t, dockerV1("67108864")), manyFiles)
	if err != nil {
		t.Fatal(err)
	}
	if got := setMemoryLimit(lim); got != 46976204 || debug.SetMemoryLimit(-1) != 46976204 {
		t.Errorf("the runtime's limit is %d (returned %d), want 70%% of 64 MiB: 46976204", debug.SetMemoryLimit(-1), got)
	}
	// GOMEMLIMIT set, or no limit found: the runtime's own stays.
	for _, lim := range []limits{{goMemory: 1 << 30, goMemoryFrom: "GOMEMLIMIT"}, {goMemory: math.MaxInt64, goMemoryFrom: "none"}} {
		debug.SetMemoryLimit(123 << 20)
		if got := setMemoryLimit(lim); got != 123<<20 {
			t.Errorf("%s: the runtime's limit became %d, want it left at %d", lim.goMemoryFrom, got, 123<<20)
		}
	}
}

// The documented values, pinned: a change to one must be a decision, made
// here and in docs/reliability.md too.
func TestTheSizingsValues(t *testing.T) {
	for _, tt := range []struct {
		name      string
		got, want any
	}{
		{"goMemoryShare", goMemoryShare, 0.7},
		{"connMemory", connMemory, 48 << 10},
		{"baseMemory", baseMemory, 16 << 20},
		{"defaultMaxConns", defaultMaxConns, 10000},
		{"fileReserve", fileReserve, 16},
		{"noLimit", noLimit, 8796093018112},
	} {
		if tt.got != tt.want {
			t.Errorf("%s = %v, want %v", tt.name, tt.got, tt.want)
		}
	}
}

func TestTheStartupLineSaysWhichLimitsItFound(t *testing.T) {
	for _, tt := range []struct {
		name string
		args []string
		vars map[string]string
		want string
	}{
		{"the flag", []string{"-max-conns", "7"}, map[string]string{"MAX_CONNS": "9"}, "max_conns=7 max_conns_from=-max-conns"},
		{"MAX_CONNS", nil, map[string]string{"MAX_CONNS": "9"}, "max_conns=9 max_conns_from=MAX_CONNS"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := start(t, append([]string{"-addr", "127.0.0.1:0"}, tt.args...), tt.vars, os.Hostname)
			line := p.waitFor(t, "whoami listening")
			for _, want := range []string{tt.want, " memory_limit_from=", " go_memory_limit=", " open_file_limit="} {
				if !strings.Contains(line, want) {
					t.Errorf("log line %q: want %s", line, want)
				}
			}
		})
	}
}
