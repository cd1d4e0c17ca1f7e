package main

import (
	"bytes"
	"errors"
	"flag"
	"strings"
	"testing"

	"whoami/internal/cli/clitest"
)

// The unit tests: what the release tool decides before it asks Git, the
// registry or BuildKit anything (the e2e tests do the rest).

func TestHostAndRepo(t *testing.T) {
	for registry, want := range map[string][2]string{
		"127.0.0.1:5000":              {"127.0.0.1:5000", "whoami"},
		"127.0.0.1:5000/team":         {"127.0.0.1:5000", "team/whoami"},
		"registry.example:443/a/b":    {"registry.example:443", "a/b/whoami"},
		"localhost:5000/someone/else": {"localhost:5000", "someone/else/whoami"},
	} {
		host, repo := options{registry: registry, image: "whoami"}.hostAndRepo()
		if got := [2]string{host, repo}; got != want {
			t.Errorf("hostAndRepo(%q) = %q, want %q", registry, got, want)
		}
	}
}

func TestCheckPlatforms(t *testing.T) {
	for _, p := range []string{"linux/amd64", "linux/arm64", "linux/arm64/v8", "linux/arm/v6", "linux/arm/v7",
		"linux/ppc64le", "linux/s390x", "linux/riscv64", "linux/386"} {
		if err := checkPlatforms(t.Context(), []string{p}); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
	for _, p := range []string{"windows/amd64", "darwin/arm64", "linux/z80", "linux/arm/v9", "linux/amd64/v3",
		"linux/arm/v7/x", "linux", "", "amd64"} {
		err := checkPlatforms(t.Context(), []string{"linux/amd64", p})
		if err == nil || !strings.Contains(err.Error(), `unsupported platform "`+p+`"`) {
			t.Errorf("%q: %v, want unsupported", p, err)
		}
	}
}

// Flags that are wrong or missing stop the tool with one line and exit
// status 2 before it asks anything of Git, the registry or BuildKit.
func TestTheCommandLine(t *testing.T) {
	all := []string{"-registry", "127.0.0.1:1", "-builder", "b", "-sbom-generator", "g", "-platforms", "linux/amd64", "-version", "v", "-key", "k.key"}
	usage := func(args []string, stderr string) clitest.Case {
		return clitest.Case{Args: args, Code: 2, Stderr: "release: " + stderr}
	}
	clitest.Check(t, "release", run,
		usage(append(all, "extra"), `unexpected argument "extra"`),
		usage(append([]string{"extra"}, all...), `unexpected argument "extra"`),
		usage(append(all, "-version", ""), "-version is required"),
		usage(append(all, "-platforms", ""), "-registry, -builder, -sbom-generator, -platforms and -key are required"),
		usage(append(all, "-registry", ""), "-registry, -builder, -sbom-generator, -platforms and -key are required"),
		usage(append(all, "-key", ""), "-registry, -builder, -sbom-generator, -platforms and -key are required"),
		usage(append(all, "-platforms", "linux/amd64,windows/arm64"), `unsupported platform "windows/arm64"`),
		usage(append(all, "-version", "bad tag!"), `127.0.0.1:1/whoami:bad tag! is not a reference a registry takes`),
		usage(append(all, "-image", "UP PER"), `127.0.0.1:1/UP PER:v is not a reference`),
		usage(append(all, "-registry", "http://127.0.0.1:1"), `http://127.0.0.1:1/whoami:v is not a reference`),
	)
}

func TestHelpListsTheFlags(t *testing.T) {
	var out bytes.Buffer
	if err := run(t.Context(), []string{"-h"}, &out, &out); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("release -h: %v, want flag.ErrHelp, which exits 0", err)
	}
	for _, flag := range []string{"-registry", "-platforms", "-sbom-generator", "-allow-dirty", "-key"} {
		if !strings.Contains(out.String(), flag) {
			t.Errorf("release -h does not list %s:\n%s", flag, out.String())
		}
	}
}
