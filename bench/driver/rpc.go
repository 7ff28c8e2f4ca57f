package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"

	"github.com/rosettagw/rosetta/bench/fixtures"
	"github.com/rosettagw/rosetta/bench/internal/machine"
	libraryv1 "github.com/rosettagw/rosetta/proto/example/library/v1"
)

// The rpc mode (issue 18) measures the gRPC family pass-through: native
// gRPC through Rosetta's gRPC ingress against nginx's grpc_pass (ghz as the
// load), and Connect and gRPC-Web through Rosetta against vanguard (a
// connect-go client as the load, in this process).

// Protocols of the rpc mode.
const (
	protoGRPC    = "gRPC"
	protoConnect = "Connect (JSON)"
	protoGRPCWeb = "gRPC-Web"
)

// Rosetta's native gRPC targets: its gRPC-only listener (listen.grpc,
// grpc-go's own transport) and its shared HTTP listener (grpc-go's
// http.Handler transport behind net/http's HTTP/2 server).
const (
	rosettaGRPC   = "Rosetta, listen.grpc"
	rosettaShared = "Rosetta, shared port"
)

// rpcTarget is a proxy of the rpc mode, or the upstream itself (proc nil).
type rpcTarget struct {
	name  string
	proto string
	addr  string // host:port
	proc  *process
	// peer is the target of the same protocol Rosetta is compared with.
	peer bool
}

// rpcScenario is a call of the rpc mode: the REST scenario of the same
// gRPC call (its ghz request file), with its expected answer.
type rpcScenario struct {
	name  string
	index int // of the REST scenario, whose ghz request file it uses
	sc    *scenario
	want  []proto.Message
}

func rpcScenarios(scs []*scenario) []*rpcScenario {
	created := fixtures.Created(fixtures.CreateRequest("b2k", fixtures.SmallBook()))
	var stream []proto.Message
	for _, b := range fixtures.StreamBooks() {
		stream = append(stream, b)
	}
	return []*rpcScenario{
		{name: "unary small", index: 0, sc: scs[0], want: []proto.Message{fixtures.ListResponse()}},
		{name: "unary 2 KB", index: 1, sc: scs[1], want: []proto.Message{created}},
		{name: fmt.Sprintf("server stream ×%d", fixtures.StreamLength), index: 3, sc: scs[3], want: stream},
	}
}

// runRPC is the rpc mode.
func runRPC(ctx context.Context, cfg config) error {
	if cfg.nginx == "" {
		return errors.New("the rpc mode needs -nginx")
	}
	for _, tool := range []*string{&cfg.ghz, &cfg.nginx} {
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
	rscs := rpcScenarios(scs)
	gen := &loadGen{ghz: cfg.ghz, descriptors: cfg.descriptors, dir: cfg.work, concurrency: cfg.concurrency}
	for _, r := range rscs {
		if err := gen.prepare(r.index, r.sc); err != nil {
			return err
		}
	}

	var procs []*process
	defer func() {
		for _, p := range procs {
			p.stop()
		}
	}()
	upstream, err := startUpstream(cfg)
	if err != nil {
		return err
	}
	procs = append(procs, upstream)
	upAddr := upstream.addr
	rosAddr, rosGRPCAddr, nginxAddr, vgAddr := mustAddr(), mustAddr(), mustAddr(), mustAddr()
	file := filepath.Join(cfg.work, "rosetta.yaml")
	// Native gRPC both on the shared listener and on listen.grpc.
	rosCfg := strings.Replace(rosettaConfig(rosAddr, upAddr, cfg.descriptors), "\n", fmt.Sprintf("\n  grpc: %s\n", rosGRPCAddr), 1)
	if err := os.WriteFile(file, []byte(rosCfg), 0o644); err != nil {
		return err
	}
	ros, err := startProcess(cfg.work, "rosetta", rosAddr, filepath.Join(cfg.bin, "rosetta"), "serve", "-config", file)
	if err != nil {
		return err
	}
	procs = append(procs, ros)
	ngx, err := startNginx(cfg, nginxAddr, upAddr)
	if err != nil {
		return err
	}
	procs = append(procs, ngx)
	vg, err := startProcess(cfg.work, "vanguard", vgAddr, filepath.Join(cfg.bin, "vanguard"), "-listen", vgAddr, "-upstream", upAddr, "-descriptors", cfg.descriptors)
	if err != nil {
		return err
	}
	procs = append(procs, vg)

	targets := []*rpcTarget{
		{name: rosettaGRPC, proto: protoGRPC, addr: rosGRPCAddr, proc: ros},
		{name: rosettaShared, proto: protoGRPC, addr: rosAddr, proc: ros},
		{name: "nginx", proto: protoGRPC, addr: nginxAddr, proc: ngx, peer: true},
		{name: direct, proto: protoGRPC, addr: upAddr},
		{name: rosetta, proto: protoConnect, addr: rosAddr, proc: ros},
		{name: vanguard, proto: protoConnect, addr: vgAddr, proc: vg, peer: true},
		{name: rosetta, proto: protoGRPCWeb, addr: rosAddr, proc: ros},
		{name: vanguard, proto: protoGRPCWeb, addr: vgAddr, proc: vg, peer: true},
	}
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: cfg.concurrency, MaxConnsPerHost: cfg.concurrency}}
	defer hc.CloseIdleConnections()

	callers := make(map[rpcCell]func(context.Context) ([]proto.Message, error))
	for _, r := range rscs {
		for _, t := range targets {
			c, err := rpcCaller(hc, t, r)
			if err != nil {
				return err
			}
			callers[rpcCell{r.name, t.proto, t.name}] = c
		}
	}
	checkAll := func(when string) error {
		var errs []error
		for _, r := range rscs {
			for _, t := range targets {
				cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				got, err := callers[rpcCell{r.name, t.proto, t.name}](cctx)
				cancel()
				if err == nil {
					err = equalAll(got, r.want)
				}
				if err != nil {
					errs = append(errs, fmt.Errorf("%s, %s %s: %w", r.name, t.proto, t.name, err))
				}
			}
		}
		if err := errors.Join(errs...); err != nil {
			return fmt.Errorf("correctness check %s the load failed:\n%w", when, err)
		}
		fmt.Fprintf(os.Stderr, "correctness check %s the load passed\n", when)
		return nil
	}
	if err := checkAll("before"); err != nil {
		return err
	}

	cells := cfg.rounds * len(rscs) * len(targets)
	budget := time.Duration(cells*(cfg.seconds+cfg.warmup+3))*time.Second + 2*time.Minute
	ctx, cancel := context.WithTimeout(ctx, budget)
	defer cancel()
	fmt.Fprintf(os.Stderr, "measuring: %d rounds × %d runs of %ds (+%ds warm-up); at most %s\n",
		cfg.rounds, len(rscs)*len(targets), cfg.seconds, cfg.warmup, budget)
	loadBefore := machine.LoadAverage()
	samples := make(map[rpcCell][]sample)
	for round := range cfg.rounds {
		for _, r := range rscs {
			for k := range targets {
				t := targets[(k+round)%len(targets)]
				run := func(d time.Duration) (result, error) {
					if t.proto == protoGRPC {
						return gen.runGhz(ctx, r.index, r.sc, t.addr, d)
					}
					call := callers[rpcCell{r.name, t.proto, t.name}]
					return goLoad(ctx, cfg.concurrency, d, func(ctx context.Context) error {
						_, err := call(ctx)
						return err
					}), nil
				}
				s, err := measureRun(hz, cfg, t.proc, upstream, run)
				if err != nil {
					return fmt.Errorf("round %d, %s, %s %s: %w", round+1, r.name, t.proto, t.name, err)
				}
				fmt.Fprintf(os.Stderr, "round %d/%d  %-18s %-15s %-18s %7.0f calls/s  errors %d  proxy %s µs/call  upstream %.1f µs/call\n",
					round+1, cfg.rounds, r.name, t.proto, t.name, s.rps, s.errors, micros(s.proxyCPU), s.upstreamCPU)
				key := rpcCell{r.name, t.proto, t.name}
				samples[key] = append(samples[key], s)
			}
		}
	}
	loadAfter := machine.LoadAverage()
	checkErr := checkAll("after")

	w := os.Stdout
	for _, h := range header(cfg, hz, loadBefore, loadAfter)[:2] { // the machine, the rounds and the load
		fmt.Fprintln(w, h)
	}
	fmt.Fprintf(w, "CPU per call: utime+stime from /proc/PID/stat (CLK_TCK %.0f) around each measured run ÷ calls completed; ×peer: ratio to nginx (gRPC) or vanguard (Connect, gRPC-Web) in this run.\n", hz)
	fmt.Fprintf(w, "gRPC load: ghz, %d workers on 1 connection, 1 CPU; Connect and gRPC-Web load: connect-go %s clients in the driver, %d workers on up to %d HTTP/1.1 connections.\n",
		cfg.concurrency, connect.Version, cfg.concurrency, cfg.concurrency)
	fmt.Fprintln(w, "Every target's answers were checked (decoded and compared with the expected messages) before and after the load.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| scenario | protocol | target | calls/s | p50 ms | p99 ms | errors | proxy CPU µs/call (range) | ×peer | upstream CPU µs/call | ×peer |")
	fmt.Fprintln(w, "|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|")
	for _, r := range rscs {
		for _, t := range targets {
			c := summarize(samples[rpcCell{r.name, t.proto, t.name}], 0)
			ratio := func(v, ref float64) string {
				if t.peer || t.proc == nil || math.IsNaN(v) {
					return ""
				}
				return fmt.Sprintf("%.2f", v/ref)
			}
			var peer summary
			for _, p := range targets {
				if p.peer && p.proto == t.proto {
					peer = summarize(samples[rpcCell{r.name, p.proto, p.name}], 0)
				}
			}
			fmt.Fprintf(w, "| %s | %s | %s | %.0f | %.2f | %.2f | %d | %s | %s | %s | %s |\n",
				r.name, t.proto, t.name, c.rps, c.p50, c.p99, c.errors, proxyCPU(c), ratio(c.proxy, peer.proxy),
				micros(c.upstream), ratio(c.upstream, peer.upstream))
		}
	}
	if checkErr != nil {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "- "+strings.ReplaceAll(checkErr.Error(), "\n", "\n  "))
	}
	return checkErr
}

// rpcCell names a target of a protocol on a scenario.
type rpcCell struct{ scenario, proto, target string }

func mustAddr() string {
	a, err := machine.FreeAddr()
	if err != nil {
		panic(err)
	}
	return a
}

// nginxConfig is nginx's configuration: one process (no master, so that
// its CPU is one /proc entry), HTTP/2 cleartext on listen, grpc_pass to the
// upstream with kept-alive connections, no access log. keepalive_requests
// is raised from its default of 1,000 (on both sides), after which nginx
// ends a connection with GOAWAY and ghz counts the calls in flight on it as
// failed.
const nginxConfig = `daemon off;
master_process off;
worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/nginx.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path %[1]s/nginx-body;
  proxy_temp_path %[1]s/nginx-proxy;
  fastcgi_temp_path %[1]s/nginx-fastcgi;
  uwsgi_temp_path %[1]s/nginx-uwsgi;
  scgi_temp_path %[1]s/nginx-scgi;
  keepalive_requests 100000000;
  upstream library { server %[3]s; keepalive 64; keepalive_requests 100000000; }
  server {
    listen %[2]s http2;
    location / { grpc_pass grpc://library; }
  }
}
`

// startNginx starts nginx as the gRPC pass-through peer.
func startNginx(cfg config, addr, upstream string) (*process, error) {
	file := filepath.Join(cfg.work, "nginx.conf")
	if err := os.WriteFile(file, fmt.Appendf(nil, nginxConfig, cfg.work, addr, upstream), 0o644); err != nil {
		return nil, err
	}
	return startProcess(cfg.work, "nginx", addr, cfg.nginx, "-c", file, "-e", filepath.Join(cfg.work, "nginx.log"))
}

// measureRun runs one warm-up and one measured run, reading the proxy's
// (when there is one) and the upstream's CPU time around the measured run.
func measureRun(hz float64, cfg config, proxy, upstream *process, run func(time.Duration) (result, error)) (sample, error) {
	if cfg.warmup > 0 {
		if _, err := run(time.Duration(cfg.warmup) * time.Second); err != nil {
			return sample{}, fmt.Errorf("warm-up: %w", err)
		}
	}
	var proxyBefore, proxyAfter int64
	var err error
	if proxy != nil {
		if proxyBefore, err = proxy.cpuTicks(); err != nil {
			return sample{}, err
		}
	}
	upBefore, err := upstream.cpuTicks()
	if err != nil {
		return sample{}, err
	}
	r, err := run(time.Duration(cfg.seconds) * time.Second)
	if err != nil {
		return sample{}, err
	}
	upAfter, err := upstream.cpuTicks()
	if err != nil {
		return sample{}, err
	}
	if proxy != nil {
		if proxyAfter, err = proxy.cpuTicks(); err != nil {
			return sample{}, err
		}
	}
	if r.requests == 0 {
		return sample{}, fmt.Errorf("no call completed")
	}
	perCall := func(ticks int64) float64 { return float64(ticks) / hz * 1e6 / float64(r.requests) }
	s := sample{rps: float64(r.requests) / r.seconds, p50: r.p50, p99: r.p99, errors: r.errors,
		proxyCPU: math.NaN(), upstreamCPU: perCall(upAfter - upBefore)}
	if proxy != nil {
		s.proxyCPU = perCall(proxyAfter - proxyBefore)
	}
	return s, nil
}

// goLoad calls call from workers goroutines for d; calls that end after d
// are not counted (as with wrk and ghz).
func goLoad(ctx context.Context, workers int, d time.Duration, call func(context.Context) error) result {
	start := time.Now()
	end := start.Add(d)
	var (
		mu        sync.Mutex
		latencies []time.Duration
		errs      int64
		wg        sync.WaitGroup
	)
	for range workers {
		wg.Go(func() {
			var lat []time.Duration
			var failed int64
			for ctx.Err() == nil {
				t0 := time.Now()
				err := call(ctx)
				t1 := time.Now()
				if t1.After(end) {
					break
				}
				if err != nil {
					failed++
				}
				lat = append(lat, t1.Sub(t0))
			}
			mu.Lock()
			latencies = append(latencies, lat...)
			errs += failed
			mu.Unlock()
		})
	}
	wg.Wait()
	slices.Sort(latencies)
	r := result{requests: int64(len(latencies)), seconds: d.Seconds(), errors: errs}
	if n := len(latencies); n > 0 {
		r.p50, r.p99 = latencies[n/2], latencies[min(n-1, n*99/100)]
	}
	return r
}

// rpcCaller returns a function making scenario r's call once on t, with
// the answers.
func rpcCaller(hc *http.Client, t *rpcTarget, r *rpcScenario) (func(context.Context) ([]proto.Message, error), error) {
	if t.proto == protoGRPC {
		conn, err := grpc.NewClient(t.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return nil, err
		}
		return func(ctx context.Context) ([]proto.Message, error) {
			return grpcCall(ctx, libraryv1.NewLibraryServiceClient(conn), r)
		}, nil
	}
	// Like for like: vanguard is set up without compression, and Rosetta
	// compresses a response of 1 KiB or more for a client that accepts
	// gzip, which connect-go clients do by default.
	opts := []connect.ClientOption{connect.WithAcceptCompression("gzip", nil, nil)}
	if t.proto == protoGRPCWeb {
		opts = append(opts, connect.WithGRPCWeb())
	} else {
		opts = append(opts, connect.WithProtoJSON())
	}
	url := "http://" + t.addr + "/example.library.v1.LibraryService/" + r.sc.grpcMethod
	switch req := r.sc.grpcRequest.(type) {
	case *libraryv1.CreateBookRequest:
		c := connect.NewClient[libraryv1.CreateBookRequest, libraryv1.Book](hc, url, opts...)
		return func(ctx context.Context) ([]proto.Message, error) {
			resp, err := c.CallUnary(ctx, connect.NewRequest(req))
			if err != nil {
				return nil, err
			}
			return []proto.Message{resp.Msg}, nil
		}, nil
	case *libraryv1.ListBooksRequest:
		if r.sc.grpcMethod == "StreamBooks" {
			c := connect.NewClient[libraryv1.ListBooksRequest, libraryv1.Book](hc, url, opts...)
			return func(ctx context.Context) ([]proto.Message, error) {
				s, err := c.CallServerStream(ctx, connect.NewRequest(req))
				if err != nil {
					return nil, err
				}
				defer s.Close()
				var got []proto.Message
				for s.Receive() {
					got = append(got, s.Msg())
				}
				return got, s.Err()
			}, nil
		}
		c := connect.NewClient[libraryv1.ListBooksRequest, libraryv1.ListBooksResponse](hc, url, opts...)
		return func(ctx context.Context) ([]proto.Message, error) {
			resp, err := c.CallUnary(ctx, connect.NewRequest(req))
			if err != nil {
				return nil, err
			}
			return []proto.Message{resp.Msg}, nil
		}, nil
	}
	return nil, fmt.Errorf("no Connect call for %T", r.sc.grpcRequest)
}

// grpcCall makes r's call once with grpc-go (the checks; ghz makes the
// load).
func grpcCall(ctx context.Context, c libraryv1.LibraryServiceClient, r *rpcScenario) ([]proto.Message, error) {
	switch req := r.sc.grpcRequest.(type) {
	case *libraryv1.CreateBookRequest:
		got, err := c.CreateBook(ctx, req)
		return []proto.Message{got}, err
	case *libraryv1.ListBooksRequest:
		if r.sc.grpcMethod == "StreamBooks" {
			s, err := c.StreamBooks(ctx, req)
			if err != nil {
				return nil, err
			}
			var got []proto.Message
			for {
				b, err := s.Recv()
				if err == io.EOF {
					return got, nil
				}
				if err != nil {
					return got, err
				}
				got = append(got, b)
			}
		}
		got, err := c.ListBooks(ctx, req)
		return []proto.Message{got}, err
	}
	return nil, fmt.Errorf("no gRPC call for %T", r.sc.grpcRequest)
}

// equalAll reports an error unless got holds exactly want, in order.
func equalAll(got, want []proto.Message) error {
	if len(got) != len(want) {
		return fmt.Errorf("%d messages, want %d", len(got), len(want))
	}
	for i := range want {
		if err := equal(got[i], want[i], nil); err != nil {
			return fmt.Errorf("message %d: %w", i+1, err)
		}
	}
	return nil
}
