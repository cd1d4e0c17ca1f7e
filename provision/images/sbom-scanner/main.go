// Command sbom-scanner is a BuildKit SBOM generator: BuildKit runs the image
// it is in during `make release` to scan each platform's file system, and
// attaches what it writes to the image index as an SBOM attestation.
//
// The official generator image (docker/buildkit-syft-scanner) cannot be
// pulled on machines with no registry, and its source is not on the Go
// module proxy, so this is the same glue rebuilt here: it runs Syft
// (github.com/anchore/syft, built from the Go module proxy and copied beside
// it in the image) on each file system that BuildKit mounts, and wraps
// Syft's SPDX JSON in the in-toto statement BuildKit expects.
//
// The protocol (github.com/moby/buildkit, docs/attestations/sbom-protocol.md):
// BUILDKIT_SCAN_SOURCE is the file system to scan, BUILDKIT_SCAN_SOURCE_EXTRAS
// an optional directory of more, and each scan goes to
// $BUILDKIT_SCAN_DESTINATION/<name>.spdx.json.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// syft is the Syft binary beside this one in the image.
const syft = "/syft"

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "sbom-scanner: %v\n", err)
		os.Exit(1)
	}
}

func run() error {
	dest := os.Getenv("BUILDKIT_SCAN_DESTINATION")
	src := os.Getenv("BUILDKIT_SCAN_SOURCE")
	if dest == "" || src == "" {
		return fmt.Errorf("BUILDKIT_SCAN_SOURCE and BUILDKIT_SCAN_DESTINATION must be set (this runs inside a BuildKit build)")
	}
	targets := []string{src}
	if extras := os.Getenv("BUILDKIT_SCAN_SOURCE_EXTRAS"); extras != "" {
		entries, _ := os.ReadDir(extras) // absent or empty: nothing more to scan
		for _, e := range entries {
			targets = append(targets, filepath.Join(extras, e.Name()))
		}
	}
	for _, t := range targets {
		if err := scan(t, filepath.Join(dest, filepath.Base(t)+".spdx.json")); err != nil {
			return err
		}
	}
	return nil
}

// scan runs Syft on the file system at dir, as the root file system of an
// image, and writes its SPDX document to out as an in-toto statement.
func scan(dir, out string) error {
	spdx := filepath.Join(os.TempDir(), filepath.Base(dir)+".syft.json")
	cmd := exec.Command(syft, "scan", "dir:"+dir, "--override-default-catalogers", "image",
		"--source-name", filepath.Base(dir), "-o", "spdx-json="+spdx, "-q")
	cmd.Env = append(os.Environ(), "SYFT_CHECK_FOR_APP_UPDATE=false", "XDG_CACHE_HOME="+os.TempDir())
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("syft scan %s: %v", dir, err)
	}
	doc, err := os.ReadFile(spdx)
	if err != nil {
		return err
	}
	statement, err := json.Marshal(struct {
		Type          string          `json:"_type"`
		PredicateType string          `json:"predicateType"`
		Predicate     json.RawMessage `json:"predicate"`
	}{"https://in-toto.io/Statement/v0.1", "https://spdx.dev/Document", doc})
	if err != nil {
		return err
	}
	return os.WriteFile(out, statement, 0o644)
}
