package main

import (
	"fmt"
	"io"
	"math"
	"slices"
	"time"
)

// sample is one measured run of one target on one scenario.
type sample struct {
	rps         float64
	p50, p99    time.Duration
	errors      int64
	proxyCPU    float64 // µs of the proxy's CPU per request; NaN without a proxy
	upstreamCPU float64 // µs of the upstream's CPU per request
}

// cell names a target on a scenario.
type cell struct{ scenario, target string }

// summary is the medians of a cell's samples, with the range of the proxy's
// CPU per request and the errors of all rounds.
type summary struct {
	rps, p50, p99, proxy, upstream float64 // medians; p50 and p99 in ms
	proxyMin, proxyMax             float64 // NaN without a proxy
	errors                         int64
	responseBytes                  int
}

// summarize takes the median of every measure over the rounds.
func summarize(samples []sample, responseBytes int) summary {
	s := summary{responseBytes: responseBytes}
	col := func(f func(sample) float64) []float64 {
		v := make([]float64, len(samples))
		for i, x := range samples {
			v[i] = f(x)
		}
		return v
	}
	proxy := col(func(x sample) float64 { return x.proxyCPU })
	s.proxyMin, s.proxyMax = slices.Min(proxy), slices.Max(proxy)
	s.proxy = median(proxy)
	s.rps = median(col(func(x sample) float64 { return x.rps }))
	s.p50 = median(col(func(x sample) float64 { return float64(x.p50) / 1e6 }))
	s.p99 = median(col(func(x sample) float64 { return float64(x.p99) / 1e6 }))
	s.upstream = median(col(func(x sample) float64 { return x.upstreamCPU }))
	for _, x := range samples {
		s.errors += x.errors
	}
	return s
}

// median returns the median of v (NaN when empty); v is reordered.
func median(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	slices.Sort(v)
	m := len(v) / 2
	if len(v)%2 == 1 {
		return v[m]
	}
	return (v[m-1] + v[m]) / 2
}

// report is everything the markdown output shows.
type report struct {
	header    []string // lines describing the machine and the settings
	scenarios []*scenario
	targets   []*target
	cells     map[cell]summary
	notes     []string
}

// write renders the report as markdown.
func (r *report) write(w io.Writer) {
	for _, h := range r.header {
		fmt.Fprintln(w, h)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| scenario | target | req/s | ×gw | p50 ms | p99 ms | errors | proxy CPU µs/req (range) | ×gw | upstream CPU µs/req | ×gw | response B |")
	fmt.Fprintln(w, "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
	for _, sc := range r.scenarios {
		gw, hasGW := r.cells[cell{sc.name, gateway}]
		for _, t := range r.targets {
			c, ok := r.cells[cell{sc.name, t.name}]
			if !ok {
				fmt.Fprintf(w, "| %s | %s | n/a | | | | | | | | | |\n", sc.name, t.name)
				continue
			}
			ratio := func(v, ref float64) string {
				if !hasGW || math.IsNaN(v) {
					return ""
				}
				return fmt.Sprintf("%.2f", v/ref)
			}
			size := "—"
			if c.responseBytes > 0 {
				size = fmt.Sprint(c.responseBytes)
			}
			fmt.Fprintf(w, "| %s | %s | %.0f | %s | %.2f | %.2f | %d | %s | %s | %s | %s | %s |\n",
				sc.name, t.name, c.rps, ratio(c.rps, gw.rps), c.p50, c.p99, c.errors,
				proxyCPU(c), ratio(c.proxy, gw.proxy), micros(c.upstream), ratio(c.upstream, gw.upstream),
				size)
		}
	}
	fmt.Fprintln(w)
	r.writeGoals(w)
	if len(r.notes) > 0 {
		fmt.Fprintln(w)
		for _, n := range r.notes {
			fmt.Fprintln(w, "- "+n)
		}
	}
}

// micros formats a CPU time per request.
func micros(v float64) string {
	if math.IsNaN(v) {
		return "—"
	}
	return fmt.Sprintf("%.1f", v)
}

// proxyCPU formats the median CPU per request of a proxy with its range
// over the rounds.
func proxyCPU(c summary) string {
	if math.IsNaN(c.proxy) {
		return "—"
	}
	if c.proxyMin == c.proxyMax {
		return micros(c.proxy)
	}
	return fmt.Sprintf("%s (%.0f–%.0f)", micros(c.proxy), c.proxyMin, c.proxyMax)
}

// goal is one of issue 8's targets, a ratio of two medians of this run.
type goal struct {
	what     string
	num, den cell
	field    func(summary) float64
	limit    float64
	atMost   bool
}

// writeGoals lists issue 8's targets against this run's ratios.
func (r *report) writeGoals(w io.Writer) {
	rps := func(s summary) float64 { return s.rps }
	proxy := func(s summary) float64 { return s.proxy }
	upstream := func(s summary) float64 { return s.upstream }
	small, kb2 := r.scenarios[0].name, r.scenarios[1].name
	goals := []goal{
		{"CPU per request, 2 KB POST, Rosetta ÷ grpc-gateway", cell{kb2, rosetta}, cell{kb2, gateway}, proxy, 0.8, true},
		{"CPU per request, 2 KB POST, Rosetta ÷ vanguard", cell{kb2, rosetta}, cell{kb2, vanguard}, proxy, 0.5, true},
		{"throughput, 2 KB POST, Rosetta ÷ grpc-gateway", cell{kb2, rosetta}, cell{kb2, gateway}, rps, 1.2, false},
		{"throughput, small GET, Rosetta ÷ grpc-gateway", cell{small, rosetta}, cell{small, gateway}, rps, 1.0, false},
		{"issue 18: CPU per request, small GET, default config ÷ grpc-gateway", cell{small, rosettaDefault}, cell{small, gateway}, proxy, 0.6, true},
	}
	for _, sc := range r.scenarios[1:] {
		goals = append(goals, goal{"issue 18: CPU per request, " + sc.name + ", default config ÷ grpc-gateway",
			cell{sc.name, rosettaDefault}, cell{sc.name, gateway}, proxy, 0.5, true})
	}
	for _, sc := range r.scenarios {
		if _, na := sc.notServed[rosetta]; !na {
			goals = append(goals, goal{"upstream CPU per request, " + sc.name + ", behind Rosetta ÷ behind grpc-gateway",
				cell{sc.name, rosetta}, cell{sc.name, gateway}, upstream, 1.0, true})
		}
	}
	fmt.Fprintln(w, "| target (issue 8, issue 18) | goal | this run | |")
	fmt.Fprintln(w, "|---|--:|--:|---|")
	for _, g := range goals {
		num, ok1 := r.cells[g.num]
		den, ok2 := r.cells[g.den]
		op := "≥"
		if g.atMost {
			op = "≤"
		}
		if !ok1 || !ok2 {
			fmt.Fprintf(w, "| %s | %s %.1f | n/a | |\n", g.what, op, g.limit)
			continue
		}
		v := g.field(num) / g.field(den)
		verdict := "missed"
		if (g.atMost && v <= g.limit) || (!g.atMost && v >= g.limit) {
			verdict = "met"
		}
		fmt.Fprintf(w, "| %s | %s %.1f | %.2f | %s |\n", g.what, op, g.limit, v, verdict)
	}
}
