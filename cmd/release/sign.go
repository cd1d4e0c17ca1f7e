package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"whoami/internal/command"
	"whoami/internal/registry"
)

// The release's signatures, made and checked with cosign and a key pair
// (provisioning makes it: the private key readable by root only, the
// public key beside it as KEY.pub). Nothing reaches a public Sigstore
// service: no transparency log, no certificate authority, no TUF root.
// What cosign pushes is its own format, next to the image in the same
// repository: a tag sha256-<digest>.sig for the signatures and .att for the
// attestations, which the cluster's policy-controller reads too.

// signer runs cosign with the key.
type signer struct {
	run command.Runner
	key string // the private key; the public one is key's .pub
}

func (s signer) pub() string { return strings.TrimSuffix(s.key, ".key") + ".pub" }

// cosign runs cosign with args. The key's password, if it has one, comes
// from COSIGN_PASSWORD in the environment, never from a flag.
func (s signer) cosign(ctx context.Context, args ...string) (string, error) {
	out, _, err := s.run.Run(ctx, command.Cmd{Name: "cosign", Args: args, Env: []string{"COSIGN_PASSWORD=" + os.Getenv("COSIGN_PASSWORD")}})
	return out, err
}

// refs names the index and each platform image by digest: what a user
// pulls, and what the signatures are for.
func (rel *release) refs(repoRef string) (index string, images []string) {
	for _, img := range rel.images {
		images = append(images, repoRef+"@"+img.digest)
	}
	return repoRef + "@" + rel.digest, images
}

// sign signs the index and every platform image, and attaches each image's
// provenance and SBOM (BuildKit's attestations) as attestations signed by
// the key.
func (s signer) sign(ctx context.Context, c *registry.Client, repo, repoRef string, rel *release) error {
	index, images := rel.refs(repoRef)
	if _, err := s.cosign(ctx, append([]string{"sign", "--key", s.key, "--tlog-upload=false", "--yes"}, append([]string{index}, images...)...)...); err != nil {
		return fmt.Errorf("signing %s: %v", repoRef, err)
	}
	tmp, err := os.MkdirTemp("", "attest")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	for _, a := range rel.attestations {
		for _, l := range a.manifest.Layers {
			b, _, err := c.Do(ctx, http.MethodGet, "/v2/"+repo+"/blobs/"+l.Digest, "")
			if err != nil {
				return err
			}
			var statement struct {
				PredicateType string          `json:"predicateType"`
				Predicate     json.RawMessage `json:"predicate"`
			}
			if err := json.Unmarshal(b, &statement); err != nil || statement.PredicateType == "" {
				return fmt.Errorf("attestation %s of %s is not an in-toto statement", l.Digest, a.subject)
			}
			file := filepath.Join(tmp, "predicate.json")
			if err := os.WriteFile(file, statement.Predicate, 0o600); err != nil {
				return err
			}
			if _, err := s.cosign(ctx, "attest", "--key", s.key, "--tlog-upload=false", "--yes",
				"--type", statement.PredicateType, "--predicate", file, repoRef+"@"+a.subject); err != nil {
				return fmt.Errorf("attesting %s of %s: %v", statement.PredicateType, a.subject, err)
			}
		}
	}
	return nil
}

// verify checks, with the public key alone and as a user would, that the
// index and every image carry a signature of the key, and each image an
// attestation of each kind the release has; the first that does not is the
// error.
func (s signer) verify(ctx context.Context, repoRef string, rel *release) error {
	index, images := rel.refs(repoRef)
	for _, ref := range append([]string{index}, images...) {
		if _, err := s.cosign(ctx, "verify", "--key", s.pub(), "--insecure-ignore-tlog=true", ref); err != nil {
			return fmt.Errorf("%s has no signature of %s that verifies: %s", ref, s.pub(), reason(err))
		}
	}
	for _, a := range rel.attestations {
		for _, l := range a.manifest.Layers {
			t := l.Annotations["in-toto.io/predicate-type"]
			ref := repoRef + "@" + a.subject
			if _, err := s.cosign(ctx, "verify-attestation", "--key", s.pub(), "--insecure-ignore-tlog=true", "--type", t, ref); err != nil {
				return fmt.Errorf("%s has no %s attestation of %s that verifies: %s", ref, t, s.pub(), reason(err))
			}
		}
	}
	return nil
}

// reason is what cosign said last: why it failed.
func reason(err error) string {
	last := command.LastLines(err.Error(), 1)
	if _, after, ok := strings.Cut(last, "error during command execution: "); ok {
		return after
	}
	return last
}

// printVerify shows the user's command.
func (s signer) printVerify(w io.Writer, repoRef string, rel *release) {
	index, _ := rel.refs(repoRef)
	fmt.Fprintf(w, "signed by %s; verify with:\n  cosign verify --key %s --insecure-ignore-tlog=true %s\n", s.key, s.pub(), index)
}
