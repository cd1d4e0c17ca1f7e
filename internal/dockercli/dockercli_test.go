package dockercli

import (
	"strings"
	"testing"
)

func TestPeakMemoryOfNoContainer(t *testing.T) {
	if _, err := PeakMemory("not-a-container"); err == nil || !strings.Contains(err.Error(), "no memory peak for container not-a-container") {
		t.Errorf("PeakMemory = %v, want an error naming the container", err)
	}
}

func TestPublished(t *testing.T) {
	for out, want := range map[string]string{
		"0.0.0.0:49153\n[::]:49153\n": "127.0.0.1:49153",
		"127.0.0.1:32768":             "127.0.0.1:32768",
		"[::]:8080\n":                 "127.0.0.1:8080",
	} {
		if got, err := Published(out); got != want || err != nil {
			t.Errorf("Published(%q) = %q, %v; want %q", out, got, err, want)
		}
	}
	for _, out := range []string{"", "Error: No public port '8080/tcp' published", ":0"} {
		if got, err := Published(out); err == nil {
			t.Errorf("Published(%q) = %q, want an error", out, got)
		}
	}
}

func TestRandomName(t *testing.T) {
	a, b := RandomName(), RandomName()
	if len(a) != 8 || a == b || strings.ToLower(a) != a {
		t.Errorf("RandomName: %q, %q", a, b)
	}
}
