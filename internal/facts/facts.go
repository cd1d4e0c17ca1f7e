// Package facts reads .env, the one file of the facts that the Makefile,
// Compose and provisioning share (image names, the port, the registry,
// versions), for the tests that use them or check the copies of them.
package facts

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Load reads root/.env: KEY=value lines, where ${KEY} is an earlier value,
// as Compose, make and the shell read them. Comments and blank lines are
// skipped.
func Load(root string) (map[string]string, error) {
	f, err := os.Open(filepath.Join(root, ".env"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	m := map[string]string{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || k == "" || strings.ContainsAny(k, " \t") {
			return nil, fmt.Errorf(".env:%d: want KEY=value, got %q", n, line)
		}
		m[k] = os.Expand(v, func(name string) string { return m[name] })
	}
	return m, sc.Err()
}
