// Package registrytest is a registry in the test process, for the unit
// tests of what reads one (internal/registry, what make release pushed,
// the digest a deployment pins): it answers the distribution API's reads
// of manifests, by tag or by digest, as a registry does, and refuses a
// request without the credentials it was given (401 with a Basic
// challenge) and a manifest whose type the client does not accept (404).
package registrytest

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"whoami/internal/registry"
)

// Registry holds manifests by repository, and by tag and digest in each.
type Registry struct {
	Host string // host:port, on 127.0.0.1

	user, password string
	mu             sync.Mutex
	manifests      map[string]stored // "repo@sha256:..." and "repo:tag"
}

type stored struct {
	mediaType, digest string
	body              []byte
}

// New starts a registry that wants user and password in each request
// (none if user is ""), stopped when the test ends.
func New(t testing.TB, user, password string) *Registry {
	r := &Registry{user: user, password: password, manifests: map[string]stored{}}
	s := httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(s.Close)
	r.Host = strings.TrimPrefix(s.URL, "http://")
	return r
}

// Put stores m in repo under its digest, and under tag if not "", and
// returns its descriptor.
func (r *Registry) Put(t testing.TB, repo, tag string, m registry.Manifest) registry.Descriptor {
	t.Helper()
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	s := stored{mediaType: m.MediaType, digest: "sha256:" + hex.EncodeToString(sum[:]), body: b}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.manifests[repo+"@"+s.digest] = s
	if tag != "" {
		r.manifests[repo+":"+tag] = s
	}
	return registry.Descriptor{MediaType: m.MediaType, Digest: s.digest, Size: int64(len(b))}
}

// Delete removes what repo holds under ref, a tag or a digest.
func (r *Registry) Delete(repo, ref string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.manifests, repo+":"+ref)
	delete(r.manifests, repo+"@"+ref)
}

func (r *Registry) serve(w http.ResponseWriter, req *http.Request) {
	if u, p, ok := req.BasicAuth(); r.user != "" && (!ok || u != r.user || p != r.password) {
		w.Header().Set("WWW-Authenticate", `Basic realm="registrytest"`)
		http.Error(w, `{"errors":[{"code":"UNAUTHORIZED"}]}`, http.StatusUnauthorized)
		return
	}
	if req.Method != http.MethodGet && req.Method != http.MethodHead {
		http.Error(w, "read-only", http.StatusMethodNotAllowed)
		return
	}
	if req.URL.Path == "/v2/" {
		return
	}
	repo, ref, ok := strings.Cut(strings.TrimPrefix(req.URL.Path, "/v2/"), "/manifests/")
	key := repo + ":" + ref
	if strings.HasPrefix(ref, "sha256:") {
		key = repo + "@" + ref
	}
	r.mu.Lock()
	m, found := r.manifests[key]
	r.mu.Unlock()
	if !ok || !found || !strings.Contains(req.Header.Get("Accept"), m.mediaType) {
		http.Error(w, `{"errors":[{"code":"MANIFEST_UNKNOWN"}]}`, http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", m.mediaType)
	w.Header().Set("Docker-Content-Digest", m.digest)
	w.Write(m.body)
}
