package registry

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A server in the test process that answers as a registry with basic auth
// does: 401 without the credentials, 404 for what it does not hold.
func TestClientAsksWithTheCredentials(t *testing.T) {
	const index = `{"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[` +
		`{"digest":"sha256:aa","size":1,"platform":{"os":"linux","architecture":"arm","variant":"v7"}}]}`
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "whoami" || p != "secret" {
			w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
			http.Error(w, "{}", http.StatusUnauthorized)
			return
		}
		switch r.URL.Path {
		case "/v2/":
		case "/v2/team/whoami/manifests/v1":
			if !strings.Contains(r.Header.Get("Accept"), "application/vnd.oci.image.index.v1+json") {
				http.Error(w, "no index accepted", http.StatusBadRequest)
				return
			}
			w.Header().Set("Docker-Content-Digest", "sha256:0f")
			w.Write([]byte(index))
		default:
			http.NotFound(w, r)
		}
	}))
	defer s.Close()
	c := &Client{Host: strings.TrimPrefix(s.URL, "http://")}
	dir := t.TempDir()
	t.Setenv("DOCKER_CONFIG", dir)
	if err := c.Ping(t.Context()); err == nil || !strings.Contains(err.Error(), "docker login "+c.Host) {
		t.Errorf("Ping without credentials = %v, want how to log in", err)
	}
	config := `{"auths": {"` + c.Host + `": {"auth": "d2hvYW1pOnNlY3JldA=="}}}` // whoami:secret
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := c.Ping(t.Context()); err != nil {
		t.Errorf("Ping = %v", err)
	}
	m, digest, err := c.Manifest(t.Context(), "team/whoami", "v1")
	if err != nil || len(m.Manifests) != 1 || m.Manifests[0].Platform.String() != "linux/arm/v7" || !strings.HasPrefix(digest, "sha256:") {
		t.Errorf("Manifest = %+v, %q, %v", m, digest, err)
	}
	ref, _ := ParseRef(c.Host + "/team/whoami:v1")
	if d, err := c.Digest(t.Context(), ref); d != "sha256:0f" || err != nil {
		t.Errorf("Digest = %q, %v; want sha256:0f", d, err)
	}
	ref.Tag = "v2"
	if _, err := c.Digest(t.Context(), ref); !errors.Is(err, ErrNotFound) {
		t.Errorf("Digest of an absent tag = %v, want ErrNotFound", err)
	}
}
