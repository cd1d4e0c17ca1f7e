package main

import (
	"encoding/xml"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
	"whoami/internal/probe"
)

func TestMillicores(t *testing.T) {
	for q, want := range map[string]float64{"12345678n": 12.345678, "1500u": 1.5, "25m": 25, "2": 2000, "0": 0} {
		if got, err := millicores(q); err != nil || got != want {
			t.Errorf("millicores(%q) = %v, %v; want %v", q, got, err, want)
		}
	}
	for _, q := range []string{"", "m", "12x", "-5m", "1.2.3"} {
		if got, err := millicores(q); err == nil {
			t.Errorf("millicores(%q) = %v, want an error", q, got)
		}
	}
}

// The image is well-formed SVG with a line per series and a mark per
// change of the pods serving.
func TestTheRunIsDrawn(t *testing.T) {
	s := &scaling{auto: autoscaler{min: 3, max: 6, target: 50}, request: 50}
	for i, serving := range []int{3, 3, 3, 5, 5, 5, 3, 3} {
		s.samples = append(s.samples, sample{at: time.Duration(i) * 5 * time.Second, serving: serving, desired: serving,
			cpu: float64(10 * i), cpuKnown: i > 0, rps: 100, loadOn: i >= 1 && i < 5})
	}
	var b strings.Builder
	if err := writeSVG(&b, s); err != nil {
		t.Fatal(err)
	}
	polylines, elements := 0, 0
	d := xml.NewDecoder(strings.NewReader(b.String()))
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("not well-formed: %v\n%s", err, b.String())
		}
		if se, ok := tok.(xml.StartElement); ok {
			elements++
			if se.Name.Local == "polyline" {
				polylines++
			}
		}
	}
	if polylines != 4 {
		t.Errorf("%d polylines, want 4: serving, the autoscaler's count, CPU, requests", polylines)
	}
	for _, want := range []string{">+2</text>", ">-2</text>", ">target 25m</text>", "3 to 6 pods, CPU target 50%"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("the image has no %q", want)
		}
	}
	if err := writeSVG(io.Discard, &scaling{}); err == nil {
		t.Error("no samples: want an error, not an empty image")
	}
}

// The goals the demo and the cluster test hold the run to, each failing.
func TestReportHoldsTheGoals(t *testing.T) {
	good := func() *scaling {
		return &scaling{auto: autoscaler{min: 3, window: time.Minute}, crossed: 20 * time.Second, outServing: 30 * time.Second,
			loadOff: 45 * time.Second, backToMin: 125 * time.Second, paced: loads{{}, {}}}
	}
	if err := good().report(&kube{}); err != nil {
		t.Errorf("a run within the goals: %v", err)
	}
	for name, c := range map[string]struct {
		change func(*scaling)
		want   string
	}{
		"late":          {func(s *scaling) { s.outServing = s.crossed + 91*time.Second }, "a new pod served 91 s after"},
		"never out":     {func(s *scaling) { s.outServing = -1 }, "a new pod served"},
		"never crossed": {func(s *scaling) { s.crossed = -1 }, "a new pod served"},
		"slow in":       {func(s *scaling) { s.backToMin = s.loadOff + 2*time.Minute + time.Second }, "back to the minimum 121 s after"},
		"never in":      {func(s *scaling) { s.backToMin = -1 }, "back to the minimum"},
	} {
		s := good()
		c.change(s)
		if err := s.report(&kube{}); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", name, err, c.want)
		}
	}
	// One failed request through the front door.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "no", http.StatusServiceUnavailable) }))
	defer srv.Close()
	l := probe.Start(t.Context(), srv.URL, probe.Options{Clients: 1, Interval: time.Hour})
	for total, _ := l.Counts(); total < 1; total, _ = l.Counts() {
		time.Sleep(time.Millisecond)
	}
	l.Stop()
	s := good()
	s.paced[1].Load = l
	if err := s.report(&kube{}); err == nil || !strings.Contains(err.Error(), "1 requests failed") {
		t.Errorf("one failed request: %v, want the run to fail", err)
	}
}
