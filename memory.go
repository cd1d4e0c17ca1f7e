package main

import (
	"math"
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
// /proc/self/cgroup names the process's cgroup: under cgroup v1, on the
// line of the memory controller ("4:memory:/docker/ID"; its file is
// memory.limit_in_bytes), under cgroup v2 on the one line "0::/PATH"
// (memory.max). /proc/self/mountinfo says where that hierarchy is mounted
// (the memory controller may share its mount with others, as in
// /sys/fs/cgroup/cpu,memory) and which of its cgroups the mount shows at
// its top: in a container, its own. The cgroup's directory is the mount
// point and the cgroup's path below that top; it looks from there up to
// the mount point, and takes every limit it finds.
func cgroupMemoryLimit(root string) (limit int64, file string, ok bool) {
	b, err := os.ReadFile(filepath.Join(root, "proc/self/cgroup"))
	if err != nil {
		return 0, "", false
	}
	var v1, v2 string // the process's cgroup in each hierarchy, if any
	found1, found2 := false, false
	for _, line := range strings.Split(string(b), "\n") {
		id, rest, _ := strings.Cut(line, ":")
		controllers, p, _ := strings.Cut(rest, ":")
		if slices.Contains(strings.Split(controllers, ","), "memory") {
			v1, found1 = p, true
		} else if id == "0" && controllers == "" {
			v2, found2 = p, true
		}
	}
	var mount, dir, name string
	switch {
	case found1: // its memory controller wins over a v2 line beside it
		mount, dir = cgroupMount(root, v1, func(fstype, options string) bool {
			return fstype == "cgroup" && slices.Contains(strings.Split(options, ","), "memory")
		})
		name = "memory.limit_in_bytes"
	case found2:
		mount, dir = cgroupMount(root, v2, func(fstype, _ string) bool { return fstype == "cgroup2" })
		name = "memory.max"
	}
	if mount == "" {
		return 0, "", false
	}
	for ; ; dir = path.Dir(dir) {
		f := path.Join(mount, dir, name)
		if n, found := readLimit(filepath.Join(root, f)); found && (!ok || n < limit) {
			limit, file, ok = n, f, true
		}
		if dir == "/" {
			return limit, file, ok
		}
	}
}

// cgroupMount finds, in /proc/self/mountinfo, the first mount of the
// hierarchy that matches, and returns where it is mounted and cgroup's
// directory below it; mount is "" if there is none. A cgroup outside what
// the mount shows (another namespace's) is read at the mount's top.
func cgroupMount(root, cgroup string, matches func(fstype, options string) bool) (mount, dir string) {
	b, err := os.ReadFile(filepath.Join(root, "proc/self/mountinfo"))
	if err != nil {
		return "", ""
	}
	// 36 35 0:31 /docker/ID /sys/fs/cgroup/memory rw,nosuid - cgroup cgroup rw,memory
	// (4) the mount's top in its file system, (5) where it is mounted, then
	// optional fields up to "-", the file system's type and source, and
	// the super block's options.
	for _, line := range strings.Split(string(b), "\n") {
		fields, after, found := strings.Cut(line, " - ")
		f, a := strings.Fields(fields), strings.Fields(after)
		if !found || len(f) < 5 || len(a) < 3 || !matches(a[0], a[2]) {
			continue
		}
		top, dir := unescape(f[3]), "/"
		if r, ok := strings.CutPrefix(path.Clean(cgroup), top); ok && (top == "/" || r == "" || r[0] == '/') {
			dir = path.Clean("/" + r)
		}
		return unescape(f[4]), dir
	}
	return "", ""
}

// unescape undoes mountinfo's escapes of the characters that would break
// its fields ("\040" for a space).
var unescape = strings.NewReplacer(`\040`, " ", `\011`, "\t", `\012`, "\n", `\134`, `\`).Replace

// noLimit is the least a limit file holds when no limit is set, and the
// least taken as none: cgroup v1 writes its page counter's largest value
// times the page size, which is LONG_MAX rounded down to a page on a
// 64-bit kernel (9,223,372,036,854,771,712 with 4 KiB pages), and LONG_MAX
// pages on a 32-bit one (8,796,093,018,112 with 4 KiB pages: 8 TiB). No
// container's limit is that large. (cgroup v2 writes "max".)
const noLimit = math.MaxInt32 * 4096

// readLimit reads a cgroup's memory limit file: found is false when the
// file is missing or sets no limit.
func readLimit(file string) (n int64, found bool) {
	b, err := os.ReadFile(file)
	if err != nil {
		return 0, false
	}
	n, err = strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	return n, err == nil && n > 0 && n < noLimit
}
