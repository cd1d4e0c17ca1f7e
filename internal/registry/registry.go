// Package registry speaks the HTTP API of an OCI registry (the
// distribution spec) for the project's tools: what a release pushed, the
// digest a deployment pins, whether provisioning has an image already.
// The project's registry is on 127.0.0.1, speaks plain HTTP and answers
// no request without the credentials that `docker login` stored (auth.go).
// Standard library only.
package registry

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"
)

// Accept lists the manifest types the tools read, newest first: OCI index
// and manifest, and Docker's manifest list and manifest.
const Accept = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, " +
	"application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json"

// ErrNotFound is what the registry answers for a manifest or blob it does
// not hold.
var ErrNotFound = errors.New("not found")

// Client talks to the registry at Host (host:port) over plain HTTP.
type Client struct {
	Host string
}

var httpClient = &http.Client{Timeout: 30 * time.Second}

// Descriptor points at a manifest or a blob.
type Descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Platform    *Platform         `json:"platform,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// Platform is a descriptor's platform in an index.
type Platform struct {
	OS           string `json:"os"`
	Architecture string `json:"architecture"`
	Variant      string `json:"variant,omitempty"`
}

func (p *Platform) String() string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// Manifest is an image index (Manifests) or an image manifest (Config and
// Layers).
type Manifest struct {
	MediaType string       `json:"mediaType"`
	Manifests []Descriptor `json:"manifests"`
	Config    Descriptor   `json:"config"`
	Layers    []Descriptor `json:"layers"`
}

// Ping asks the registry's /v2/: nil if it answers and takes the
// credentials it is given.
func (c *Client) Ping(ctx context.Context) error {
	_, _, err := c.Do(ctx, http.MethodGet, "/v2/", "")
	return err
}

// Do sends a request to path with the stored credentials and returns the
// body and the answer's headers; a status other than 2xx is an error (404:
// ErrNotFound, 401: one that says how to log in).
func (c *Client) Do(ctx context.Context, method, path, accept string) ([]byte, http.Header, error) {
	req, err := http.NewRequestWithContext(ctx, method, "http://"+c.Host+path, nil)
	if err != nil {
		return nil, nil, err
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	Authorize(req)
	resp, err := httpClient.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, nil, err
	}
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return nil, nil, fmt.Errorf("%s %s: %w", method, path, ErrNotFound)
	case resp.StatusCode == http.StatusUnauthorized:
		return nil, nil, fmt.Errorf("%s %s: %s: log in (docker login %s), or run make docker-ready as root, which does", method, path, resp.Status, c.Host)
	case resp.StatusCode/100 != 2:
		return nil, nil, fmt.Errorf("%s %s: %s %s", method, path, resp.Status, bytes.TrimSpace(b))
	}
	return b, resp.Header, nil
}

// Manifest fetches the manifest of repo at ref (a tag or a digest) and
// returns it with its digest, computed from what was read.
func (c *Client) Manifest(ctx context.Context, repo, ref string) (*Manifest, string, error) {
	b, _, err := c.Do(ctx, http.MethodGet, "/v2/"+repo+"/manifests/"+ref, Accept)
	if err != nil {
		return nil, "", err
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, "", fmt.Errorf("manifest %s:%s: %v", repo, ref, err)
	}
	sum := sha256.Sum256(b)
	return &m, "sha256:" + hex.EncodeToString(sum[:]), nil
}

// Digest asks for the digest of what ref names (HEAD: nothing is
// downloaded).
func (c *Client) Digest(ctx context.Context, ref Ref) (string, error) {
	_, h, err := c.Do(ctx, http.MethodHead, "/v2/"+ref.Repo+"/manifests/"+ref.Reference(), Accept)
	if err != nil {
		return "", err
	}
	d := h.Get("Docker-Content-Digest")
	if d == "" {
		return "", fmt.Errorf("HEAD %s: no Docker-Content-Digest", ref)
	}
	return d, nil
}
