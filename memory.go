package main

import (
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// cgroupMemoryLimit returns the memory limit of the cgroup this process is
// in, read from the file system under root ("/" but in tests), and the file
// it read (without root). With a limit on several levels, the smallest
// counts. ok is false when there is none: no cgroup file system, or no
// limit set.
//
// It reads /proc/self/cgroup for the process's cgroup: under cgroup v1,
// the line of the memory controller ("4:memory:/docker/ID"), whose files
// are under /sys/fs/cgroup/memory (memory.limit_in_bytes); under cgroup v2,
// the one line "0::/PATH", under /sys/fs/cgroup (memory.max). In a
// container the path may name a cgroup the container does not see, its
// own being mounted at the top: so it looks from the path up to the top,
// and takes every limit it finds.
func cgroupMemoryLimit(root string) (limit int64, file string, ok bool) {
	b, err := os.ReadFile(filepath.Join(root, "proc/self/cgroup"))
	if err != nil {
		return 0, "", false
	}
	var dir, name, cgroup string
	for _, line := range strings.Split(string(b), "\n") {
		id, rest, _ := strings.Cut(line, ":")
		controllers, p, _ := strings.Cut(rest, ":")
		if slices.Contains(strings.Split(controllers, ","), "memory") {
			dir, name, cgroup = "/sys/fs/cgroup/memory", "memory.limit_in_bytes", p
			break // v1: its memory controller wins over a v2 line beside it
		}
		if id == "0" && controllers == "" {
			dir, name, cgroup = "/sys/fs/cgroup", "memory.max", p
		}
	}
	if dir == "" {
		return 0, "", false
	}
	for p := path.Clean("/" + cgroup); ; p = path.Dir(p) {
		f := path.Join(dir, p, name)
		if n, found := readLimit(filepath.Join(root, f)); found && (!ok || n < limit) {
			limit, file, ok = n, f, true
		}
		if p == "/" {
			return limit, file, ok
		}
	}
}

// readLimit reads a cgroup's memory limit file: found is false when the
// file is missing or sets no limit ("max" in v2, a number near 2^63 in v1).
func readLimit(file string) (n int64, found bool) {
	b, err := os.ReadFile(file)
	if err != nil {
		return 0, false
	}
	n, err = strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	return n, err == nil && n > 0 && n < 1<<62
}
