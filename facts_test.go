package main

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"whoami/internal/facts"
)

// The facts of .env are read by the Makefile, Compose and provisioning.
// What cannot read them holds a copy: each copy must agree.
func TestCopiesOfTheSharedFactsAgree(t *testing.T) {
	env, err := facts.Load(".")
	if err != nil {
		t.Fatal(err)
	}
	port, user := env["SERVICE_PORT"], find(t, "Dockerfile", `(?m)^USER (\S+)$`)
	for _, c := range []struct{ file, re, want string }{
		{"Dockerfile", `(?m)^EXPOSE (\d+)$`, port},
		{"Dockerfile.single", `(?m)^EXPOSE (\d+)$`, port},
		{"http.go", `return ":(\d+)", nil`, port}, // listenAddr's default
		{"deploy/haproxy/haproxy.cfg", `(?m)^frontend web\n\tbind :(\d+)$`, port},
		{"deploy/haproxy/haproxy.cfg", `server-template whoami \d+ whoami:(\d+)`, port},
		{"deploy/haproxy/haproxy.cfg", `(?m)^frontend stats\n\tbind :(\d+)$`, find(t, "cmd/replicas/stack.go", `statsPort   = "(\d+)"`)},
		{"cmd/replicas/stack.go", `servicePort = "(\d+)"`, port},
		{"deploy/kubernetes/deployment.yaml", `containerPort: (\d+)`, port},
		{"deploy/kubernetes/deployment.yaml", `image: (\S+)`, env["IMAGE"] + ":" + env["MULTI_TAG"]},
		{"compose.yaml", `user: "(\S+)"`, user},
		{"deploy/kubernetes/deployment.yaml", `runAsUser: (\d+)`, regexp.MustCompile(`:.*`).ReplaceAllString(user, "")},
		{"deploy/kubernetes/deployment.yaml", `runAsGroup: (\d+)`, regexp.MustCompile(`.*:`).ReplaceAllString(user, "")},
		// Both images build with the Go of go.mod.
		{"Dockerfile", `(?m)^ARG GO_VERSION=(\S+)$`, find(t, "go.mod", `(?m)^go (\S+)$`)},
		{"Dockerfile.single", `(?m)^ARG GO_VERSION=(\S+)$`, find(t, "go.mod", `(?m)^go (\S+)$`)},
		// HAProxy waits for a request's headers as long as the service does.
		{"deploy/haproxy/haproxy.cfg", `timeout http-request (\d+)s`, find(t, "http.go", `readHeaderTimeout = (\d+) \* time.Second`)},
	} {
		if got := find(t, c.file, c.re); got != c.want {
			t.Errorf("%s: %s is %q, want %q (.env, or the file it is copied from)", c.file, c.re, got, c.want)
		}
	}
}

// find returns the first group of the first match of re in file.
func find(t *testing.T, file, re string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.FromSlash(file))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(re).FindSubmatch(b)
	if m == nil {
		t.Fatalf("%s: no match for %s", file, re)
	}
	return string(m[1])
}
