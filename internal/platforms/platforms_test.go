package platforms

import (
	"strings"
	"testing"

	"whoami/internal/facts"
)

// Every platform a release is built for (.env's PLATFORMS) has its ELF
// machine here, so the tests can check its binary; and nothing else.
func TestEveryReleasedPlatformHasItsMachine(t *testing.T) {
	env, err := facts.Load("../..")
	if err != nil {
		t.Fatal(err)
	}
	released := strings.Split(env["PLATFORMS"], ",")
	for _, p := range released {
		if _, ok := ELF[p]; !ok {
			t.Errorf("%s is released but has no ELF machine here", p)
		}
	}
	if len(ELF) != len(released) {
		t.Errorf("%d machines for %d released platforms %v", len(ELF), len(released), released)
	}
}
