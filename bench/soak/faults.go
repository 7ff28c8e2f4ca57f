package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/rosettagw/rosetta/bench/internal/promtext"
)

// fault is one kind of trouble the soak causes, from begin until end.
type fault struct {
	name       string
	begin, end func() error
}

// faults returns the schedule's faults, in the order they come round.
func faults(cfg config, w *world) []fault {
	kill := func(p *proc, sig syscall.Signal) fault {
		how := "killed (SIGKILL)"
		if sig == syscall.SIGTERM {
			how = "stopped (SIGTERM)"
		}
		return fault{
			name:  p.name + " " + how + ", started again",
			begin: func() error { p.kill(sig); return nil },
			end:   p.start,
		}
	}
	latency := func(px *faultProxy, what string, d time.Duration) fault {
		return fault{
			name:  fmt.Sprintf("%s: +%s latency (proxy)", what, d),
			begin: func() error { px.setLatency(d); return nil },
			end:   func() error { px.setLatency(0); return nil },
		}
	}
	drops := func(px *faultProxy, what string) fault {
		return fault{
			name:  what + ": every connection reset (proxy)",
			begin: func() error { px.setDropping(true); return nil },
			end:   func() error { px.setDropping(false); return nil },
		}
	}
	return []fault{
		kill(w.replicas[0], syscall.SIGKILL),
		latency(w.upProxy, w.replicas[1].name, cfg.latency),
		drops(w.upProxy, w.replicas[1].name),
		kill(w.redis, syscall.SIGKILL),
		latency(w.redisProxy, "redis", cfg.redisSlow),
		drops(w.redisProxy, "redis"),
		// SIGTERM, not SIGKILL: a broker killed outright loses the
		// messages it acknowledged since its last save, which is the
		// broker's loss, not the gateway's.
		kill(w.broker, syscall.SIGTERM),
		kill(w.replicas[1], syscall.SIGKILL),
	}
}

// event is one fault as it happened, in offsets from the run's start.
type event struct {
	name       string
	start, end time.Duration
}

// runFaults waits out the warm-up, then causes the faults in turn, each
// for cfg.faultFor followed by cfg.faultGap of quiet, round and round
// until a whole fault and gap no longer fit before the run ends.
func runFaults(ctx context.Context, cfg config, w *world, start time.Time, fs []fault) ([]event, error) {
	var events []event
	wait := func(until time.Time) bool {
		select {
		case <-ctx.Done():
			return false
		case <-time.After(time.Until(until)):
			return true
		}
	}
	next := start.Add(cfg.warmup)
	for i := 0; ; i++ {
		if next.Add(cfg.faultFor + cfg.faultGap).After(start.Add(cfg.duration)) {
			break
		}
		if !wait(next) {
			break
		}
		f := fs[i%len(fs)]
		fmt.Fprintf(os.Stderr, "%6.0fs fault: %s\n", time.Since(start).Seconds(), f.name)
		ev := event{name: f.name, start: time.Since(start)}
		if err := f.begin(); err != nil {
			return events, fmt.Errorf("%s: %w", f.name, err)
		}
		wait(time.Now().Add(cfg.faultFor))
		ev.end = time.Since(start)
		if err := f.end(); err != nil { // even when ctx ended: leave nothing broken
			return events, fmt.Errorf("%s, ending it: %w", f.name, err)
		}
		fmt.Fprintf(os.Stderr, "%6.0fs fault over (ending it took %s)\n", time.Since(start).Seconds(), time.Since(start)-ev.end)
		events = append(events, ev)
		next = time.Now().Add(cfg.faultGap)
	}
	<-ctx.Done()
	return events, nil
}

// resourceSample is the gateway's state at one moment.
type resourceSample struct {
	at         time.Duration // since the run's start
	rss        int64         // /proc/PID/status VmRSS
	fds        int           // /proc/PID/fd
	goroutines float64       // its /metrics: go_goroutines
	openFDs    float64       // process_open_fds
	heap       float64       // go_memstats_heap_inuse_bytes
}

// sampleResources takes a sample every interval until ctx ends.
func sampleResources(ctx context.Context, w *world, start time.Time, interval time.Duration) ([]resourceSample, error) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	var out []resourceSample
	for {
		s, err := takeSample(w, time.Since(start))
		if err != nil {
			return out, err
		}
		out = append(out, s)
		select {
		case <-ctx.Done():
			return out, nil
		case <-tick.C:
		}
	}
}

// takeSample reads the gateway's /proc entries and /metrics.
func takeSample(w *world, at time.Duration) (resourceSample, error) {
	s := resourceSample{at: at}
	pid := w.gateway.pid()
	var err error
	if s.rss, err = rssBytes(pid); err != nil {
		return s, err
	}
	if s.fds, err = openFiles(pid); err != nil {
		return s, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	m, err := promtext.Scrape(ctx, w.admin+"/metrics")
	if err != nil {
		return s, err
	}
	s.goroutines, s.openFDs, s.heap = m["go_goroutines"], m["process_open_fds"], m["go_memstats_heap_inuse_bytes"]
	return s, nil
}

// complaints returns how many lines the gateway logged (at warn and above,
// as configured) and up to max distinct ones, their times cut off.
func complaints(log string, max int) logSummary {
	s := logSummary{byMsg: map[string]int{}}
	f, err := os.Open(log)
	if err != nil {
		s.examples = []string{err.Error()}
		return s
	}
	defer f.Close()
	seen := map[string]bool{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		l := sc.Text()
		if strings.HasPrefix(l, "listening on ") || strings.Contains(l, `"level":"INFO"`) || strings.Contains(l, "level=INFO") {
			continue
		}
		s.lines++
		key := msgOf(l)
		s.byMsg[key]++
		if !seen[key] && len(s.examples) < max {
			seen[key] = true
			s.examples = append(s.examples, l)
		}
	}
	return s
}

// logSummary counts the gateway's log lines.
type logSummary struct {
	lines    int
	byMsg    map[string]int
	examples []string
}

// msgOf returns the "msg" of a JSON log line, else the line.
func msgOf(l string) string {
	_, rest, ok := strings.Cut(l, `"msg":"`)
	if !ok {
		return l
	}
	msg, _, _ := strings.Cut(rest, `"`)
	return msg
}
