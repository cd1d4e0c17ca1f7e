package dockercli

import (
	"strings"
	"testing"
)

func TestLastLines(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{
		{"a\nb\nc\n", 2, "b\nc"},
		{"a\nb\n", 5, "a\nb"},
		{"\n  only  \n\n", 1, "only"},
		{"", 3, ""},
	} {
		if got := lastLines(tc.in, tc.n); got != tc.want {
			t.Errorf("lastLines(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
}

func TestPeakMemoryOfNoContainer(t *testing.T) {
	if _, err := PeakMemory("not-a-container"); err == nil || !strings.Contains(err.Error(), "no memory peak for container not-a-container") {
		t.Errorf("PeakMemory = %v, want an error naming the container", err)
	}
}
