package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/rosettagw/rosetta/bench/internal/machine"
	iotv1 "github.com/rosettagw/rosetta/proto/example/iot/v1"
)

// The mqtt mode (issue 18) measures QoS 1 messages per second through
// Rosetta's embedded MQTT broker with one upstream call per message (device
// PUBLISH → uplink rule → DeviceService/Record on the bench upstream →
// PUBACK), against the same broker alone (PUBLISH → a QoS 1 subscriber, a
// topic no rule takes) in the same process, and Mosquitto alone for
// reference. The load is mqttConn, a minimal MQTT 5 client, in this process.

// The mqtt run's fixed settings.
const (
	mqttWindow      = 16 // QoS 1 messages unacknowledged per device
	mqttSubscribers = 4  // subscriber connections of the broker-alone runs
)

// The mqtt mode's targets.
const (
	mqttBridge    = "Rosetta bridge → gRPC upstream"
	mqttAlone     = "Rosetta broker alone → subscriber"
	mqttMosquitto = "Mosquitto alone → subscriber"
)

// mqttTarget is where one kind of run publishes.
type mqttTarget struct {
	name   string
	broker string   // host:port
	proc   *process // the broker's process
	// level is the topic's last level: bench/DEVICE/LEVEL.
	level string
	// bridged: the upstream counts the messages; else subscribers do.
	bridged bool
}

// mqttSample is one measured run of one target.
type mqttSample struct {
	rate                        float64 // acknowledged messages per second
	errors                      int64   // PUBACKs with a failure reason code
	lost                        int64   // acknowledged but never delivered
	brokerCPU, upCPU, driverCPU float64 // µs per message
}

// runMQTT is the mqtt mode.
func runMQTT(ctx context.Context, cfg config) error {
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
	httpAddr, err1 := machine.FreeAddr()
	mqttAddr, err2 := machine.FreeAddr()
	if err := errors.Join(err1, err2); err != nil {
		return err
	}
	file := filepath.Join(cfg.work, "rosetta.yaml")
	if err := os.WriteFile(file, []byte(rosettaMQTTConfig(httpAddr, mqttAddr, upAddr, cfg.descriptors)), 0o644); err != nil {
		return err
	}
	gw, err := startProcess(cfg.work, "rosetta", mqttAddr, filepath.Join(cfg.bin, "rosetta"), "serve", "-config", file)
	if err != nil {
		return err
	}
	defer gw.stop()
	targets := []*mqttTarget{
		{name: mqttBridge, broker: mqttAddr, proc: gw, level: "telemetry", bridged: true},
		{name: mqttAlone, broker: mqttAddr, proc: gw, level: "alone"},
	}
	logged := []*target{{name: "rosetta", proc: gw}}
	if cfg.mosquitto != "" {
		mq, err := startMosquitto(cfg)
		if err != nil {
			return err
		}
		defer mq.stop()
		targets = append(targets, &mqttTarget{name: mqttMosquitto, broker: mq.addr, proc: mq, level: "alone"})
		logged = append(logged, &target{name: "mosquitto", proc: mq})
	}
	conn, err := grpc.NewClient(upAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	r := &mqttRunner{cfg: cfg, hz: hz, upstream: upstream, devices: iotv1.NewDeviceServiceClient(conn)}

	if err := r.check(ctx, targets); err != nil {
		return err
	}
	budget := time.Duration(cfg.rounds*len(targets)*(cfg.seconds+cfg.warmup+5))*time.Second + 2*time.Minute
	ctx, cancel := context.WithTimeout(ctx, budget)
	defer cancel()
	fmt.Fprintf(os.Stderr, "measuring: %d rounds × %d targets of %ds (+%ds warm-up), %d devices × %d in flight; at most %s\n",
		cfg.rounds, len(targets), cfg.seconds, cfg.warmup, cfg.concurrency, mqttWindow, budget)
	loadBefore := machine.LoadAverage()
	samples := map[string][]mqttSample{}
	for round := range cfg.rounds {
		for k := range targets {
			t := targets[(k+round)%len(targets)]
			if cfg.warmup > 0 {
				if _, err := r.load(ctx, t, time.Duration(cfg.warmup)*time.Second, false); err != nil {
					return fmt.Errorf("round %d, %s, warm-up: %w", round+1, t.name, err)
				}
			}
			s, err := r.load(ctx, t, time.Duration(cfg.seconds)*time.Second, true)
			if err != nil {
				return fmt.Errorf("round %d, %s: %w", round+1, t.name, err)
			}
			fmt.Fprintf(os.Stderr, "round %d/%d  %-36s %8.0f msgs/s  errors %d  lost %d  broker %.1f µs/msg  upstream %.1f µs/msg  driver %.1f µs/msg\n",
				round+1, cfg.rounds, t.name, s.rate, s.errors, s.lost, s.brokerCPU, s.upCPU, s.driverCPU)
			samples[t.name] = append(samples[t.name], s)
		}
	}
	loadAfter := machine.LoadAverage()
	if err := r.check(ctx, targets); err != nil {
		return fmt.Errorf("after the load: %w", err)
	}
	writeMQTTReport(os.Stdout, cfg, hz, loadBefore, loadAfter, targets, samples, logNotes(upstream, logged))
	return nil
}

// rosettaMQTTConfig is Rosetta's configuration for the mqtt run: the
// embedded broker admitting anonymous devices, one uplink rule
// (bench/{device_id}/telemetry → DeviceService/Record, failures to a
// dead-letter topic rather than the log) and nothing else on the path of a
// message: no access log, no validation. The downlink route
// exists only so that devices may publish to bench/+/alone, the topic of the
// broker-alone runs, which no rule takes (its reply filter).
func rosettaMQTTConfig(listen, mqttListen, upstream, descriptors string) string {
	return fmt.Sprintf(`listen:
  http: %s
  mqtt: %s
schemas:
  - descriptor_set: %s
upstreams:
  iot:
    grpc: {targets: [%s]}
services:
  - name: example.iot.v1.DeviceService
    upstream: iot
    validation: {requests: false}
mqtt:
  allow_anonymous: true
routes:
  - mqtt: bench/{device_id}/telemetry
    call: example.iot.v1.DeviceService/Record
    qos: 1
    dead_letter: bench/{device_id}/dead
  - post: /v1/bench/{device_id}/command
    publish: bench/{device_id}/command
    reply: bench/{device_id}/alone
access_log: false
`, listen, mqttListen, descriptors, upstream)
}

// startMosquitto starts Mosquitto on a free port with a configuration of
// its own: anonymous devices, no persistence, queues large enough that no
// message of the run is dropped for a subscriber.
func startMosquitto(cfg config) (*process, error) {
	addr, err := machine.FreeAddr()
	if err != nil {
		return nil, err
	}
	_, port, _ := strings.Cut(addr, ":")
	file := filepath.Join(cfg.work, "mosquitto.conf")
	conf := fmt.Sprintf("listener %s 127.0.0.1\nallow_anonymous true\npersistence false\nmax_queued_messages 100000\nmax_inflight_messages 0\nlog_dest stderr\nlog_type error\nlog_type warning\n", port)
	if err := os.WriteFile(file, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	return startProcess(cfg.work, "mosquitto", addr, cfg.mosquitto, "-c", file)
}

// mqttRunner runs loads and checks.
type mqttRunner struct {
	cfg      config
	hz       float64
	upstream *process
	devices  iotv1.DeviceServiceClient
	runs     atomic.Int64 // device IDs are new for every run
}

// pubDevice is one publishing device of a run and what became of its
// messages.
type pubDevice struct {
	id    string
	topic string
	acked atomic.Int64 // PUBACK success
	nack  atomic.Int64 // PUBACK with a failure reason
	// firstErr is the first failure reason seen.
	firstErr atomic.Value
	// received and outOfOrder are the subscribers' counts (broker alone).
	received, outOfOrder atomic.Int64
}

// load runs cfg.concurrency devices publishing to t for d, each keeping
// mqttWindow messages in flight, then waits for every acknowledgement and
// checks that each acknowledged message was delivered (the upstream's
// count of the device's readings, or the subscribers' count). measured
// reads the CPU time of the processes around it.
func (r *mqttRunner) load(ctx context.Context, t *mqttTarget, d time.Duration, measured bool) (mqttSample, error) {
	run := r.runs.Add(1)
	devs := make([]*pubDevice, r.cfg.concurrency)
	for i := range devs {
		id := fmt.Sprintf("r%d-d%d", run, i)
		devs[i] = &pubDevice{id: id, topic: "bench/" + id + "/" + t.level}
	}
	var subs []*mqttConn
	defer func() {
		for _, s := range subs {
			s.disconnect()
		}
	}()
	subErrs := make(chan error, mqttSubscribers)
	var subsDone sync.WaitGroup
	if !t.bridged {
		byTopic := map[string]*pubDevice{}
		for _, dev := range devs {
			byTopic[dev.topic] = dev
		}
		for k := range mqttSubscribers {
			s, err := dialMQTT(t.broker, fmt.Sprintf("bench-sub-%d-%d", run, k))
			if err != nil {
				return mqttSample{}, err
			}
			subs = append(subs, s)
			var filters []string
			for i := k; i < len(devs); i += mqttSubscribers {
				filters = append(filters, devs[i].topic)
			}
			if err := s.subscribe(filters); err != nil {
				return mqttSample{}, err
			}
			subsDone.Go(func() { subErrs <- subscriber(s, byTopic) })
		}
	}
	conns := make([]*mqttConn, len(devs))
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.disconnect()
			}
		}
	}()
	for i, dev := range devs {
		c, err := dialMQTT(t.broker, "bench-"+dev.id)
		if err != nil {
			return mqttSample{}, err
		}
		conns[i] = c
	}

	procs := []*process{t.proc, r.upstream}
	var before []int64
	var driverBefore int64
	if measured {
		var err error
		if before, driverBefore, err = cpuOf(procs); err != nil {
			return mqttSample{}, err
		}
	}
	start := time.Now()
	deadline := start.Add(d)
	errs := make(chan error, len(devs))
	var wg sync.WaitGroup
	for i, dev := range devs {
		wg.Go(func() { errs <- publisher(ctx, conns[i], dev, deadline) })
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(errs)
	for err := range errs {
		if err != nil {
			return mqttSample{}, err
		}
	}
	var acked, nacks int64
	for _, dev := range devs {
		acked += dev.acked.Load()
		nacks += dev.nack.Load()
	}
	var after []int64
	var driverAfter int64
	if measured { // before the delivery checks below, which cost CPU of their own
		var err error
		if after, driverAfter, err = cpuOf(procs); err != nil {
			return mqttSample{}, err
		}
	}
	lost, err := r.delivered(ctx, t, devs)
	if err != nil {
		return mqttSample{}, err
	}
	for _, s := range subs {
		_ = s.c.(*net.TCPConn).CloseRead() // ends the subscriber goroutines; the deferred disconnect follows
	}
	subsDone.Wait()
	close(subErrs)
	for err := range subErrs {
		if err != nil {
			return mqttSample{}, err
		}
	}
	if nacks > 0 {
		for _, dev := range devs {
			if e := dev.firstErr.Load(); e != nil {
				fmt.Fprintf(os.Stderr, "%s: %d failure PUBACKs, e.g. %s\n", t.name, nacks, e)
				break
			}
		}
	}
	if acked == 0 {
		return mqttSample{}, errors.New("no message acknowledged")
	}
	s := mqttSample{rate: float64(acked) / elapsed.Seconds(), errors: nacks, lost: lost}
	if measured {
		per := func(ticks int64) float64 { return float64(ticks) / r.hz * 1e6 / float64(acked) }
		s.brokerCPU, s.upCPU = per(after[0]-before[0]), per(after[1]-before[1])
		s.driverCPU = float64(driverAfter-driverBefore) / float64(acked)
	}
	return s, nil
}

// cpuOf reads the CPU ticks of procs, and this process's CPU time in µs.
func cpuOf(procs []*process) ([]int64, int64, error) {
	out := make([]int64, len(procs))
	for i, p := range procs {
		t, err := p.cpuTicks()
		if err != nil {
			return nil, 0, err
		}
		out[i] = t
	}
	return out, selfCPU(), nil
}

// selfCPU returns this process's user+system CPU time in µs.
func selfCPU() int64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Utime.Nano()/1e3 + ru.Stime.Nano()/1e3
}

// delivered returns how many acknowledged messages did not arrive: for the
// bridge, the upstream's count of each device's readings against its
// acknowledged messages; for a broker alone, the subscribers' count, which
// may trail the acknowledgements by a moment (a broker acknowledges once
// it has queued the message for its subscribers).
func (r *mqttRunner) delivered(ctx context.Context, t *mqttTarget, devs []*pubDevice) (int64, error) {
	var lost int64
	if t.bridged {
		for _, dev := range devs {
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			got, err := r.devices.GetDevice(cctx, &iotv1.GetDeviceRequest{DeviceId: dev.id})
			cancel()
			if err != nil {
				return 0, fmt.Errorf("upstream count of %s: %w", dev.id, err)
			}
			if n := dev.acked.Load(); got.GetReadings() != n {
				fmt.Fprintf(os.Stderr, "%s: device %s: %d acknowledged, the upstream recorded %d\n", t.name, dev.id, n, got.GetReadings())
				lost += abs(n - got.GetReadings())
			}
		}
		return lost, nil
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, dev := range devs {
		for dev.received.Load() < dev.acked.Load() && time.Now().Before(deadline) {
			select {
			case <-ctx.Done():
				return 0, ctx.Err()
			case <-time.After(5 * time.Millisecond):
			}
		}
		if n, got := dev.acked.Load(), dev.received.Load(); got != n || dev.outOfOrder.Load() > 0 {
			fmt.Fprintf(os.Stderr, "%s: device %s: %d acknowledged, %d received, %d out of order\n", t.name, dev.id, n, got, dev.outOfOrder.Load())
			lost += abs(n-got) + dev.outOfOrder.Load()
		}
	}
	return lost, nil
}

func abs(v int64) int64 { return max(v, -v) }

// publisher publishes the device's readings, numbered from 1, keeping
// mqttWindow unacknowledged, until deadline; then it waits for the
// acknowledgements still due and disconnects. A PUBACK with a failure
// reason is counted, not fatal.
func publisher(ctx context.Context, c *mqttConn, dev *pubDevice, deadline time.Time) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	credit := make(chan struct{}, mqttWindow)
	for range mqttWindow {
		credit <- struct{}{}
	}
	var finished atomic.Bool
	wrote := make(chan error, 1)
	go func() {
		err := func() error {
			payload := make([]byte, 0, 128)
			for seq := int64(1); time.Now().Before(deadline); seq++ {
				select {
				case <-credit:
				case <-ctx.Done():
					return ctx.Err()
				}
				payload = append(payload[:0], `{"id":"`...)
				payload = strconv.AppendInt(payload, seq, 10)
				payload = append(payload, `","reading":{"temperature":20.5,"humidity":40}}`...)
				c.publish(dev.topic, uint16(seq%65535+1), payload)
				if len(credit) == 0 { // nothing more to send at once: send what is buffered
					if err := c.flush(); err != nil {
						return err
					}
				}
			}
			if err := c.flush(); err != nil {
				return err
			}
			// Every credit back: every message sent is acknowledged.
			for range mqttWindow {
				select {
				case <-credit:
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			return nil
		}()
		finished.Store(true)
		c.disconnect() // ends the reader below
		wrote <- err
	}()
	// fail stops the writer: closing the connection ends a write it is
	// in, cancelling its wait for credit.
	fail := func(err error) error {
		c.c.Close()
		cancel()
		return errors.Join(fmt.Errorf("device %s: %w", dev.id, err), <-wrote)
	}
	for {
		_ = c.c.SetReadDeadline(time.Now().Add(10 * time.Second))
		typ, err := c.read()
		if err != nil {
			if finished.Load() {
				return <-wrote
			}
			return fail(err)
		}
		if typ&0xf0 != mqttPuback {
			return fail(fmt.Errorf("unexpected packet type %#x", typ))
		}
		if _, reason, err := c.pubackOf(); err != nil {
			return fail(err)
		} else if reason >= 0x80 {
			dev.nack.Add(1)
			dev.firstErr.CompareAndSwap(nil, fmt.Sprintf("reason %#x", reason))
		} else {
			dev.acked.Add(1)
		}
		credit <- struct{}{}
	}
}

// subscriber reads the messages of its subscriptions until its connection
// is closed, acknowledges each and counts it for its device, checking that
// a device's readings arrive in order.
func subscriber(c *mqttConn, byTopic map[string]*pubDevice) error {
	last := map[*pubDevice]int64{}
	for {
		b0, err := c.read()
		if err != nil {
			return nil // closed by load
		}
		if b0&0xf0 != mqttPublish {
			return fmt.Errorf("subscriber: unexpected packet type %#x", b0)
		}
		topic, id, payload, err := c.publishOf(b0)
		if err != nil {
			return err
		}
		dev := byTopic[string(topic)]
		if dev == nil {
			return fmt.Errorf("subscriber: message on %s", topic)
		}
		seq := readingID(payload)
		if seq != last[dev]+1 {
			dev.outOfOrder.Add(1)
		}
		last[dev] = seq
		dev.received.Add(1)
		if id != 0 {
			c.puback(id)
		}
		if c.r.Buffered() == 0 {
			if err := c.flush(); err != nil {
				return nil
			}
		}
	}
}

// readingID returns the id of a bench reading, {"id":"N",...}, or -1.
func readingID(payload []byte) int64 {
	rest, ok := bytes.CutPrefix(payload, []byte(`{"id":"`))
	if !ok {
		return -1
	}
	end := bytes.IndexByte(rest, '"')
	if end < 0 {
		return -1
	}
	n, err := strconv.ParseInt(string(rest[:end]), 10, 64)
	if err != nil {
		return -1
	}
	return n
}

// check publishes a few readings to every target and checks that each is
// acknowledged and delivered (recorded by the upstream in order, or received
// by the subscriber), and that a reading the upstream refuses gets a failure
// PUBACK (0x99, INVALID_ARGUMENT) and is not counted.
func (r *mqttRunner) check(ctx context.Context, targets []*mqttTarget) error {
	var errs []error
	for _, t := range targets {
		s, err := r.load(ctx, t, 100*time.Millisecond, false)
		switch {
		case err != nil:
		case s.errors > 0 || s.lost > 0:
			err = fmt.Errorf("%d failure PUBACKs, %d lost", s.errors, s.lost)
		}
		if err == nil && t.bridged {
			err = r.checkRefusal(ctx, t)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", t.name, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("correctness check failed:\n%w", err)
	}
	fmt.Fprintln(os.Stderr, "correctness check passed: every message acknowledged and delivered, in order; a refused reading is refused")
	return nil
}

// checkRefusal publishes a reading the upstream refuses and expects PUBACK
// reason 0x99 (payload format invalid: INVALID_ARGUMENT) and no count.
func (r *mqttRunner) checkRefusal(ctx context.Context, t *mqttTarget) error {
	id := fmt.Sprintf("r%d-refused", r.runs.Add(1))
	c, err := dialMQTT(t.broker, "bench-"+id)
	if err != nil {
		return err
	}
	defer c.disconnect()
	c.publish("bench/"+id+"/"+t.level, 1, []byte(`{"id":"1","reading":{"temperature":99}}`))
	if err := c.flush(); err != nil {
		return err
	}
	_ = c.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.read(); err != nil {
		return err
	}
	if _, reason, err := c.pubackOf(); err != nil || reason != 0x99 {
		return fmt.Errorf("a refused reading: PUBACK reason %#x (%v), want 0x99", reason, err)
	}
	got, err := r.devices.GetDevice(ctx, &iotv1.GetDeviceRequest{DeviceId: id})
	if err != nil {
		return err
	}
	if got.GetReadings() != 0 {
		return fmt.Errorf("a refused reading was counted")
	}
	return nil
}

// writeMQTTReport prints the mqtt mode's markdown report.
func writeMQTTReport(w io.Writer, cfg config, hz float64, loadBefore, loadAfter string, targets []*mqttTarget, samples map[string][]mqttSample, notes []string) {
	hdr := header(cfg, hz, loadBefore, loadAfter)
	fmt.Fprintln(w, hdr[0])
	fmt.Fprintf(w, "Medians of %d rounds of %d s per target (each after %d s of warm-up on its own connections), targets interleaved; errors and lost messages summed over the rounds. Load average (1 min) %s before, %s after.\n",
		cfg.rounds, cfg.seconds, cfg.warmup, loadBefore, loadAfter)
	fmt.Fprintf(w, "Load: %d MQTT 5 devices (the driver's own minimal client), each publishing 60-byte JSON readings at QoS 1 with %d unacknowledged at most, on its own connection; broker alone: %d QoS 1 subscriber connections share the devices' topics. A message counts once its PUBACK arrived; every one is checked delivered (the upstream's count per device, or the subscribers').\n",
		cfg.concurrency, mqttWindow, mqttSubscribers)
	fmt.Fprintf(w, "CPU per message: utime+stime from /proc/PID/stat (CLK_TCK %.0f) around each measured run ÷ messages acknowledged; driver = the publishers and subscribers. Per core: messages per CPU-second of the broker (Rosetta or Mosquitto) plus the upstream.\n\n", hz)
	fmt.Fprintln(w, "| target | msgs/s | × broker alone | errors | lost | broker CPU µs/msg (range) | upstream CPU µs/msg | msgs per core-second | driver CPU µs/msg |")
	fmt.Fprintln(w, "|---|--:|--:|--:|--:|--:|--:|--:|--:|")
	type med struct {
		rate, broker, up, driver, perCore float64
		brokerMin, brokerMax              float64
		errors, lost                      int64
	}
	meds := map[string]med{}
	for _, t := range targets {
		ss := samples[t.name]
		col := func(f func(mqttSample) float64) []float64 {
			v := make([]float64, len(ss))
			for i, s := range ss {
				v[i] = f(s)
			}
			return v
		}
		broker := col(func(s mqttSample) float64 { return s.brokerCPU })
		m := med{
			rate: median(col(func(s mqttSample) float64 { return s.rate })), broker: median(broker),
			brokerMin: slices.Min(broker), brokerMax: slices.Max(broker),
			up: median(col(func(s mqttSample) float64 { return s.upCPU })), driver: median(col(func(s mqttSample) float64 { return s.driverCPU })),
			perCore: median(col(func(s mqttSample) float64 { return 1e6 / (s.brokerCPU + s.upCPU) })),
		}
		for _, s := range ss {
			m.errors += s.errors
			m.lost += s.lost
		}
		meds[t.name] = m
	}
	for _, t := range targets {
		m := meds[t.name]
		fmt.Fprintf(w, "| %s | %.0f | %.2f | %d | %d | %.1f (%.1f–%.1f) | %.1f | %.0f | %.1f |\n",
			t.name, m.rate, m.rate/meds[mqttAlone].rate, m.errors, m.lost, m.broker, m.brokerMin, m.brokerMax, m.up, m.perCore, m.driver)
	}
	alone, bridge := meds[mqttAlone], meds[mqttBridge]
	verdict := func(v, goal float64) string {
		if v >= goal {
			return "met"
		}
		return "missed"
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| target (issue 18) | goal | this run | |")
	fmt.Fprintln(w, "|---|--:|--:|---|")
	r := bridge.rate / alone.rate
	fmt.Fprintf(w, "| QoS 1 messages/s, bridge ÷ broker alone (same binary) | ≥ 0.8 | %.2f | %s |\n", r, verdict(r, 0.8))
	if pc := bridge.perCore / alone.perCore; !math.IsNaN(pc) {
		fmt.Fprintf(w, "| messages per core-second, bridge (gateway + upstream) ÷ broker alone | ≥ 0.8 | %.2f | %s |\n", pc, verdict(pc, 0.8))
	}
	fmt.Fprintln(w)
	notes = append(notes, "Rosetta's one `read connection: EOF` warning is the driver's check, at start, that its MQTT port accepts connections.")
	for _, n := range notes {
		fmt.Fprintln(w, "- "+n)
	}
}
