// Command soak is the soak test with faults of issue 17: it starts two
// replicas of a gRPC upstream (the example library and IoT services), Redis,
// Mosquitto, a fault-injecting TCP proxy in front of one replica and one in
// front of Redis, and Rosetta (the real binary) configured with both
// replicas, health checks, outlier ejection, a Redis rate limit and the
// external broker. It measures the mixed load's capacity (or takes -rate),
// then runs REST, gRPC, gRPC-Web, Connect, WebSocket and MQTT clients at a
// share of it (-load) while, on a schedule, replicas, Redis and Mosquitto
// are killed and started again and the proxies add latency and reset
// connections. It prints a markdown report: calls and errors per fault and
// the time to recover, the gateway's memory, goroutines and descriptors
// over time with their slopes, and MQTT readings acknowledged against those
// the upstream received. bench/run.sh soak builds and runs it; see
// RELIABILITY.md.
//
// Run with -upstream ADDR it is instead one upstream replica.
//
// Progress goes to standard error, the report to standard output.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"os/user"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/rosettagw/rosetta/bench/internal/machine"
)

// config is the soak's command line.
type config struct {
	rosetta   string // the gateway binary
	protoDir  string // holding library.binpb and iot.binpb
	work      string
	build     string
	duration  time.Duration
	warmup    time.Duration // before the first fault; excluded from the slopes
	faultFor  time.Duration
	faultGap  time.Duration // between a fault's end and the next one's start
	sample    time.Duration
	rate      float64 // calls per second in all; 0: measure the capacity
	load      float64 // share of the measured capacity
	capacity  time.Duration
	workers   int // per protocol
	latency   time.Duration
	redisSlow time.Duration
	logLevel  string // the gateway's
}

func main() {
	var cfg config
	upstream := flag.String("upstream", "", "run as an upstream replica listening on this address (used by the soak itself)")
	delivered := flag.String("delivered", "", "with -upstream: file to append the ids of recorded readings to")
	flag.StringVar(&cfg.rosetta, "rosetta", "", "the rosetta binary")
	flag.StringVar(&cfg.protoDir, "proto", "", "folder holding library.binpb and iot.binpb (the repository's proto/)")
	flag.StringVar(&cfg.work, "work", "", "scratch folder: configs, logs, Redis and Mosquitto data")
	flag.StringVar(&cfg.build, "build", "unknown", "which Rosetta source was built, for the report")
	flag.DurationVar(&cfg.duration, "duration", 30*time.Minute, "length of the loaded run, warm-up included")
	flag.DurationVar(&cfg.warmup, "warmup", 2*time.Minute, "load without faults before the first one; not in the slopes")
	flag.DurationVar(&cfg.faultFor, "fault-for", 30*time.Second, "how long each fault lasts")
	flag.DurationVar(&cfg.faultGap, "fault-gap", time.Minute, "quiet time after each fault, to recover")
	flag.DurationVar(&cfg.sample, "sample", 10*time.Second, "how often the gateway's memory, goroutines and descriptors are read")
	flag.Float64Var(&cfg.rate, "rate", 0, "calls per second of the mixed load, split evenly between the protocols; 0: measure the capacity and take -load of it")
	flag.Float64Var(&cfg.load, "load", 0.5, "share of the measured capacity to run at")
	flag.DurationVar(&cfg.capacity, "capacity", 10*time.Second, "how long the capacity is measured")
	flag.IntVar(&cfg.workers, "workers", 8, "clients per protocol (MQTT: devices)")
	flag.DurationVar(&cfg.latency, "latency", 200*time.Millisecond, "latency the proxy adds in front of a replica")
	flag.DurationVar(&cfg.redisSlow, "redis-latency", time.Second, "latency the proxy adds in front of Redis (above the gateway's 500ms Redis timeout)")
	flag.StringVar(&cfg.logLevel, "log", "warn", "the gateway's log level (info: also recoveries; the access log stays off)")
	flag.Parse()
	if *upstream != "" {
		if err := serveUpstream(*upstream, *delivered); err != nil {
			fmt.Fprintln(os.Stderr, "upstream:", err)
			os.Exit(1)
		}
		return
	}
	if cfg.rosetta == "" || cfg.protoDir == "" || cfg.work == "" || cfg.workers < 1 || cfg.load <= 0 ||
		cfg.duration <= cfg.warmup || cfg.faultFor <= 0 || cfg.sample <= 0 {
		flag.Usage()
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg); err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(1)
	}
}

// world is everything the soak started.
type world struct {
	replicas      []*proc
	redis, broker *proc
	gateway       *proc
	upProxy       *faultProxy // in front of replicas[1]
	redisProxy    *faultProxy
	base, admin   string // http://host:port of the gateway's listeners
	delivered     []string
}

// stop ends every process and proxy, the gateway first.
func (w *world) stop() {
	for _, p := range append([]*proc{w.gateway, w.broker, w.redis}, w.replicas...) {
		if p != nil {
			p.kill(syscall.SIGTERM)
		}
	}
	for _, p := range []*faultProxy{w.upProxy, w.redisProxy} {
		if p != nil {
			p.close()
		}
	}
}

// startWorld starts the replicas, Redis, Mosquitto, the proxies and the
// gateway. On error, what was started is in w for the caller to stop.
func startWorld(cfg config, w *world) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	for i := range 2 {
		addr, err := machine.FreeAddr()
		if err != nil {
			return err
		}
		file := filepath.Join(cfg.work, fmt.Sprintf("delivered-%d.txt", i))
		w.delivered = append(w.delivered, file)
		p := newProc(cfg.work, fmt.Sprintf("replica-%d", i), addr, self, "-upstream", addr, "-delivered", file)
		w.replicas = append(w.replicas, p)
		if err := p.start(); err != nil {
			return err
		}
	}
	if w.upProxy, err = newFaultProxy(w.replicas[1].addr); err != nil {
		return err
	}

	redisAddr, err := machine.FreeAddr()
	if err != nil {
		return err
	}
	_, redisPort, _ := net.SplitHostPort(redisAddr)
	w.redis = newProc(cfg.work, "redis", redisAddr, "redis-server", "--port", redisPort, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no")
	if err := w.redis.start(); err != nil {
		return err
	}
	if w.redisProxy, err = newFaultProxy(redisAddr); err != nil {
		return err
	}

	brokerAddr, err := machine.FreeAddr()
	if err != nil {
		return err
	}
	_, brokerPort, _ := net.SplitHostPort(brokerAddr)
	// Persistence: a broker stopped with SIGTERM writes its queued
	// messages and the gateway's session to disk, and reads them back.
	// Started as root, Mosquitto would switch to the user "mosquitto",
	// which cannot write there: it stays the user that runs the soak.
	me, err := user.Current()
	if err != nil {
		return err
	}
	mosqDir := filepath.Join(cfg.work, "mosquitto") + "/"
	if err := os.MkdirAll(mosqDir, 0o755); err != nil {
		return err
	}
	mosqConf := filepath.Join(cfg.work, "mosquitto.conf")
	if err := os.WriteFile(mosqConf, fmt.Appendf(nil, "listener %s 127.0.0.1\nallow_anonymous true\nuser %s\npersistence true\npersistence_location %s\nmax_queued_messages 1000000\nmax_inflight_messages 100\n", brokerPort, me.Username, mosqDir), 0o644); err != nil {
		return err
	}
	w.broker = newProc(cfg.work, "mosquitto", brokerAddr, mosquittoPath(), "-c", mosqConf)
	if err := w.broker.start(); err != nil {
		return err
	}

	httpAddr, err := machine.FreeAddr()
	if err != nil {
		return err
	}
	adminAddr, err := machine.FreeAddr()
	if err != nil {
		return err
	}
	w.base, w.admin = "http://"+httpAddr, "http://"+adminAddr
	conf := filepath.Join(cfg.work, "rosetta.yaml")
	body := gatewayConfig(httpAddr, adminAddr, cfg.protoDir, w.replicas[0].addr, w.upProxy.addr(), w.redisProxy.addr(), brokerAddr) +
		"log: {level: " + cfg.logLevel + "}\n"
	if err := os.WriteFile(conf, []byte(body), 0o644); err != nil {
		return err
	}
	w.gateway = newProc(cfg.work, "rosetta", httpAddr, cfg.rosetta, "serve", "-config", conf)
	if err := w.gateway.start(); err != nil {
		return err
	}
	return waitReady(w.admin)
}

// gatewayConfig is Rosetta's configuration for the soak.
func gatewayConfig(httpAddr, adminAddr, protoDir, replica0, replica1, redis, broker string) string {
	return fmt.Sprintf(`listen: {http: %q, admin: %q}
schemas:
  - descriptor_set: %q
  - descriptor_set: %q
upstreams:
  backend:
    grpc: {targets: [%q, %q]}
    timeout: 5s
    retry: {attempts: 2, backoff: 25ms, max_backoff: 250ms}
    health_check: {interval: 1s, timeout: 500ms, healthy_threshold: 1, unhealthy_threshold: 2}
    outlier_detection: {consecutive_failures: 3, base_ejection_time: 5s, max_ejection_time: 30s, max_ejection_percent: 50}
services:
  - name: example.library.v1.LibraryService
    upstream: backend
    auto_mapping: true
    policies: [generous]
  - name: example.iot.v1.DeviceService
    upstream: backend
    policies: [generous]
policies:
  # Far above the load: a refusal is counted apart from errors all the same.
  generous: {rate_limit: {rate: 1000000/s, key: global, store: redis}}
redis: {addr: %q, timeout: 500ms}   # the 100ms of the README times out on a loaded machine
mqtt:
  broker: {url: "mqtt://%s", version: 5, client_id: soak-gateway, session_expiry: 1h, workers: 32}
routes:
  - mqtt: soak/{device_id}/telemetry
    call: example.iot.v1.DeviceService/Record
    qos: 1
    retry: {attempts: 600, backoff: 10ms, max_backoff: 200ms}
access_log: false
`, httpAddr, adminAddr, filepath.Join(protoDir, "library.binpb"), filepath.Join(protoDir, "iot.binpb"), replica0, replica1, redis, broker)
}

// waitReady waits for the gateway's /readyz to answer 200.
func waitReady(admin string) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(admin + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("gateway not ready within 30s (%v)", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// mosquittoPath finds mosquitto, which Debian installs in /usr/sbin.
func mosquittoPath() string {
	if p, err := exec.LookPath("mosquitto"); err == nil {
		return p
	}
	return "/usr/sbin/mosquitto"
}

func run(ctx context.Context, cfg config) error {
	w := &world{}
	defer w.stop()
	fmt.Fprintln(os.Stderr, "starting replicas, Redis, Mosquitto, proxies and the gateway")
	if err := startWorld(cfg, w); err != nil {
		return err
	}
	rec := newDelivery(w.delivered)
	protos, err := protocols(w.base, w.broker.addr, rec)
	if err != nil {
		return err
	}
	defer func() {
		for _, p := range protos {
			if p.done != nil {
				p.done()
			}
		}
	}()

	rates := map[string]float64{}
	var capacity map[string]float64
	if cfg.rate > 0 {
		for _, p := range protos {
			rates[p.name] = cfg.rate / float64(len(protos))
		}
	} else {
		fmt.Fprintf(os.Stderr, "measuring the capacity: %d clients per protocol, back to back, for %s\n", cfg.workers, cfg.capacity)
		capacity, err = measureCapacity(ctx, cfg, protos, rec)
		if err != nil {
			return err
		}
		if _, err := drainMQTT(ctx, rec, time.Minute); err != nil {
			return err
		}
		for name, c := range capacity {
			rates[name] = c * cfg.load
		}
	}
	loadBefore := machine.LoadAverage()
	start := time.Now()
	calls := newRecorder(start)
	runCtx, cancel := context.WithTimeout(ctx, cfg.duration)
	defer cancel()
	var wg sync.WaitGroup
	for _, p := range protos {
		wg.Go(func() {
			if err := drive(runCtx, p, cfg.workers, rates[p.name], calls); err != nil {
				fmt.Fprintf(os.Stderr, "%s: %v\n", p.name, err)
			}
		})
	}
	fmt.Fprintf(os.Stderr, "loaded run: %s (%s warm-up), faults of %s every %s\n", cfg.duration, cfg.warmup, cfg.faultFor, cfg.faultFor+cfg.faultGap)
	var samples []resourceSample
	var sampleErr error
	wg.Go(func() { samples, sampleErr = sampleResources(runCtx, w, start, cfg.sample) })
	events, faultErr := runFaults(runCtx, cfg, w, start, faults(cfg, w))
	wg.Wait()
	end := time.Now()
	loadAfter := machine.LoadAverage()
	if faultErr != nil {
		return faultErr
	}
	if sampleErr != nil {
		return sampleErr
	}
	fmt.Fprintln(os.Stderr, "load stopped; waiting for every acknowledged MQTT reading upstream")
	mq, err := drainMQTT(ctx, rec, time.Minute)
	if err != nil {
		return err
	}
	after, err := takeSample(w, time.Since(start))
	if err != nil {
		return fmt.Errorf("the gateway after the run: %w", err)
	}
	rep := &report{
		cfg: cfg, start: start, end: end, loadBefore: loadBefore, loadAfter: loadAfter,
		capacity: capacity, rates: rates, protocols: protos, buckets: calls.snapshot(),
		events: events, samples: samples, after: after, mqtt: mq,
		logLines: complaints(w.gateway.log, 8),
	}
	rep.write(os.Stdout)
	return nil
}

// measureCapacity runs every protocol's clients back to back, all at once,
// and returns each protocol's answered calls per second; for MQTT, whose
// broker acknowledges a reading before the gateway takes it, the readings
// the upstream recorded per second.
func measureCapacity(ctx context.Context, cfg config, protos []*protocol, mq *delivery) (map[string]float64, error) {
	_, _, _, before, _, err := mq.count()
	if err != nil {
		return nil, err
	}
	start := time.Now()
	rec := newRecorder(start)
	cctx, cancel := context.WithTimeout(ctx, cfg.capacity)
	defer cancel()
	var wg sync.WaitGroup
	for _, p := range protos {
		wg.Go(func() { _ = drive(cctx, p, cfg.workers, 0, rec) })
	}
	wg.Wait()
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	secs := time.Since(start).Seconds()
	_, _, _, after, _, err := mq.count()
	if err != nil {
		return nil, err
	}
	out := map[string]float64{}
	for name, bs := range rec.snapshot() {
		var ok int64
		for _, b := range bs {
			ok += b.calls - b.errors - b.limited
		}
		out[name] = float64(ok) / secs
	}
	out["MQTT"] = float64(after-before) / secs
	for _, p := range protos {
		fmt.Fprintf(os.Stderr, "capacity %-10s %8.0f calls/s\n", p.name, out[p.name])
	}
	for _, p := range protos {
		if out[p.name] == 0 {
			return nil, fmt.Errorf("%s: no call answered while measuring the capacity", p.name)
		}
	}
	return out, nil
}

// mqttResult is the end-to-end MQTT count.
type mqttResult struct {
	acked, lost, calls int
	tries              int64
	missing            []string
	waited             time.Duration
}

// drainMQTT waits (at most max) until every acknowledged reading was
// recorded upstream, and returns the count.
func drainMQTT(ctx context.Context, rec *delivery, max time.Duration) (mqttResult, error) {
	start := time.Now()
	for {
		acked, lost, missing, calls, tries, err := rec.count()
		if err != nil {
			return mqttResult{}, err
		}
		r := mqttResult{acked: acked, lost: lost, calls: calls, tries: tries, missing: missing, waited: time.Since(start)}
		if lost == 0 || time.Since(start) > max || ctx.Err() != nil {
			return r, nil
		}
		time.Sleep(time.Second)
	}
}
