package main

import (
	"fmt"
	"io"
	"math"
	"os"
	"strings"
)

// drawTo writes the run's image to path.
func drawTo(path string, s *scaling) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := writeSVG(f, s); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// writeSVG draws an autoscaling run as one SVG image: three panels over the
// same time axis (the pods serving and the autoscaler's count, the pods'
// mean CPU against the target, the requests answered per second), the
// rising load shaded, and each change of the pods serving marked. A few
// lines of SVG by hand: the tools' module is the standard library only, and
// three line charts do not need a plotting library.
func writeSVG(w io.Writer, s *scaling) error {
	const (
		width, left, right = 760.0, 70.0, 20.0
		top, panel, gap    = 60.0, 110.0, 40.0
		height             = top + 3*panel + 2*gap + 45
	)
	if len(s.samples) < 2 {
		return fmt.Errorf("%d samples: nothing to draw", len(s.samples))
	}
	end := s.samples[len(s.samples)-1].at.Seconds()
	x := func(sec float64) float64 { return left + (width-left-right)*sec/end }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" font-family="sans-serif" font-size="12">`+"\n", width, height, width, height)
	b.WriteString(`<rect width="100%" height="100%" fill="white"/>` + "\n")
	fmt.Fprintf(&b, `<text x="%.0f" y="22" font-size="14" font-weight="bold">whoami under a rising load: the autoscaler adds pods, then removes them</text>`+"\n", left)
	fmt.Fprintf(&b, `<text x="%.0f" y="40">%d to %d pods, CPU target %d%% of the pods' request; scale-down window %.0f s</text>`+"\n",
		left, s.auto.min, s.auto.max, s.auto.target, s.auto.window.Seconds())

	// The rising load, shaded across the three panels.
	on := -1.0
	for i, smp := range s.samples {
		if smp.loadOn && on < 0 {
			on = smp.at.Seconds()
		}
		if on >= 0 && (!smp.loadOn || i == len(s.samples)-1) {
			fmt.Fprintf(&b, `<rect x="%.1f" y="%.0f" width="%.1f" height="%.0f" fill="#fdebd0"/>`+"\n",
				x(on), top, x(smp.at.Seconds())-x(on), 3*panel+2*gap)
			on = -1
		}
	}

	panels := []struct {
		title string
		unit  string
		lines []svgLine
		guide float64 // a horizontal line (the CPU target); 0: none
	}{
		{"pods", "", []svgLine{
			{"serving", "#1f77b4", false, func(m sample) (float64, bool) { return float64(m.serving), true }},
			{"autoscaler's count", "#7f7f7f", true, func(m sample) (float64, bool) { return float64(m.desired), m.desired > 0 }},
		}, 0},
		{"CPU per pod", "m", []svgLine{
			{"mean of the pods (Metrics API)", "#d62728", false, func(m sample) (float64, bool) { return m.cpu, m.cpuKnown }},
		}, s.request * float64(s.auto.target) / 100},
		{"requests per second", "", []svgLine{
			{"answered, all clients", "#2ca02c", false, func(m sample) (float64, bool) { return m.rps, m.at > 0 }},
		}, 0},
	}
	for i, p := range panels {
		y0 := top + float64(i)*(panel+gap) // the panel's top
		hi := p.guide
		for _, l := range p.lines {
			for _, m := range s.samples {
				if v, ok := l.value(m); ok {
					hi = math.Max(hi, v)
				}
			}
		}
		hi = nice(hi * 1.1)
		y := func(v float64) float64 { return y0 + panel - panel*v/hi }
		fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" font-weight="bold">%s</text>`+"\n", left, y0-6, p.title)
		fmt.Fprintf(&b, `<line x1="%.0f" y1="%.0f" x2="%.0f" y2="%.0f" stroke="black"/>`+"\n", left, y0+panel, width-right, y0+panel)
		fmt.Fprintf(&b, `<line x1="%.0f" y1="%.0f" x2="%.0f" y2="%.0f" stroke="black"/>`+"\n", left, y0, left, y0+panel)
		for _, v := range []float64{0, hi / 2, hi} {
			fmt.Fprintf(&b, `<text x="%.0f" y="%.1f" text-anchor="end">%s%s</text>`+"\n", left-6, y(v)+4, trim(v), p.unit)
		}
		if p.guide > 0 {
			fmt.Fprintf(&b, `<line x1="%.0f" y1="%.1f" x2="%.0f" y2="%.1f" stroke="#d62728" stroke-dasharray="2,3"/>`+"\n", left, y(p.guide), width-right, y(p.guide))
			fmt.Fprintf(&b, `<text x="%.0f" y="%.1f" text-anchor="end" fill="#d62728">target %s%s</text>`+"\n", width-right, y(p.guide)-4, trim(p.guide), p.unit)
		}
		for _, l := range p.lines {
			var pts []string
			for _, m := range s.samples {
				if v, ok := l.value(m); ok {
					pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(m.at.Seconds()), y(v)))
				}
			}
			dash := ""
			if l.dashed {
				dash = ` stroke-dasharray="6,4"`
			}
			fmt.Fprintf(&b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="2"%s/>`+"\n", strings.Join(pts, " "), l.color, dash)
		}
		fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" fill="%s" text-anchor="end">%s</text>`+"\n", width-right, y0-6, p.lines[0].color, legend(p.lines))
	}
	// Scale events: each change of the pods serving.
	for i := 1; i < len(s.samples); i++ {
		d := s.samples[i].serving - s.samples[i-1].serving
		if d == 0 {
			continue
		}
		xe := x(s.samples[i].at.Seconds())
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.0f" x2="%.1f" y2="%.0f" stroke="#555" stroke-dasharray="1,3"/>`+"\n", xe, top, xe, top+3*panel+2*gap)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.0f" text-anchor="middle" fill="#555">%+d</text>`+"\n", xe, top+panel+14, d)
	}
	// The time axis.
	yAxis := top + 3*panel + 2*gap
	step := nice(end / 8)
	for t := 0.0; t <= end; t += step {
		fmt.Fprintf(&b, `<text x="%.1f" y="%.0f" text-anchor="middle">%s</text>`+"\n", x(t), yAxis+16, trim(t))
	}
	fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" text-anchor="middle">seconds (shaded: the rising load through the front door; dotted: a change of the pods serving)</text>`+"\n", (left+width-right)/2, yAxis+34)
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// svgLine is one line of a panel: a value of each sample, if it has one.
type svgLine struct {
	name, color string
	dashed      bool
	value       func(sample) (float64, bool)
}

// legend names a panel's lines.
func legend(lines []svgLine) string {
	names := make([]string, len(lines))
	for i, l := range lines {
		names[i] = l.name
		if l.dashed {
			names[i] += " (dashed)"
		}
	}
	return strings.Join(names, ", ")
}

// nice rounds v up to 1, 2 or 5 times a power of ten.
func nice(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if v <= m*p {
			return m * p
		}
	}
	return 10 * p
}

// trim formats v without needless decimals.
func trim(v float64) string {
	if v == math.Trunc(v) {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.1f", v)
}
