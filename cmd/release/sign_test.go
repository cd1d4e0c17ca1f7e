//go:build e2e

package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"whoami/internal/command"
)

// The release's signatures, checked as a user checks them: cosign verify
// with the public key alone, offline. The release that TestMain pushed was
// signed by the release tool with .env's SIGNING_KEY.

func releaseSigner() signer { return signer{run: command.Exec{}, key: env["SIGNING_KEY"]} }

func repoRef() string { return env["REGISTRY"] + "/" + repo }

func TestTheIndexAndEveryImageCarryAVerifiedSignature(t *testing.T) {
	s := releaseSigner()
	index, images := built.refs(repoRef())
	for _, ref := range append([]string{index}, images...) {
		out, err := s.cosign(t.Context(), "verify", "--key", s.pub(), "--insecure-ignore-tlog=true", "--output", "json", ref)
		if err != nil {
			t.Errorf("cosign verify %s: %v", ref, err)
			continue
		}
		// What the signature says it is about: the digest the user asked for.
		var payloads []struct {
			Critical struct {
				Image struct {
					Digest string `json:"docker-manifest-digest"`
				} `json:"image"`
			} `json:"critical"`
		}
		if err := json.Unmarshal([]byte(out), &payloads); err != nil || len(payloads) == 0 {
			t.Errorf("cosign verify %s printed %q: %v", ref, out, err)
			continue
		}
		for _, p := range payloads {
			if _, digest, _ := strings.Cut(ref, "@"); p.Critical.Image.Digest != digest {
				t.Errorf("a signature of %s is about %s", ref, p.Critical.Image.Digest)
			}
		}
	}
}

func TestEveryImageCarriesItsProvenanceAndSBOMSigned(t *testing.T) {
	s := releaseSigner()
	for _, a := range built.attestations {
		for _, l := range a.manifest.Layers {
			predicateType := l.Annotations["in-toto.io/predicate-type"]
			ref := repoRef() + "@" + a.subject
			out, err := s.cosign(t.Context(), "verify-attestation", "--key", s.pub(), "--insecure-ignore-tlog=true", "--type", predicateType, ref)
			if err != nil {
				t.Errorf("cosign verify-attestation --type %s %s: %v", predicateType, ref, err)
				continue
			}
			// One DSSE envelope per line; its payload is the in-toto statement.
			var envelope struct{ Payload string }
			if err := json.Unmarshal([]byte(firstLine(out)), &envelope); err != nil {
				t.Fatalf("cosign verify-attestation printed %q: %v", out, err)
			}
			b, _ := base64.StdEncoding.DecodeString(envelope.Payload)
			var statement struct {
				PredicateType string `json:"predicateType"`
				Subject       []struct {
					Digest map[string]string `json:"digest"`
				} `json:"subject"`
			}
			unmarshal(t, b, &statement)
			if statement.PredicateType != predicateType || len(statement.Subject) != 1 ||
				"sha256:"+statement.Subject[0].Digest["sha256"] != a.subject {
				t.Errorf("the signed %s attestation of %s is %s about %+v", predicateType, a.subject, statement.PredicateType, statement.Subject)
			}
		}
	}
}

// The last step of make release fails when any signature or attestation is
// missing from the registry, whichever it is, and names it. Each case
// removes one, then puts the release's signatures back (cosign sign and
// attest again).
func TestAReleaseMissingASignatureFailsVerification(t *testing.T) {
	s := releaseSigner()
	img := built.images[len(built.images)-1]
	for _, tc := range []struct {
		name, digest, suffix, want string
	}{
		{"the index's signature", built.digest, ".sig", built.digest + " has no signature"},
		{"an image's signature", img.digest, ".sig", img.digest + " has no signature"},
		{"an image's attestations", img.digest, ".att", img.digest + " has no https://"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tag := strings.Replace(tc.digest, ":", "-", 1) + tc.suffix
			_, digest, err := reg.Manifest(t.Context(), repo, tag)
			if err != nil {
				t.Fatalf("the release has no %s: %v", tag, err)
			}
			if _, _, err := reg.Do(t.Context(), http.MethodDelete, "/v2/"+repo+"/manifests/"+digest, ""); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				// t.Context is done by now.
				if err := s.sign(context.Background(), reg, repo, repoRef(), built); err != nil {
					t.Errorf("signing the release again: %v", err)
				}
			})
			err = s.verify(t.Context(), repoRef(), built)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("verify with %s removed: %v, want %q", tag, err, tc.want)
			}
		})
	}
}
