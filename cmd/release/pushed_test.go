package main

import (
	"strings"
	"testing"

	"whoami/internal/registry"
	"whoami/internal/registry/registrytest"
)

const (
	ociIndex    = "application/vnd.oci.image.index.v1+json"
	ociManifest = "application/vnd.oci.image.manifest.v1+json"
)

// What make release reads back, from a registry in the test process
// holding what BuildKit pushes: an index of two platform images and an
// attestation manifest for one of them.
func TestPushedReadsTheIndexAndEveryManifest(t *testing.T) {
	reg := registrytest.New(t, "", "")
	layer := func(size int64, predicate string) registry.Descriptor {
		d := registry.Descriptor{MediaType: "application/vnd.oci.image.layer.v1.tar+gzip", Digest: "sha256:1", Size: size}
		if predicate != "" {
			d.Annotations = map[string]string{"in-toto.io/predicate-type": predicate}
		}
		return d
	}
	image := func(layers ...int64) registry.Manifest {
		m := registry.Manifest{MediaType: ociManifest, Config: registry.Descriptor{Size: 500}}
		for _, l := range layers {
			m.Layers = append(m.Layers, layer(l, ""))
		}
		return m
	}
	amd64 := reg.Put(t, "team/whoami", "", image(3_000_000))
	amd64.Platform = &registry.Platform{OS: "linux", Architecture: "amd64"}
	arm := reg.Put(t, "team/whoami", "", image(2_000_000, 10))
	arm.Platform = &registry.Platform{OS: "linux", Architecture: "arm", Variant: "v7"}
	att := reg.Put(t, "team/whoami", "", registry.Manifest{MediaType: ociManifest,
		Layers: []registry.Descriptor{layer(9, "https://slsa.dev/provenance/v0.2"), layer(9, "https://spdx.dev/Document")}})
	att.Platform = &registry.Platform{OS: "unknown", Architecture: "unknown"}
	att.Annotations = map[string]string{"vnd.docker.reference.type": "attestation-manifest", "vnd.docker.reference.digest": amd64.Digest}
	index := reg.Put(t, "team/whoami", "v1", registry.Manifest{MediaType: ociIndex, Manifests: []registry.Descriptor{amd64, arm, att}})

	rel, err := pushed(t.Context(), &registry.Client{Host: reg.Host}, "team/whoami", "v1")
	if err != nil {
		t.Fatal(err)
	}
	if rel.digest != index.Digest || len(rel.images) != 2 || len(rel.attestations) != 1 {
		t.Fatalf("pushed = %+v, want the index %s, 2 images and 1 attestation manifest", rel, index.Digest)
	}
	for i, want := range []struct {
		platform string
		d        registry.Descriptor
		size     int64
	}{{"linux/amd64", amd64, amd64.Size + 500 + 3_000_000}, {"linux/arm/v7", arm, arm.Size + 500 + 2_000_000 + 10}} {
		if img := rel.images[i]; img.platform != want.platform || img.digest != want.d.Digest || img.size != want.size {
			t.Errorf("image %d: %s %s %d bytes, want %s %s %d (manifest, config and layers)", i, img.platform, img.digest, img.size, want.platform, want.d.Digest, want.size)
		}
	}
	if a := rel.attestations[0]; a.subject != amd64.Digest || a.digest != att.Digest {
		t.Errorf("attestation about %s (%s), want about %s", a.subject, a.digest, amd64.Digest)
	}
	var out strings.Builder
	rel.print(&out, reg.Host+"/team/whoami:v1")
	for _, want := range []string{
		"index  " + index.Digest + "\n",
		"linux/arm/v7   " + arm.Digest,
		"attestations for " + amd64.Digest[:19] + ": https://slsa.dev/provenance/v0.2, https://spdx.dev/Document\n",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the summary has no %q:\n%s", want, out.String())
		}
	}

	// A tag that is one image, not an index, and a manifest gone.
	reg.Put(t, "team/whoami", "single", image(1))
	if _, err := pushed(t.Context(), &registry.Client{Host: reg.Host}, "team/whoami", "single"); err == nil || !strings.Contains(err.Error(), "is not an image index") {
		t.Errorf("pushed of a single image = %v, want an error that says it is not an index", err)
	}
	reg.Delete("team/whoami", arm.Digest)
	if _, err := pushed(t.Context(), &registry.Client{Host: reg.Host}, "team/whoami", "v1"); err == nil || !strings.Contains(err.Error(), arm.Digest) {
		t.Errorf("pushed with a platform's manifest missing = %v, want an error that names it", err)
	}
}
