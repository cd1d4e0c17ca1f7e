package registry

import (
	"net/http"
	"os"
	"path/filepath"
	"testing"
)

func TestBasicReadsDockerLogins(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("DOCKER_CONFIG", dir)
	if _, _, ok := Basic("127.0.0.1:5000"); ok {
		t.Fatal("credentials found without a config file")
	}
	// What `docker login -u whoami 127.0.0.1:5000` writes, with the
	// password "pa:ss" (a colon is allowed in it).
	config := `{"auths": {"127.0.0.1:5000": {"auth": "d2hvYW1pOnBhOnNz"}, "other:1": {"auth": "!"}}}`
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	for host, want := range map[string][3]any{
		"127.0.0.1:5000": {"whoami", "pa:ss", true},
		"127.0.0.1:5001": {"", "", false}, // another host
		"other:1":        {"", "", false}, // not base64
	} {
		user, password, ok := Basic(host)
		if got := [3]any{user, password, ok}; got != want {
			t.Errorf("Basic(%q) = %v, want %v", host, got, want)
		}
	}
	req, _ := http.NewRequest(http.MethodGet, "http://127.0.0.1:5000/v2/", nil)
	Authorize(req)
	if user, password, ok := req.BasicAuth(); !ok || user != "whoami" || password != "pa:ss" {
		t.Errorf("Authorize set %q %q %v", user, password, ok)
	}
}
