package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The report renders the sizes as make compare-sizes prints them, from the
// figures the bench measured.
func TestReportRendersTheSizeTable(t *testing.T) {
	r := &report{
		Images: []imageRow{
			{"golang:1.26-bookworm", 842000099, "rebuilt locally (no registry): provision/images/golang"},
			{"whoami:1.0", 941339413, "Dockerfile.single: one stage on golang:1.26-bookworm"},
			{"whoami:2.0", 6168738, "Dockerfile: multistage, FROM scratch"},
			{"bare binary (/whoami)", 6168738, "the only file in whoami:2.0"},
		},
		SizeRatio: 941339413.0 / 6168738,
	}
	path := filepath.Join(t.TempDir(), "benchmarks.md")
	if err := write(path, r); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want := `| image                      |       bytes |       MB | note
|----------------------------|------------:|---------:|-----
| golang:1.26-bookworm       |   842000099 |   842.00 | rebuilt locally (no registry): provision/images/golang
| whoami:1.0                 |   941339413 |   941.34 | Dockerfile.single: one stage on golang:1.26-bookworm
| whoami:2.0                 |     6168738 |     6.17 | Dockerfile: multistage, FROM scratch
| bare binary (/whoami)      |     6168738 |     6.17 | the only file in whoami:2.0

whoami:1.0 is 153 times the size of whoami:2.0 (99.3% smaller).
`
	if !strings.Contains(string(b), want) {
		t.Errorf("the report's sizes:\n%s\nwant:\n%s", b, want)
	}
}

func TestSummarize(t *testing.T) {
	for _, tc := range []struct {
		in   []float64
		want stats
	}{
		{nil, stats{}},
		{[]float64{3}, stats{3, 3, 3, 1}},
		{[]float64{5, 1, 3}, stats{3, 1, 5, 3}},
		{[]float64{4, 1, 2, 3}, stats{2.5, 1, 4, 4}},
	} {
		if got := summarize(tc.in); got != tc.want {
			t.Errorf("summarize(%v) = %+v, want %+v", tc.in, got, tc.want)
		}
	}
}
