package facts

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	env := "# a comment\n\nREGISTRY=127.0.0.1:5000\n  IMAGE=whoami  \nSBOM=${REGISTRY}/x:${IMAGE}-$UNSET\nEMPTY=\n"
	if err := os.WriteFile(filepath.Join(dir, ".env"), []byte(env), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"REGISTRY": "127.0.0.1:5000", "IMAGE": "whoami", "SBOM": "127.0.0.1:5000/x:whoami-", "EMPTY": ""}
	for k, v := range want {
		if got, ok := f[k]; !ok || got != v {
			t.Errorf("%s = %q (%v), want %q", k, got, ok, v)
		}
	}
	if len(f) != len(want) {
		t.Errorf("%d facts, want %d: %v", len(f), len(want), f)
	}
}

func TestLoadRefusesWhatIsNotKeyValue(t *testing.T) {
	for _, line := range []string{"NOEQUALS", "=value", "TWO WORDS=x"} {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, ".env"), []byte("A=1\n"+line+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), ".env:2: want KEY=value") {
			t.Errorf("%q: %v, want an error naming line 2", line, err)
		}
	}
	if _, err := Load(t.TempDir()); err == nil {
		t.Error("no .env: no error")
	}
}

// The project's own .env loads, and holds what the tools are given.
func TestLoadTheProjectsFacts(t *testing.T) {
	f, err := Load("../..")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"IMAGE", "SERVICE_PORT", "REGISTRY", "PLATFORMS", "SBOM_GENERATOR"} {
		if f[k] == "" {
			t.Errorf("%s is not set", k)
		}
	}
	if !strings.HasPrefix(f["SBOM_GENERATOR"], f["REGISTRY"]+"/") {
		t.Errorf("SBOM_GENERATOR %q is not in REGISTRY %q", f["SBOM_GENERATOR"], f["REGISTRY"])
	}
}
