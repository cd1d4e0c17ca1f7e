package registry

import (
	"strings"
	"testing"
)

func TestParseRef(t *testing.T) {
	const d = "sha256:0bce64b75e4a0ab83d1f83a1fbf24e1910a06b0c87da3b245a98a14580a11154"
	for s, want := range map[string]Ref{
		"127.0.0.1:5000/whoami:v1":             {Host: "127.0.0.1:5000", Repo: "whoami", Tag: "v1"},
		"127.0.0.1:5000/team/whoami:v1":        {Host: "127.0.0.1:5000", Repo: "team/whoami", Tag: "v1"},
		"127.0.0.1:5000/whoami@" + d:           {Host: "127.0.0.1:5000", Repo: "whoami", Digest: d},
		"127.0.0.1:5000/whoami:v1@" + d:        {Host: "127.0.0.1:5000", Repo: "whoami", Tag: "v1", Digest: d},
		"registry.example/a/b:c":               {Host: "registry.example", Repo: "a/b", Tag: "c"},
		"localhost/whoami:dev":                 {Host: "localhost", Repo: "whoami", Tag: "dev"},
		"127.0.0.1:5000/kubernetes/pause:3.10": {Host: "127.0.0.1:5000", Repo: "kubernetes/pause", Tag: "3.10"},
	} {
		got, err := ParseRef(s)
		if err != nil || got != want {
			t.Errorf("ParseRef(%q) = %+v, %v; want %+v", s, got, err, want)
		}
		if err == nil && got.String() != s {
			t.Errorf("ParseRef(%q).String() = %q", s, got.String())
		}
	}
	for _, s := range []string{"whoami", "whoami:1.0", "library/whoami:1.0", "127.0.0.1:5000/whoami",
		"127.0.0.1:5000/whoami:", "127.0.0.1:5000/:v1", "127.0.0.1:5000/a:b/c", "127.0.0.1:5000/whoami@md5:x", "",
		"localhost:1/ok:v1?x=1#frag", "localhost:1/ok@sha256:", "localhost:1/ok:bad tag!", "localhost:1/who\nami:v1",
		"localhost:1/UPPER:v1", "localhost:1//x:v1", "localhost:1/x/:v1", "http://x/y:v1", "a b:1/x:v1"} {
		if r, err := ParseRef(s); err == nil || !strings.Contains(err.Error(), "want REGISTRY/NAME:TAG") {
			t.Errorf("ParseRef(%q) = %+v, %v; want an error", s, r, err)
		}
	}
	if r, _ := ParseRef("127.0.0.1:5000/whoami:v1@" + d); r.Reference() != d {
		t.Errorf("Reference() = %q, want the digest", r.Reference())
	}
}
