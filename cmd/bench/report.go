package main

import (
	"bytes"
	_ "embed"
	"fmt"
	"os"
	"slices"
	"text/template"
	"time"
)

// stats is a median and its spread.
type stats struct {
	Median, Min, Max float64
	N                int
}

func summarize(v []float64) stats {
	if len(v) == 0 {
		return stats{}
	}
	s := slices.Sorted(slices.Values(v))
	m := s[len(s)/2]
	if len(s)%2 == 0 {
		m = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return stats{Median: m, Min: s[0], Max: s[len(s)-1], N: len(s)}
}

// ratioRow is whoami against the tutorial's program, round by round.
type ratioRow struct {
	Conns            int
	Tutorial, Whoami float64
	Ratio            stats
}

// report is everything the template shows.
type report struct {
	When, Machine                  string
	Images                         []imageRow // the sizes of make compare-sizes
	SizeRatio                      float64    // single-stage to multistage
	GoVersion, Platform            string
	Binary                         []sizeRow
	Image                          string
	Cold, Warm, Start, Floor, Stop stats
	ExitCodes                      string
	StartRatio                     float64
	RSSIdle, RSSLoad               float64 // MB
	Pinning                        string
	Duration                       time.Duration
	LoadRuns                       int
	Load                           []loadRow
	Ratios                         []ratioRow
	ProfileConns                   int
	Profile                        []profileRow
	HAProxy                        string
	Balancer                       []loadRow
	Restart                        restartStats
}

type sizeRow struct {
	Flags string
	Bytes int64
}

type restartStats struct {
	Seconds, RPS, FirstAnswer stats
	Runs, Requests, Failed    int
}

//go:embed report.md.tmpl
var reportTemplate string

func write(path string, r *report) error {
	t, err := template.New("report").Funcs(template.FuncMap{
		"mb":  func(b int64) string { return fmt.Sprintf("%.2f", float64(b)/1e6) },
		"f":   func(format string, v float64) string { return fmt.Sprintf(format, v) },
		"sub": func(a, b float64) float64 { return a - b },
		// pct: how much smaller, in percent, for a size ratio.
		"pct": func(ratio float64) float64 { return 100 * (1 - 1/ratio) },
	}).Parse(reportTemplate)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := t.Execute(&buf, r); err != nil {
		return err
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		return err
	}
	fmt.Print(buf.String())
	return nil
}
