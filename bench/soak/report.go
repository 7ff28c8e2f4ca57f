package main

import (
	"fmt"
	"io"
	"maps"
	"math"
	"runtime"
	"slices"
	"strings"
	"time"
)

// report is everything the soak prints.
type report struct {
	cfg                   config
	start, end            time.Time
	loadBefore, loadAfter string
	capacity, rates       map[string]float64
	protocols             []*protocol
	buckets               map[string][]bucket
	events                []event
	samples               []resourceSample
	after                 resourceSample
	mqtt                  mqttResult
	logLines              logSummary
}

// tally is calls of one protocol (or all) over a span of seconds.
type tally struct {
	calls, errors, limited int64
	latSum, latMax         time.Duration
	firstErr               string
}

func (t *tally) add(b bucket) {
	t.calls += b.calls
	t.errors += b.errors
	t.limited += b.limited
	t.latSum += b.latSum
	t.latMax = max(t.latMax, b.latMax)
	if t.firstErr == "" {
		t.firstErr = b.firstErr
	}
}

// span sums the buckets of every protocol in seconds [from, to).
func span(buckets map[string][]bucket, from, to int) map[string]*tally {
	out := map[string]*tally{}
	for name, bs := range buckets {
		t := &tally{}
		for s := max(from, 0); s < min(to, len(bs)); s++ {
			t.add(bs[s])
		}
		out[name] = t
	}
	return out
}

// recovery returns the time from end to the start of the first second,
// before limit, in which calls were made and none failed, on any protocol;
// ok is false when there was none. Errors only before end still need a
// clean second after it: the first second at or after end is the earliest.
func recovery(buckets map[string][]bucket, end time.Duration, limit int) (time.Duration, bool) {
	for s := int(math.Ceil(end.Seconds())); s < limit; s++ {
		var calls, errs int64
		for _, bs := range buckets {
			if s < len(bs) {
				calls += bs[s].calls
				errs += bs[s].errors
			}
		}
		if calls > 0 && errs == 0 {
			return max(time.Duration(s)*time.Second-end, 0), true
		}
	}
	return 0, false
}

// slope is the least-squares slope of y over x.
func slope(x, y []float64) float64 {
	n := float64(len(x))
	if n < 2 {
		return math.NaN()
	}
	var sx, sy, sxx, sxy float64
	for i := range x {
		sx += x[i]
		sy += y[i]
		sxx += x[i] * x[i]
		sxy += x[i] * y[i]
	}
	d := n*sxx - sx*sx
	if d == 0 {
		return math.NaN()
	}
	return (n*sxy - sx*sy) / d
}

func (r *report) names() []string {
	var out []string
	for _, p := range r.protocols {
		out = append(out, p.name)
	}
	return out
}

func (r *report) write(w io.Writer) {
	cfg := r.cfg
	names := r.names()
	total := int(math.Ceil(r.end.Sub(r.start).Seconds()))
	fmt.Fprintf(w, "### Soak with faults, %s\n\n", r.start.UTC().Format("2006-01-02 15:04 UTC"))
	fmt.Fprintf(w, "- Rosetta %s, %s, %d CPUs; load average (1 min) %s before the loaded run, %s after\n",
		cfg.build, runtime.GOARCH, runtime.NumCPU(), r.loadBefore, r.loadAfter)
	fmt.Fprintf(w, "- %s loaded (%s warm-up without faults), faults of %s each followed by %s of quiet; %d clients per protocol; samples every %s\n",
		r.end.Sub(r.start).Round(time.Second), cfg.warmup, cfg.faultFor, cfg.faultGap, cfg.workers, cfg.sample)
	var sum float64
	var rates []string
	for _, n := range names {
		sum += r.rates[n]
		if r.capacity != nil {
			rates = append(rates, fmt.Sprintf("%s %.0f (capacity %.0f)", n, r.rates[n], r.capacity[n]))
		} else {
			rates = append(rates, fmt.Sprintf("%s %.0f", n, r.rates[n]))
		}
	}
	if r.capacity != nil {
		fmt.Fprintf(w, "- rate: %.0f calls/s in all, %.0f%% of the capacity measured over %s with every protocol's clients calling back to back: %s\n",
			sum, cfg.load*100, cfg.capacity, strings.Join(rates, ", "))
	} else {
		fmt.Fprintf(w, "- rate: %.0f calls/s in all (-rate): %s\n", sum, strings.Join(rates, ", "))
	}
	fmt.Fprintln(w)

	fmt.Fprintln(w, "**Whole run**")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| protocol | calls | errors | error rate | rate limited | not started (every client busy) | mean latency | max latency |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|")
	all := span(r.buckets, 0, total)
	for i, n := range names {
		t := all[n]
		if t == nil {
			t = &tally{}
		}
		fmt.Fprintf(w, "| %s | %d | %d | %s | %d | %d | %s | %s |\n", n, t.calls, t.errors, pct(t.errors, t.calls), t.limited, r.protocols[i].skipped.Load(), mean(t), ms(t.latMax))
	}
	fmt.Fprintln(w)

	// Seconds in no fault window (a window runs from the fault's start to
	// the next fault's start, or to the end).
	inFault := make([]bool, total+1)
	fmt.Fprintln(w, "**Per fault** (window: from the fault's start to the next one's; recovery: from the fault's end to the first second with calls and no error on any protocol)")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| at | fault | calls | errors (during / after) | error rate | recovery | max latency | errors by protocol | first error |")
	fmt.Fprintln(w, "|---:|---|---:|---:|---:|---:|---:|---|---|")
	for i, ev := range r.events {
		from, mid, to := int(ev.start.Seconds()), int(math.Ceil(ev.end.Seconds())), total
		if i+1 < len(r.events) {
			to = int(r.events[i+1].start.Seconds())
		}
		for s := from; s < to && s < len(inFault); s++ {
			inFault[s] = true
		}
		during, after := span(r.buckets, from, mid), span(r.buckets, mid, to)
		var calls, errsDuring, errsAfter int64
		var slowest time.Duration
		var by []string
		first := ""
		for _, n := range names {
			d, a := during[n], after[n]
			if d == nil {
				continue
			}
			calls += d.calls + a.calls
			slowest = max(slowest, d.latMax, a.latMax)
			errsDuring += d.errors
			errsAfter += a.errors
			if e := d.errors + a.errors; e > 0 {
				by = append(by, fmt.Sprintf("%s %d/%d", n, e, d.calls+a.calls))
				if first == "" {
					first = n + ": " + cmp(d.firstErr, a.firstErr)
				}
			}
		}
		rec := "0 s (no error)"
		if errsDuring+errsAfter > 0 {
			if d, ok := recovery(r.buckets, ev.end, to); ok {
				rec = fmt.Sprintf("%.0f s", d.Seconds())
			} else {
				rec = "**not within the window**"
			}
		}
		fmt.Fprintf(w, "| %s | %s | %d | %d / %d | %s | %s | %s | %s | %s |\n", clock(ev.start), ev.name, calls, errsDuring, errsAfter,
			pct(errsDuring+errsAfter, calls), rec, ms(slowest), strings.Join(by, ", "), cell(first))
	}
	var quiet tally
	quietFirst := ""
	for s := 0; s < total; s++ {
		if inFault[s] {
			continue
		}
		for _, n := range names {
			if bs := r.buckets[n]; s < len(bs) {
				quiet.add(bs[s])
				if bs[s].errors > 0 && quietFirst == "" {
					quietFirst = fmt.Sprintf("at %s, %s: %s", clock(time.Duration(s)*time.Second), n, bs[s].firstErr)
				}
			}
		}
	}
	fmt.Fprintf(w, "\nOutside the fault windows (warm-up): %d calls, %d errors%s\n\n", quiet.calls, quiet.errors, ifSet(": ", cell(quietFirst)))

	r.writeResources(w)

	m := r.mqtt
	fmt.Fprintln(w, "**MQTT, end to end** (QoS 1 readings, each with a unique id, acknowledged by Mosquitto to the device, against the ids the upstream replicas recorded; a reading not acknowledged is published again with its id)")
	fmt.Fprintln(w)
	fmt.Fprintf(w, "- acknowledged: %d; recorded upstream: %d; **lost: %d**%s; Record calls in all: %d (%d duplicates, at least once); publishes tried: %d; waited %s after the load for the last ones\n\n",
		m.acked, m.acked-m.lost, m.lost, missingList(m.missing), m.calls, m.calls-(m.acked-m.lost), m.tries, m.waited.Round(time.Second))

	fmt.Fprintf(w, "**Gateway log** (warn and above): %d lines", r.logLines.lines)
	if r.logLines.lines > 0 {
		keys := slices.Collect(maps.Keys(r.logLines.byMsg))
		slices.SortFunc(keys, func(a, b string) int { return r.logLines.byMsg[b] - r.logLines.byMsg[a] })
		var parts []string
		for _, k := range keys[:min(len(keys), 10)] {
			parts = append(parts, fmt.Sprintf("%d × %q", r.logLines.byMsg[k], k))
		}
		fmt.Fprintf(w, ": %s", strings.Join(parts, "; "))
	}
	fmt.Fprintln(w)
}

// writeResources prints the gateway's samples (at most about 30 rows) and
// the slopes after the warm-up.
func (r *report) writeResources(w io.Writer) {
	fmt.Fprintln(w, "**Gateway resources** (RSS and descriptors from /proc, goroutines and heap from its /metrics)")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| at | RSS MB | heap in use MB | goroutines | open fds |")
	fmt.Fprintln(w, "|---:|---:|---:|---:|---:|")
	step := max(1, len(r.samples)/30)
	for i, s := range r.samples {
		if i%step == 0 || i == len(r.samples)-1 {
			fmt.Fprintf(w, "| %s | %.1f | %.1f | %.0f | %d |\n", clock(s.at), mb(float64(s.rss)), mb(s.heap), s.goroutines, s.fds)
		}
	}
	a := r.after
	fmt.Fprintf(w, "| after the load | %.1f | %.1f | %.0f | %d |\n\n", mb(float64(a.rss)), mb(a.heap), a.goroutines, a.fds)
	var x, rss, heap, gor, fds []float64
	for _, s := range r.samples {
		if s.at < r.cfg.warmup {
			continue
		}
		x = append(x, s.at.Hours())
		rss = append(rss, mb(float64(s.rss)))
		heap = append(heap, mb(s.heap))
		gor = append(gor, s.goroutines)
		fds = append(fds, float64(s.fds))
	}
	fmt.Fprintf(w, "Least-squares slopes after the warm-up (%d samples): RSS %+.1f MB/h, heap in use %+.1f MB/h, goroutines %+.1f /h, open descriptors %+.1f /h\n\n",
		len(x), slope(x, rss), slope(x, heap), slope(x, gor), slope(x, fds))
}

func missingList(ids []string) string {
	if len(ids) == 0 {
		return ""
	}
	return " (e.g. " + strings.Join(ids, ", ") + ")"
}

func pct(n, of int64) string {
	if of == 0 {
		return "–"
	}
	return fmt.Sprintf("%.3f%%", 100*float64(n)/float64(of))
}

func mean(t *tally) string {
	if t.calls == 0 {
		return "–"
	}
	return ms(t.latSum / time.Duration(t.calls))
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/1e6) }

func mb(b float64) float64 { return b / (1 << 20) }

// clock formats an offset as m:ss.
func clock(d time.Duration) string {
	s := int(d.Seconds())
	return fmt.Sprintf("%d:%02d", s/60, s%60)
}

func cmp(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func ifSet(prefix, s string) string {
	if s == "" {
		return ""
	}
	return prefix + s
}

// cell makes s fit a markdown table cell.
func cell(s string) string {
	s = strings.ReplaceAll(strings.ReplaceAll(s, "|", "\\|"), "\n", " ")
	if len(s) > 160 {
		s = s[:160] + "…"
	}
	return s
}
