package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"whoami/internal/registryauth"
)

// registry reads an OCI registry over its HTTP API (the distribution spec):
// enough to list what a release pushed. The project's registry is on
// 127.0.0.1, speaks plain HTTP and wants the credentials of docker login.
type registry struct {
	host string
}

var client = &http.Client{Timeout: 30 * time.Second}

// The manifest types a release is made of, newest first.
const accept = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, " +
	"application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json"

// descriptor points at a manifest or a blob.
type descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Platform    *platform         `json:"platform,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

type platform struct {
	OS           string `json:"os"`
	Architecture string `json:"architecture"`
	Variant      string `json:"variant,omitempty"`
}

func (p *platform) String() string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// manifest is an image index (Manifests) or an image manifest (Config and Layers).
type manifest struct {
	MediaType string       `json:"mediaType"`
	Manifests []descriptor `json:"manifests"`
	Config    descriptor   `json:"config"`
	Layers    []descriptor `json:"layers"`
}

func (r *registry) ping(ctx context.Context) error {
	_, err := r.get(ctx, "/v2/", "")
	return err
}

func (r *registry) get(ctx context.Context, path, accept string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+r.host+path, nil)
	if err != nil {
		return nil, err
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	registryauth.Authorize(req)
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode == http.StatusUnauthorized {
		return nil, fmt.Errorf("GET %s: %s: log in (docker login %s), or run make docker-ready as root, which does", path, resp.Status, r.host)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return b, nil
}

// manifest fetches the manifest of repo at ref (a tag or a digest) and
// returns it with its digest.
func (r *registry) manifest(ctx context.Context, repo, ref string) (*manifest, string, error) {
	b, err := r.get(ctx, "/v2/"+repo+"/manifests/"+ref, accept)
	if err != nil {
		return nil, "", err
	}
	var m manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, "", fmt.Errorf("manifest %s:%s: %v", repo, ref, err)
	}
	sum := sha256.Sum256(b)
	return &m, "sha256:" + hex.EncodeToString(sum[:]), nil
}

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
	manifest *manifest
	size     int64 // what a pull downloads: manifest, config and layers, compressed
}

type attestation struct {
	subject  string // the digest of the image it is about
	digest   string
	manifest *manifest
}

// release reads the index under repo:tag and every manifest it names.
func (r *registry) release(ctx context.Context, repo, tag string) (*release, error) {
	index, digest, err := r.manifest(ctx, repo, tag)
	if err != nil {
		return nil, err
	}
	if len(index.Manifests) == 0 {
		return nil, fmt.Errorf("%s:%s is not an image index", repo, tag)
	}
	rel := &release{digest: digest}
	for _, d := range index.Manifests {
		m, _, err := r.manifest(ctx, repo, d.Digest)
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
