package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"whoami/internal/cli/clitest"
)

// The unit tests: what the tool decides and prints without a cluster (the
// cluster tests, tag cluster, do the rest).

func TestTheCommandLine(t *testing.T) {
	t.Setenv("KUBECONFIG", filepath.Join(t.TempDir(), "none")) // nothing past the command line reaches a cluster
	clitest.Check(t, "kube", run,
		clitest.Case{Args: nil, Code: 2, Stderr: "kube: want one command, demo, rollout, drain, autoscale or admission (see kube -h)\n"},
		clitest.Case{Args: []string{"demo", "rollout"}, Code: 2, Stderr: "kube: demo takes 0 argument(s)"},
		clitest.Case{Args: []string{"deploy"}, Code: 2, Stderr: `kube: unknown command "deploy"`},
		clitest.Case{Args: []string{"demo", "-h"}, Code: 0, Stdout: "Usage: kube "},
		clitest.Case{Args: []string{"demo", "-n", "0"}, Code: 2, Stderr: "kube: -n must be at least 1"},
		clitest.Case{Args: []string{"-n", "0", "demo"}, Code: 2, Stderr: "kube: -n must be at least 1"},
		clitest.Case{Args: []string{"rollout", "-clients", "-1"}, Code: 2, Stderr: "kube: -n must be at least 1, -clients at least 0"},
		clitest.Case{Args: []string{"demo"}, Code: 2, Stderr: "kube: demo needs -image"},
		clitest.Case{Args: []string{"admission"}, Code: 2, Stderr: "kube: admission needs -image REGISTRY/NAME:TAG (make k8s-admission passes"},
		clitest.Case{Args: []string{"rollout", "-timeout=-5s"}, Code: 2, Stderr: "kube: -timeout must be more than 0"},
		clitest.Case{Args: []string{"rollout", "-namespace", ""}, Code: 2, Stderr: "kube: -timeout must be more than 0, -namespace a namespace's name"},
		clitest.Case{Args: []string{"-image", "--", "demo", "-h"}, Code: 0, Stdout: "Usage: kube "},
		clitest.Case{Args: []string{"autoscale", "-max-clients", "1"}, Code: 2, Stderr: "kube: -n must be at least 1, -clients at least 0, -max-clients at least 2"},
	)
}

func TestAReferenceWithoutTagIsRefused(t *testing.T) {
	for _, ref := range []string{"whoami", "whoami:1.0", "127.0.0.1:5000/whoami", "127.0.0.1:5000/whoami:", "127.0.0.1:5000/a:b/c"} {
		if _, _, err := digest(t.Context(), ref); err == nil || !strings.Contains(err.Error(), "want REGISTRY/NAME:TAG") {
			t.Errorf("digest(%q) = %v, want REGISTRY/NAME:TAG", ref, err)
		}
	}
}

func TestOverlaySetsTheImageByDigest(t *testing.T) {
	dir := t.TempDir()
	manifests := filepath.Join(t.TempDir(), "kubernetes")
	if err := overlay(dir, manifests, "ns-1", "ns-1.test", "127.0.0.1:5000/whoami", "sha256:abc"); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	base, _ := filepath.Rel(dir, manifests)
	for _, want := range []string{
		"  - " + base + "\n  - " + base + "/gateway\n", // relative, as Kustomize wants a base
		"newName: 127.0.0.1:5000/whoami\n    digest: sha256:abc\n",
		"namespace: ns-1\n",
		`"value": ["ns-1.test"]`,
	} {
		if !bytes.Contains(b, []byte(want)) {
			t.Errorf("the overlay has no %q:\n%s", want, b)
		}
	}
	if err := overlay(dir, manifests, "", "", "r", "sha256:abc"); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "kustomization.yaml")); bytes.Contains(b, []byte("namespace:")) || bytes.Contains(b, []byte("patches:")) {
		t.Errorf("without namespace and host the overlay sets them:\n%s", b)
	}
}

func TestPodsByNodeAndState(t *testing.T) {
	ps := []pod{
		{Name: "a", Node: "node-1", Ready: true},
		{Name: "b", Node: "node-2", Ready: true},
		{Name: "c", Node: "node-2", Ready: true, Terminating: true},
		{Name: "d", Node: "node-1"},
		{Name: "e", Node: "node-1", Gone: true},
	}
	if got := names(serving(ps)); strings.Join(got, ",") != "a,b" {
		t.Errorf("serving: %v, want a, b", got)
	}
	if got := busiest(ps); got != "node-1" {
		t.Errorf("busiest: %s, want node-1 (3 pods)", got)
	}
	if got := busiest(ps[:3]); got != "node-2" {
		t.Errorf("busiest on a tie of counts 1:2: %s, want node-2", got)
	}
	if got := busiest(ps[:2]); got != "node-2" {
		t.Errorf("busiest on a tie: %s, want node-2 (the last by name)", got)
	}
	var out bytes.Buffer
	printPods(&out, ps, map[string]int{"a": 7})
	want := `pod (hostname)           node     IP           state        requests
a                        node-1                Ready        7
b                        node-2                Ready        0
c                        node-2                Terminating  0
d                        node-1                not ready    0
e                        node-1                gone         0
`
	if out.String() != want {
		t.Errorf("printPods:\n%s\nwant:\n%s", out.String(), want)
	}
}
