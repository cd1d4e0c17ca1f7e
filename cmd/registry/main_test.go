package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"whoami/internal/cli/clitest"
)

// The command line, then the answers of a registry in the test process
// that holds one tag: yes (0), no (1 and silent), trouble (1 and a line).
func TestTheCommandLine(t *testing.T) {
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v2/":
		case "/v2/whoami/manifests/v1":
			w.Header().Set("Docker-Content-Digest", "sha256:0f")
			w.Write([]byte(`{"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}`))
		default:
			http.NotFound(w, r)
		}
	}))
	defer s.Close()
	host := strings.TrimPrefix(s.URL, "http://")
	clitest.Check(t, "registry", run,
		clitest.Case{Args: nil, Code: 2, Stderr: "registry: want one command, ping or has (see registry -h)\n"},
		clitest.Case{Args: []string{"has"}, Code: 2, Stderr: "registry: has takes 1 argument(s), not 0"},
		clitest.Case{Args: []string{"list", "x"}, Code: 2, Stderr: `registry: unknown command "list"`},
		clitest.Case{Args: []string{"has", "whoami:1.0"}, Code: 2, Stderr: `registry: image "whoami:1.0": no registry host`},
		clitest.Case{Args: []string{"has", "127.0.0.1:1/whoami:1.0"}, Code: 1, Stderr: "registry: "},
		clitest.Case{Args: []string{"ping", "127.0.0.1:1"}, Code: 1, Stderr: "registry: "},
		clitest.Case{Args: []string{"ping", ""}, Code: 2, Stderr: `registry: ping "": want HOST or HOST:PORT`},
		clitest.Case{Args: []string{"ping", "http://x"}, Code: 2, Stderr: `registry: ping "http://x"`},
		clitest.Case{Args: []string{"has", host + "/whoami:v1?x=1"}, Code: 2, Stderr: "registry: image"},
		clitest.Case{Args: []string{"ping", host}, Code: 0},
		clitest.Case{Args: []string{"has", host + "/whoami:v1"}, Code: 0},
		clitest.Case{Args: []string{"has", host + "/whoami:v2"}, Code: 1},
	)
}
