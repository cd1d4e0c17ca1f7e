package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"whoami/internal/registry"
)

// release is what one tag holds: the index, an image per platform, and
// the attestation manifests that point at them.
type release struct {
	digest       string
	images       []image
	attestations []attestation
}

type image struct {
	platform string
	digest   string
	manifest *registry.Manifest
	size     int64 // what a pull downloads: manifest, config and layers, compressed
}

type attestation struct {
	subject  string // the digest of the image it is about
	digest   string
	manifest *registry.Manifest
}

// pushed reads the index under repo:tag and every manifest it names.
func pushed(ctx context.Context, c *registry.Client, repo, tag string) (*release, error) {
	index, digest, err := c.Manifest(ctx, repo, tag)
	if err != nil {
		return nil, err
	}
	if len(index.Manifests) == 0 {
		return nil, fmt.Errorf("%s:%s is not an image index", repo, tag)
	}
	rel := &release{digest: digest}
	for _, d := range index.Manifests {
		m, _, err := c.Manifest(ctx, repo, d.Digest)
		if err != nil {
			return nil, err
		}
		if ref := d.Annotations["vnd.docker.reference.digest"]; d.Annotations["vnd.docker.reference.type"] == "attestation-manifest" {
			rel.attestations = append(rel.attestations, attestation{subject: ref, digest: d.Digest, manifest: m})
			continue
		}
		size := d.Size + m.Config.Size
		for _, l := range m.Layers {
			size += l.Size
		}
		p := "unknown"
		if d.Platform != nil {
			p = d.Platform.String()
		}
		rel.images = append(rel.images, image{platform: p, digest: d.Digest, manifest: m, size: size})
	}
	return rel, nil
}

func (rel *release) print(w io.Writer, ref string) {
	fmt.Fprintf(w, "\npushed %s\nindex  %s\n", ref, rel.digest)
	for _, img := range rel.images {
		fmt.Fprintf(w, "%-14s %s  %9d bytes to pull\n", img.platform, img.digest, img.size)
	}
	for _, a := range rel.attestations {
		var types []string
		for _, l := range a.manifest.Layers {
			types = append(types, l.Annotations["in-toto.io/predicate-type"])
		}
		fmt.Fprintf(w, "attestations for %s: %s\n", short(a.subject), strings.Join(types, ", "))
	}
}

func short(digest string) string {
	if len(digest) > 19 {
		return digest[:19]
	}
	return digest
}
