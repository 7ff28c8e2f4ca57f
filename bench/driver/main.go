// Command driver is the benchmark harness of issue 8. It starts the bench
// upstream, Rosetta, grpc-gateway's generated proxy and a vanguard
// transcoder on loopback, checks that every target answers every scenario
// correctly, then loads them in interleaved rounds (wrk for the REST
// proxies, ghz for direct gRPC) and prints a markdown table of medians with
// ratios to grpc-gateway. With -mode ws it measures Rosetta's WebSocket
// ingress instead (issue 3): echo messages per second on bidirectional
// streams, and memory per idle connection; with -mode mqtt, QoS 1 messages
// per second through the MQTT bridge against the broker alone (issue 18).
// bench/run.sh builds everything and runs it; see BENCHMARKS.md.
//
// Progress goes to standard error, the report to standard output.
package main

import (
	"context"
	"debug/buildinfo"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/rosettagw/rosetta/bench/internal/machine"
	libraryv1 "github.com/rosettagw/rosetta/proto/example/library/v1"
)

// config is the driver's command line.
type config struct {
	bin         string // folder holding upstream, rosetta, grpcgateway, vanguard
	descriptors string // proto/library.binpb
	work        string // scratch folder: configs, request files, logs
	wrk, ghz    string
	build       string // which Rosetta source was measured, e.g. a git description
	rounds      int
	seconds     int // of each measured run
	warmup      int // seconds of load before each measured run
	concurrency int
	mode        string // rest, ws, rpc or mqtt
	idle        int    // idle WebSocket connections (ws mode)
	nginx       string // nginx executable (rpc mode)
	mosquitto   string // mosquitto executable (mqtt mode; "" leaves it out)
}

func main() {
	var cfg config
	flag.StringVar(&cfg.bin, "bin", "", "folder holding the built upstream, rosetta, grpcgateway and vanguard")
	flag.StringVar(&cfg.descriptors, "descriptors", "", "FileDescriptorSet of the library service (proto/library.binpb)")
	flag.StringVar(&cfg.work, "work", "", "scratch folder for configs, request bodies and logs")
	flag.StringVar(&cfg.wrk, "wrk", "wrk", "wrk executable")
	flag.StringVar(&cfg.ghz, "ghz", "ghz", "ghz executable")
	flag.StringVar(&cfg.build, "build", "unknown", "which Rosetta source was built, for the report (run.sh: git describe --always --dirty)")
	flag.IntVar(&cfg.rounds, "rounds", 3, "rounds; every target runs every scenario once per round")
	flag.IntVar(&cfg.seconds, "seconds", 4, "seconds of each measured run")
	flag.IntVar(&cfg.warmup, "warmup", 1, "seconds of unmeasured load before each measured run")
	flag.IntVar(&cfg.concurrency, "concurrency", 32, "connections (wrk, ws echo) or workers (ghz) of every run")
	flag.StringVar(&cfg.mode, "mode", "rest", "rest: the REST comparison; ws: Rosetta's WebSocket echo rate and idle-connection memory; rpc: gRPC against nginx, Connect and gRPC-Web against vanguard; mqtt: QoS 1 messages through the MQTT bridge against the broker alone (-descriptors is then proto/iot.binpb)")
	flag.StringVar(&cfg.nginx, "nginx", "nginx", "nginx executable (rpc mode)")
	flag.IntVar(&cfg.idle, "idle", 10000, "idle WebSocket connections whose memory the ws mode measures")
	flag.StringVar(&cfg.mosquitto, "mosquitto", "", "mosquitto executable, measured alone for reference in the mqtt mode (empty: not measured)")
	flag.Parse()
	if cfg.bin == "" || cfg.descriptors == "" || cfg.work == "" || cfg.rounds < 1 || cfg.seconds < 1 || cfg.warmup < 0 || cfg.concurrency < 1 ||
		(cfg.mode != "rest" && cfg.mode != "ws" && cfg.mode != "rpc" && cfg.mode != "mqtt") || cfg.idle < 1 {
		flag.Usage()
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, cfg config) error {
	descriptors, err := filepath.Abs(cfg.descriptors)
	if err != nil {
		return err
	}
	cfg.descriptors = descriptors
	switch cfg.mode {
	case "ws":
		return runWebSocket(ctx, cfg)
	case "rpc":
		return runRPC(ctx, cfg)
	case "mqtt":
		return runMQTT(ctx, cfg)
	}
	for _, tool := range []*string{&cfg.wrk, &cfg.ghz} {
		path, err := exec.LookPath(*tool)
		if err != nil {
			return err
		}
		*tool = path
	}
	hz, err := clockTicks()
	if err != nil {
		return err
	}
	scs, err := scenarios()
	if err != nil {
		return err
	}

	upstream, targets, err := start(cfg)
	defer func() {
		for _, t := range targets {
			if t.proc != nil {
				t.proc.stop()
			}
		}
		if upstream != nil {
			upstream.stop()
		}
	}()
	if err != nil {
		return err
	}

	sizes, notes, err := check(ctx, upstream.addr, targets, scs)
	if err != nil {
		return err
	}
	gen := &loadGen{wrk: cfg.wrk, ghz: cfg.ghz, descriptors: cfg.descriptors, dir: cfg.work, concurrency: cfg.concurrency}
	cells := 0
	for i, sc := range scs {
		if err := gen.prepare(i, sc); err != nil {
			return err
		}
		cells += len(targets) - len(sc.notServed)
	}
	budget := time.Duration(cfg.rounds*cells*(cfg.seconds+cfg.warmup+3))*time.Second + 2*time.Minute
	ctx, cancel := context.WithTimeout(ctx, budget)
	defer cancel()
	fmt.Fprintf(os.Stderr, "measuring: %d rounds × %d runs of %ds (+%ds warm-up); at most %s\n",
		cfg.rounds, cells, cfg.seconds, cfg.warmup, budget)

	loadBefore := machine.LoadAverage()
	samples := make(map[cell][]sample)
	for round := range cfg.rounds {
		for i, sc := range scs {
			for k := range targets {
				t := targets[(k+round)%len(targets)] // a different target goes first each round
				if _, na := sc.notServed[t.name]; na {
					continue
				}
				s, err := measure(ctx, gen, hz, cfg, t, upstream, i, sc)
				if err != nil {
					return fmt.Errorf("round %d, %s, %s: %w", round+1, sc.name, t.name, err)
				}
				fmt.Fprintf(os.Stderr, "round %d/%d  %-10s %-18s %7.0f req/s  p50 %6.2fms  p99 %6.2fms  errors %d  proxy %s µs/req  upstream %.1f µs/req\n",
					round+1, cfg.rounds, sc.name, t.name, s.rps, float64(s.p50)/1e6, float64(s.p99)/1e6, s.errors, micros(s.proxyCPU), s.upstreamCPU)
				key := cell{sc.name, t.name}
				samples[key] = append(samples[key], s)
			}
		}
	}

	loadAfter := machine.LoadAverage()
	// The same check after the load: a proxy that broke under it fails
	// the run.
	if _, _, err := check(ctx, upstream.addr, targets, scs); err != nil {
		return fmt.Errorf("after the load: %w", err)
	}
	rep := &report{header: header(cfg, hz, loadBefore, loadAfter), scenarios: scs, targets: targets, cells: make(map[cell]summary), notes: notes}
	for key, ss := range samples {
		rep.cells[key] = summarize(ss, sizes[key])
	}
	rep.notes = append(rep.notes, logNotes(upstream, targets)...)
	rep.write(os.Stdout)
	return nil
}

// start starts the upstream and the three proxies on free loopback ports and
// returns the targets, direct gRPC last. Processes started before an error
// are returned too, so that the caller stops them.
func start(cfg config) (*process, []*target, error) {
	upstream, err := startUpstream(cfg)
	if err != nil {
		return nil, nil, err
	}
	upAddr := upstream.addr
	var targets []*target
	// add starts bin as target name, its log in the file named logName.
	add := func(name, bin, logName string, args func(addr string) ([]string, error)) error {
		addr, err := machine.FreeAddr()
		if err != nil {
			return err
		}
		a, err := args(addr)
		if err != nil {
			return err
		}
		p, err := startProcess(cfg.work, logName, addr, filepath.Join(cfg.bin, bin), a...)
		if err != nil {
			return err
		}
		targets = append(targets, &target{name: name, url: "http://" + addr, proc: p})
		return nil
	}
	err = errors.Join(
		add(rosetta, "rosetta", "rosetta", func(addr string) ([]string, error) {
			file := filepath.Join(cfg.work, "rosetta.yaml")
			return []string{"serve", "-config", file}, os.WriteFile(file, []byte(rosettaConfig(addr, upAddr, cfg.descriptors)), 0o644)
		}),
		add(rosettaDefault, "rosetta", "rosetta-default", func(addr string) ([]string, error) {
			file := filepath.Join(cfg.work, "rosetta-default.yaml")
			return []string{"serve", "-config", file}, os.WriteFile(file, []byte(rosettaDefaultConfig(addr, upAddr, cfg.descriptors)), 0o644)
		}),
		add(gateway, "grpcgateway", "grpcgateway", func(addr string) ([]string, error) {
			return []string{"-listen", addr, "-upstream", upAddr}, nil
		}),
		add(vanguard, "vanguard", "vanguard", func(addr string) ([]string, error) {
			return []string{"-listen", addr, "-upstream", upAddr, "-descriptors", cfg.descriptors}, nil
		}),
	)
	targets = append(targets, &target{name: direct})
	return upstream, targets, err
}

// rosettaConfig is Rosetta's configuration for the run. emit_unpopulated
// makes its JSON the same as grpc-gateway's and vanguard's defaults, so that
// every proxy writes the same bytes; and Rosetta does only what the others
// do: no access log line and no buf.validate checks (the example schema has
// rules; neither grpc-gateway nor vanguard enforces them).
func rosettaConfig(listen, upstream, descriptors string) string {
	return fmt.Sprintf(`listen:
  http: %s
schemas:
  - descriptor_set: %s
upstreams:
  library:
    grpc: {targets: [%s]}
services:
  - name: example.library.v1.LibraryService
    upstream: library
    json: {emit_unpopulated: true}
    validation: {requests: false}
access_log: false
`, listen, descriptors, upstream)
}

// rosettaDefaultConfig is Rosetta's configuration with the defaults the
// like-for-like one turns off: the access log (one JSON line per call on
// standard error, to a file here) and buf.validate checks of requests.
func rosettaDefaultConfig(listen, upstream, descriptors string) string {
	c := rosettaConfig(listen, upstream, descriptors)
	c = strings.Replace(c, "    validation: {requests: false}\n", "", 1)
	return strings.Replace(c, "access_log: false\n", "", 1)
}

// check makes every scenario's call once on every target and fails unless
// each answers 200 with the expected message. A target listed in a
// scenario's notServed is not an error: it is left out of the scenario,
// with a note saying what it answers, unless it answers correctly, in which
// case it is taken off the list and measured. check returns the response
// sizes and the notes.
func check(ctx context.Context, upAddr string, targets []*target, scs []*scenario) (map[cell]int, []string, error) {
	conn, err := grpc.NewClient(upAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, nil, err
	}
	defer conn.Close()
	client := libraryv1.NewLibraryServiceClient(conn)
	sizes := make(map[cell]int)
	var notes []string
	var errs []error
	for _, sc := range scs {
		for _, t := range targets {
			if t.proc == nil {
				cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				if err := sc.checkGRPC(cctx, client); err != nil {
					errs = append(errs, fmt.Errorf("%s, %s: %w", sc.name, t.name, err))
				}
				cancel()
				continue
			}
			code, body, err := sc.call(ctx, t.url)
			switch {
			case err != nil:
			case code != 200:
				err = fmt.Errorf("status %d: %s", code, truncate(body))
			default:
				err = sc.check(body)
			}
			why, na := sc.notServed[t.name]
			switch {
			case na && err == nil:
				delete(sc.notServed, t.name)
				notes = append(notes, fmt.Sprintf("%s, %s: listed as not served (%s) but answers correctly, so measured.", sc.name, t.name, why))
			case na:
				notes = append(notes, fmt.Sprintf("%s, %s: n/a, %s (it answers %d: %s).", sc.name, t.name, why, code, strings.TrimSpace(truncate(body))))
				continue
			case err != nil:
				errs = append(errs, fmt.Errorf("%s, %s: %w", sc.name, t.name, err))
			}
			sizes[cell{sc.name, t.name}] = len(body)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, nil, fmt.Errorf("correctness check failed:\n%w", err)
	}
	fmt.Fprintln(os.Stderr, "correctness check passed: every target answers every scenario it serves as expected")
	return sizes, notes, nil
}

// measure runs one warm-up and one measured run of scenario i on t, reading
// the proxy's and the upstream's CPU time around the measured run.
func measure(ctx context.Context, gen *loadGen, hz float64, cfg config, t *target, upstream *process, i int, sc *scenario) (sample, error) {
	return measureRun(hz, cfg, t.proc, upstream, func(d time.Duration) (result, error) {
		return gen.run(ctx, t, i, sc, upstream.addr, d)
	})
}

// header describes the run: when, where, with what settings and tools, and
// the load averages before and after measuring.
func header(cfg config, hz float64, loadBefore, loadAfter string) []string {
	model := "unknown CPU"
	if raw, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.Lines(string(raw)) {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	wrkVersion, _ := exec.Command(cfg.wrk, "-v").CombinedOutput() // wrk -v exits 1 after printing
	wrkLine, _, _ := strings.Cut(string(wrkVersion), "\n")
	ghzVersion := "unknown version"
	if info, err := buildinfo.ReadFile(cfg.ghz); err == nil {
		ghzVersion = info.Main.Version
	}
	return []string{
		fmt.Sprintf("Run %s UTC on %d cores, %s, Linux %s, %s; Rosetta built from %s.",
			time.Now().UTC().Format("2006-01-02 15:04"), runtime.NumCPU(), model, strings.TrimSpace(string(kernel)), runtime.Version(), cfg.build),
		fmt.Sprintf("Medians of %d rounds of %d s per target and scenario (each after %d s of warm-up), targets interleaved; errors summed over the rounds. Load average (1 min) %s before, %s after.",
			cfg.rounds, cfg.seconds, cfg.warmup, loadBefore, loadAfter),
		fmt.Sprintf("Load: %s, 1 thread, %d keep-alive HTTP/1.1 connections; direct gRPC: ghz %s, %d workers on 1 connection, 1 CPU.",
			strings.TrimSpace(wrkLine), cfg.concurrency, ghzVersion, cfg.concurrency),
		fmt.Sprintf("CPU per request: utime+stime from /proc/PID/stat (CLK_TCK %.0f) around each measured run ÷ requests completed; ×gw: ratio to grpc-gateway in this run.", hz),
	}
}

// logNotes reports what the processes logged besides their INFO lines, and
// how much they logged.
func logNotes(upstream *process, targets []*target) []string {
	procs := []*process{upstream}
	for _, t := range targets {
		if t.proc != nil {
			procs = append(procs, t.proc)
		}
	}
	var notes, sizes, gone []string
	for _, p := range procs {
		if fi, err := os.Stat(p.log); err == nil {
			sizes = append(sizes, fmt.Sprintf("%s %.1f MB", p.name, float64(fi.Size())/1e6))
		}
		g, n, examples := p.complaints(3)
		if g > 0 {
			gone = append(gone, fmt.Sprintf("%s %d", p.name, g))
		}
		if n > 0 {
			notes = append(notes, fmt.Sprintf("%s logged %d unexpected lines, e.g. `%s`", p.name, n, strings.Join(examples, "` `")))
		}
	}
	if len(gone) > 0 {
		notes = append(notes, "Lines logged about clients that went away (wrk closing connections with requests in flight at the end of each run): "+
			strings.Join(gone, ", ")+".")
	}
	return append(notes, "Log output (standard error, to a file): "+strings.Join(sizes, ", ")+".")
}
