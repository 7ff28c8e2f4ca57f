package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	ws "github.com/coder/websocket"

	"github.com/rosettagw/rosetta/bench/internal/machine"
	"github.com/rosettagw/rosetta/bench/internal/promtext"
)

// The WebSocket run's fixed settings.
const (
	chatPath = "/ws/example.library.v1.LibraryService/Chat"
	window   = 16 // echo messages in flight per connection
	// fdSlack is the descriptors a process needs besides one per connection.
	fdSlack = 256
)

// echoMessage is the request frame of the echo run; the gateway answers
// {"result": {"message": ...}}.
var echoMessage = []byte(`{"message":"bench"}`)

// runWebSocket is the driver's ws mode: it starts the upstream and Rosetta,
// measures echo messages per second on a bidirectional Chat stream over
// cfg.concurrency WebSocket connections (rounds × seconds), then opens
// cfg.idle connections and reads the gateway's resident memory before and after.
func runWebSocket(ctx context.Context, cfg config) error {
	idle := cfg.idle
	if err := raiseFileLimit(uint64(idle + fdSlack)); err != nil {
		return err
	}
	hz, err := clockTicks()
	if err != nil {
		return err
	}
	upstream, err := startUpstream(cfg)
	if err != nil {
		return err
	}
	defer upstream.stop()
	upAddr := upstream.addr
	addr, err := machine.FreeAddr()
	if err != nil {
		return err
	}
	file := filepath.Join(cfg.work, "rosetta.yaml")
	// Heartbeat and idle timeout far beyond the run: idle clients do not read,
	// so they would not answer pings.
	// The admin listener's metrics break the idle memory down (Go runtime).
	adminAddr, err := machine.FreeAddr()
	if err != nil {
		return err
	}
	conf := strings.Replace(rosettaConfig(addr, upAddr, cfg.descriptors), "listen:\n", "listen:\n  admin: "+adminAddr+"\n", 1) +
		"websocket: {ping_interval: 10m, idle_timeout: 10m}\n"
	if err := os.WriteFile(file, []byte(conf), 0o644); err != nil {
		return err
	}
	gw, err := startProcess(cfg.work, "rosetta", addr, filepath.Join(cfg.bin, "rosetta"), "serve", "-config", file)
	if err != nil {
		return err
	}
	defer gw.stop()
	if limit, err := gw.fileLimit(); err != nil || limit < uint64(idle+fdSlack) {
		return fmt.Errorf("rosetta may open %d files (%v), fewer than the %d connections need; raise ulimit -n", limit, err, idle+fdSlack)
	}
	url := "ws://" + addr + chatPath

	budget := time.Duration(cfg.rounds*(cfg.seconds+cfg.warmup+3))*time.Second + time.Duration(idle/100)*time.Second + 2*time.Minute
	ctx, cancel := context.WithTimeout(ctx, budget)
	defer cancel()
	fmt.Fprintf(os.Stderr, "measuring: %d rounds of %ds echo (+%ds warm-up) on %d connections, then %d idle connections; at most %s\n",
		cfg.rounds, cfg.seconds, cfg.warmup, cfg.concurrency, idle, budget)
	loadBefore := machine.LoadAverage()
	var echoes []echoSample
	for round := range cfg.rounds {
		s, err := echoRound(ctx, cfg, hz, url, gw, upstream)
		if err != nil {
			return fmt.Errorf("echo round %d: %w", round+1, err)
		}
		fmt.Fprintf(os.Stderr, "round %d/%d  %8.0f msgs/s  rosetta %.1f µs/msg  upstream %.1f µs/msg\n",
			round+1, cfg.rounds, s.rate, s.proxyCPU, s.upstreamCPU)
		echoes = append(echoes, s)
	}
	mem, err := idleMemory(ctx, url, "http://"+adminAddr+"/metrics", gw, idle)
	if err != nil {
		return fmt.Errorf("idle connections: %w", err)
	}
	writeWebSocketReport(os.Stdout, cfg, hz, loadBefore, machine.LoadAverage(), echoes, mem)
	return nil
}

// echoSample is one measured echo run.
type echoSample struct {
	rate                  float64 // echoed messages per second
	proxyCPU, upstreamCPU float64 // µs per message
}

// echoRound runs one warm-up and one measured echo run, each on fresh
// connections, and reads both processes' CPU time around the measured one.
func echoRound(ctx context.Context, cfg config, hz float64, url string, gw, upstream *process) (echoSample, error) {
	if cfg.warmup > 0 {
		if _, _, err := echo(ctx, url, cfg.concurrency, time.Duration(cfg.warmup)*time.Second, nil); err != nil {
			return echoSample{}, fmt.Errorf("warm-up: %w", err)
		}
	}
	var gwBefore, upBefore int64
	measureFrom := func() error { // called once every connection is open
		var err1, err2 error
		gwBefore, err1 = gw.cpuTicks()
		upBefore, err2 = upstream.cpuTicks()
		return errors.Join(err1, err2)
	}
	n, elapsed, err := echo(ctx, url, cfg.concurrency, time.Duration(cfg.seconds)*time.Second, measureFrom)
	if err != nil {
		return echoSample{}, err
	}
	gwAfter, err1 := gw.cpuTicks()
	upAfter, err2 := upstream.cpuTicks()
	if err := errors.Join(err1, err2); err != nil {
		return echoSample{}, err
	}
	if n == 0 {
		return echoSample{}, errors.New("no message echoed")
	}
	perMessage := func(ticks int64) float64 { return float64(ticks) / hz * 1e6 / float64(n) }
	return echoSample{rate: float64(n) / elapsed.Seconds(), proxyCPU: perMessage(gwAfter - gwBefore), upstreamCPU: perMessage(upAfter - upBefore)}, nil
}

// echo opens conns Chat calls, then has each keep window messages in flight
// for d, and returns how many echoes came back and over how long. started,
// if not nil, is called once every connection is open, just before the
// clock starts. Each echo is checked.
func echo(ctx context.Context, url string, conns int, d time.Duration, started func() error) (int64, time.Duration, error) {
	cs := make([]*ws.Conn, 0, conns)
	defer func() {
		for _, c := range cs {
			c.CloseNow()
		}
	}()
	for range conns {
		c, err := dialChat(ctx, url)
		if err != nil {
			return 0, 0, err
		}
		cs = append(cs, c)
	}
	if started != nil {
		if err := started(); err != nil {
			return 0, 0, err
		}
	}
	var echoed atomic.Int64
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	errs := make(chan error, conns)
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(d)
	for _, c := range cs {
		wg.Go(func() { errs <- pump(runCtx, c, deadline, &echoed) })
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(errs)
	for err := range errs {
		if err != nil {
			return 0, 0, err
		}
	}
	return echoed.Load(), elapsed, nil
}

// pump keeps window messages in flight on c until deadline, then
// half-closes the call and reads the echoes still due and the final status;
// every echo is counted and checked.
func pump(ctx context.Context, c *ws.Conn, deadline time.Time, echoed *atomic.Int64) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	credit := make(chan struct{}, window)
	for range window {
		credit <- struct{}{}
	}
	wrote := make(chan error, 1)
	go func() {
		err := func() error {
			for time.Now().Before(deadline) {
				select {
				case <-credit:
				case <-ctx.Done():
					return ctx.Err()
				}
				if err := c.Write(ctx, ws.MessageText, echoMessage); err != nil {
					return err
				}
			}
			return c.Write(ctx, ws.MessageText, nil) // half-close: the upstream ends the call
		}()
		if err != nil {
			cancel() // unblocks the reader
		}
		wrote <- err
	}()
	for {
		end, err := readEcho(ctx, c)
		if err != nil {
			return errors.Join(err, <-wrote)
		}
		if end {
			return <-wrote
		}
		echoed.Add(1)
		credit <- struct{}{}
	}
}

// readEcho reads one frame and checks that it is the echo of echoMessage or
// the final OK status (end).
func readEcho(ctx context.Context, c *ws.Conn) (end bool, err error) {
	_, data, err := c.Read(ctx)
	if err != nil {
		return false, err
	}
	var frame struct {
		Result *struct{ Message string } `json:"result"`
		Status *struct{ Code int }       `json:"status"`
	}
	switch {
	case json.Unmarshal(data, &frame) != nil:
	case frame.Status != nil && frame.Status.Code == 0:
		return true, nil
	case frame.Result != nil && frame.Result.Message == "bench":
		return false, nil
	}
	return false, fmt.Errorf("neither an echo nor an OK status: %s", truncate(data))
}

// dialChat opens one Chat call with the rosetta.json subprotocol.
func dialChat(ctx context.Context, url string) (*ws.Conn, error) {
	c, _, err := ws.Dial(ctx, url, &ws.DialOptions{Subprotocols: []string{"rosetta.json"}})
	if err != nil {
		return nil, err
	}
	if c.Subprotocol() != "rosetta.json" {
		c.CloseNow()
		return nil, fmt.Errorf("the gateway chose subprotocol %q", c.Subprotocol())
	}
	return c, nil
}

// idleResult is the gateway's resident memory around the idle connections.
type idleResult struct {
	conns               int
	beforeKiB, afterKiB int64
	openSeconds         float64
	// before and after are the Go runtime's figures (runtimeMetrics).
	before, after map[string]float64
}

// runtimeMetrics are the gateway's Go runtime figures that break its idle
// memory down, as its admin listener's /metrics names them.
var runtimeMetrics = []struct{ name, label string }{
	{"go_goroutines", "goroutines"},
	{"go_memstats_stack_inuse_bytes", "goroutine stacks (KiB)"},
	{"go_memstats_heap_alloc_bytes", "heap objects, live or not yet collected (KiB)"},
	{"go_memstats_heap_inuse_bytes", "heap spans in use (KiB)"},
	{"go_memstats_next_gc_bytes", "heap goal of the next collection (KiB)"},
}

// scrapeRuntime reads the gateway's /metrics and checks that it names every
// one of runtimeMetrics.
func scrapeRuntime(ctx context.Context, url string) (map[string]float64, error) {
	out, err := promtext.Scrape(ctx, url)
	if err != nil {
		return nil, err
	}
	for _, m := range runtimeMetrics {
		if _, ok := out[m.name]; !ok {
			return nil, fmt.Errorf("%s: no %s", url, m.name)
		}
	}
	return out, nil
}

// idleMemory reads the gateway's VmRSS, opens n Chat calls, echoes one
// message on each (so that each has its upstream stream), lets them sit
// idle for a few seconds and reads VmRSS again.
func idleMemory(ctx context.Context, url, metricsURL string, gw *process, n int) (idleResult, error) {
	before, err := gw.rssKiB()
	if err != nil {
		return idleResult{}, err
	}
	rtBefore, err := scrapeRuntime(ctx, metricsURL)
	if err != nil {
		return idleResult{}, err
	}
	start := time.Now()
	cs := make([]*ws.Conn, n)
	defer func() {
		for _, c := range cs {
			if c != nil {
				c.CloseNow()
			}
		}
	}()
	const dialers = 32
	var next atomic.Int64
	errs := make(chan error, dialers)
	var wg sync.WaitGroup
	for range dialers {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < n; i = int(next.Add(1)) - 1 {
				c, err := dialChat(ctx, url)
				if err == nil {
					cs[i] = c
					err = c.Write(ctx, ws.MessageText, echoMessage)
				}
				if err == nil {
					var end bool
					if end, err = readEcho(ctx, c); end {
						err = errors.New("the call ended at once")
					}
				}
				if err != nil {
					errs <- fmt.Errorf("connection %d: %w", i+1, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return idleResult{}, err
	}
	opened := time.Since(start)
	// Let the gateway's buffers and the runtime settle; nothing is in flight.
	select {
	case <-time.After(3 * time.Second):
	case <-ctx.Done():
		return idleResult{}, ctx.Err()
	}
	after, err := gw.rssKiB()
	if err != nil {
		return idleResult{}, err
	}
	rtAfter, err := scrapeRuntime(ctx, metricsURL)
	if err != nil {
		return idleResult{}, err
	}
	return idleResult{conns: n, beforeKiB: before, afterKiB: after, openSeconds: opened.Seconds(), before: rtBefore, after: rtAfter}, nil
}

// writeWebSocketReport prints the ws mode's markdown report.
func writeWebSocketReport(w io.Writer, cfg config, hz float64, loadBefore, loadAfter string, echoes []echoSample, mem idleResult) {
	col := func(f func(echoSample) float64) []float64 {
		v := make([]float64, len(echoes))
		for i, e := range echoes {
			v[i] = f(e)
		}
		return v
	}
	rates, proxy, up := col(func(e echoSample) float64 { return e.rate }), col(func(e echoSample) float64 { return e.proxyCPU }), col(func(e echoSample) float64 { return e.upstreamCPU })
	rmin, rmax, pmin, pmax := slices.Min(rates), slices.Max(rates), slices.Min(proxy), slices.Max(proxy)
	hdr := header(cfg, hz, loadBefore, loadAfter)
	fmt.Fprintf(w, "%s\n", hdr[0])
	fmt.Fprintf(w, "Echo: medians of %d rounds of %d s (each after %d s of warm-up on its own connections); %d WebSocket connections (github.com/coder/websocket, subprotocol rosetta.json, JSON text frames), each a bidirectional Chat call with %d messages in flight; every echo checked. Load average (1 min) %s before, %s after.\n",
		cfg.rounds, cfg.seconds, cfg.warmup, cfg.concurrency, window, loadBefore, loadAfter)
	fmt.Fprintf(w, "CPU per message: utime+stime from /proc/PID/stat (CLK_TCK %.0f) around each measured run ÷ messages echoed (one message each way).\n\n", hz)
	fmt.Fprintln(w, "| measure | value | range over the rounds |")
	fmt.Fprintln(w, "|---|--:|--:|")
	fmt.Fprintf(w, "| echo messages/s (%d connections) | %.0f | %.0f–%.0f |\n", cfg.concurrency, median(rates), rmin, rmax)
	fmt.Fprintf(w, "| Rosetta CPU µs per echoed message | %.1f | %.1f–%.1f |\n", median(proxy), pmin, pmax)
	fmt.Fprintf(w, "| upstream CPU µs per echoed message | %.1f | |\n", median(up))
	fmt.Fprintf(w, "| Rosetta VmRSS before the idle connections | %.1f MiB | |\n", float64(mem.beforeKiB)/1024)
	fmt.Fprintf(w, "| Rosetta VmRSS with %d idle connections | %.1f MiB | |\n", mem.conns, float64(mem.afterKiB)/1024)
	fmt.Fprintf(w, "| memory per idle connection | %.1f KiB | |\n", float64(mem.afterKiB-mem.beforeKiB)/float64(mem.conns))
	fmt.Fprintf(w, "\nThe %d idle connections were opened by 32 dialers in %.1f s, one echo on each (so that each has its upstream gRPC stream), then left idle for 3 s before VmRSS was read (/proc/PID/status). Heartbeat and idle timeout set to 10 minutes for the run.\n",
		mem.conns, mem.openSeconds)
	fmt.Fprintf(w, "\nWhere it goes: the Go runtime's figures from Rosetta's admin /metrics, read after each VmRSS.\n\n")
	fmt.Fprintln(w, "| Go runtime | before | with the idle connections | per idle connection |")
	fmt.Fprintln(w, "|---|--:|--:|--:|")
	for _, m := range runtimeMetrics {
		b, a := mem.before[m.name], mem.after[m.name]
		if m.name == "go_goroutines" {
			fmt.Fprintf(w, "| %s | %.0f | %.0f | %.2f |\n", m.label, b, a, (a-b)/float64(mem.conns))
			continue
		}
		fmt.Fprintf(w, "| %s | %.0f | %.0f | %.1f |\n", m.label, b/1024, a/1024, (a-b)/1024/float64(mem.conns))
	}
}

// rssKiB returns the process's resident set size, VmRSS of
// /proc/PID/status, in KiB.
func (p *process) rssKiB() (int64, error) {
	v, err := p.statusField("VmRSS:")
	if err != nil {
		return 0, err
	}
	kib, err := strconv.ParseInt(strings.TrimSuffix(v, " kB"), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s: VmRSS %q", p.name, v)
	}
	return kib, nil
}

// statusField returns the value of a line of /proc/PID/status.
func (p *process) statusField(key string) (string, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), key); ok {
			return strings.TrimSpace(v), nil
		}
	}
	return "", fmt.Errorf("%s: no %s in /proc/PID/status", p.name, key)
}

// fileLimit returns the process's soft limit on open files, from
// /proc/PID/limits.
func (p *process) fileLimit() (uint64, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/limits", p.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(raw)) {
		if rest, ok := strings.CutPrefix(line, "Max open files"); ok {
			fields := strings.Fields(rest)
			if len(fields) > 0 {
				if fields[0] == "unlimited" {
					return 1 << 62, nil
				}
				return strconv.ParseUint(fields[0], 10, 64)
			}
		}
	}
	return 0, fmt.Errorf("%s: no open-files line in /proc/PID/limits", p.name)
}

// raiseFileLimit raises this process's soft limit on open files (inherited
// by the processes it starts) to need, or fails if the hard limit is lower.
func raiseFileLimit(need uint64) error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return err
	}
	if lim.Max < need {
		return fmt.Errorf("the hard limit on open files is %d, the run needs %d; raise ulimit -Hn", lim.Max, need)
	}
	if lim.Cur < need {
		lim.Cur = need
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			return fmt.Errorf("raising the open-files limit to %d: %w", need, err)
		}
	}
	return nil
}
