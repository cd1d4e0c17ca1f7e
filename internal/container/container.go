// Package container holds what the project's tools and tests need to know
// of a running container beyond the docker CLI: here, what its cgroup says.
package container

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// PeakMemory returns the most memory, in bytes, that the container with the
// full ID id has used: its cgroup's own record, which docker stats does not
// show.
func PeakMemory(id string) (int64, error) {
	for _, f := range []string{
		"/sys/fs/cgroup/memory/docker/" + id + "/memory.max_usage_in_bytes", // cgroup v1, cgroupfs driver
		"/sys/fs/cgroup/system.slice/docker-" + id + ".scope/memory.peak",   // cgroup v2, systemd driver
		"/sys/fs/cgroup/docker/" + id + "/memory.peak",                      // cgroup v2, cgroupfs driver
	} {
		if b, err := os.ReadFile(f); err == nil {
			return strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		}
	}
	return 0, fmt.Errorf("no memory peak for container %s in its cgroup", id)
}
