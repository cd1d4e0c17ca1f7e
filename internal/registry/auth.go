package registry

// The credentials that `docker login` stored, found as crane and ko find
// them: the project's registry answers no request without them
// (provisioning logs Docker in).

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
)

// Basic returns the user and password stored for host (host:port) in
// Docker's config file: $DOCKER_CONFIG/config.json, else
// ~/.docker/config.json. Only the file's "auths" are read, not credential
// helpers.
func Basic(host string) (user, password string, ok bool) {
	dir := os.Getenv("DOCKER_CONFIG")
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", "", false
		}
		dir = filepath.Join(home, ".docker")
	}
	b, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		return "", "", false
	}
	var cfg struct {
		Auths map[string]struct{ Auth string }
	}
	if json.Unmarshal(b, &cfg) != nil {
		return "", "", false
	}
	pair, err := base64.StdEncoding.DecodeString(cfg.Auths[host].Auth)
	if err != nil {
		return "", "", false
	}
	return strings.Cut(string(pair), ":")
}

// Authorize adds to req the credentials stored for its host, if any.
func Authorize(req *http.Request) {
	if user, password, ok := Basic(req.URL.Host); ok {
		req.SetBasicAuth(user, password)
	}
}
