package registry_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"whoami/internal/registry"
	"whoami/internal/registry/registrytest"
)

// A registry in the test process that answers as one with basic auth
// does: 401 without the credentials, 404 for what it does not hold.
func TestClientAsksWithTheCredentials(t *testing.T) {
	reg := registrytest.New(t, "whoami", "secret")
	image := reg.Put(t, "team/whoami", "", registry.Manifest{MediaType: "application/vnd.oci.image.manifest.v1+json"})
	image.Platform = &registry.Platform{OS: "linux", Architecture: "arm", Variant: "v7"}
	index := reg.Put(t, "team/whoami", "v1", registry.Manifest{MediaType: "application/vnd.oci.image.index.v1+json",
		Manifests: []registry.Descriptor{image}})
	c := &registry.Client{Host: reg.Host}
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
	if err != nil || len(m.Manifests) != 1 || m.Manifests[0].Platform.String() != "linux/arm/v7" || digest != index.Digest {
		t.Errorf("Manifest = %+v, %q, %v; want the index, %s", m, digest, err, index.Digest)
	}
	ref, _ := registry.ParseRef(c.Host + "/team/whoami:v1")
	if d, err := c.Digest(t.Context(), ref); d != index.Digest || err != nil {
		t.Errorf("Digest = %q, %v; want %s", d, err, index.Digest)
	}
	ref.Tag = "v2"
	if _, err := c.Digest(t.Context(), ref); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("Digest of an absent tag = %v, want ErrNotFound", err)
	}
}
