package gateway

import (
	"go.opentelemetry.io/otel/trace"

	"context"
	"errors"
	"log/slog"
	"reflect"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rosettagw/rosetta/router"
	"github.com/rosettagw/rosetta/transports/admin"
	"github.com/rosettagw/rosetta/transports/mqtt"
)

// Live is the serving generation of a process and its reloads. Every
// ingress reads the generation through Live once per call (Routes, or the
// generation a request's context holds); Reload builds a new generation
// beside the running one and swaps it in atomically. Calls in flight finish
// on the generation they started on, which is released, and its connections
// that the new one does not use closed, once its last call has ended.
type Live struct {
	file    string
	pool    *Pool
	log     *slog.Logger
	metrics *admin.Metrics
	tracer  trace.Tracer

	cur atomic.Pointer[held]

	mu      sync.Mutex // serializes reloads
	seq     uint64
	last    ReloadStatus
	onSwap  []func(old, cur *Generation)
	reloads *prometheus.CounterVec
	// lastFailed is set when the last reload was refused (read by a
	// scrape without waiting for a reload in progress).
	lastFailed atomic.Bool
}

// held is a generation with the count of its users: the Live (while it is
// the current one) and the calls running on it.
type held struct {
	gen  *Generation
	refs atomic.Int64
}

// ReloadStatus is what the last reload did, as /admin/reload and the logs
// report it.
type ReloadStatus struct {
	// Generation is the serving generation's number.
	Generation uint64 `json:"generation"`
	// At is when the last reload was tried.
	At time.Time `json:"at"`
	// Error is why the last reload was refused ("" when it succeeded).
	Error string `json:"error,omitempty"`
	// Restart lists settings that changed but take effect only at the
	// next start (listener addresses, listener settings).
	Restart []string `json:"restart,omitempty"`
}

// LiveOptions configure a Live.
type LiveOptions struct {
	// File is the configuration file Reload reads.
	File string
	// Logger receives reload outcomes and the policies' own lines.
	Logger *slog.Logger
	// Metrics, when set, count the calls of every chain, export the
	// policies' counts and the reloads.
	Metrics *admin.Metrics
	// Tracer, when set, traces every call of every generation.
	Tracer trace.Tracer
}

// NewLive builds the first generation from cfg.
func NewLive(ctx context.Context, cfg *Config, opts LiveOptions) (*Live, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	l := &Live{file: opts.File, pool: NewPool(), log: opts.Logger, metrics: opts.Metrics, tracer: opts.Tracer}
	if l.metrics != nil {
		l.reloads = prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rosetta_reloads_total",
			Help: "Configuration reloads, by result: ok (swapped in) or failed (refused; the running generation kept serving).",
		}, []string{"result"})
		l.reloads.WithLabelValues("ok") // both series exist from the start
		l.reloads.WithLabelValues("failed")
		l.metrics.Register(l.reloads, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "rosetta_config_last_reload_successful",
			Help: "Whether the last reload was swapped in (1) or refused (0); 1 before any reload.",
		}, func() float64 {
			if l.lastFailed.Load() {
				return 0
			}
			return 1
		}), prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "rosetta_config_generation",
			Help: "The number of the serving generation (1 at start, one more per reload swapped in).",
		}, func() float64 { return float64(l.Current().Seq) }))
	}
	g, err := l.build(ctx, cfg)
	if err != nil {
		return nil, err
	}
	h := &held{gen: g}
	h.refs.Store(1)
	l.cur.Store(h)
	l.last = ReloadStatus{Generation: g.Seq, At: time.Now()}
	l.setCollectors(g)
	return l, nil
}

// build builds the next generation; a configuration that fails to build
// takes no number.
func (l *Live) build(ctx context.Context, cfg *Config) (*Generation, error) {
	g, err := Build(ctx, cfg, Options{Pool: l.pool, Logger: l.log, Seq: l.seq + 1, Metrics: l.metrics, Tracer: l.tracer})
	if err == nil {
		l.seq++
	}
	return g, err
}

// Current returns the serving generation. It stays usable for as long as
// it serves; a caller that needs it beyond that acquires it.
func (l *Live) Current() *Generation { return l.cur.Load().gen }

// Routes returns the serving generation's routes.
func (l *Live) Routes() *router.Routes { return l.cur.Load().gen.routes }

// acquire returns the serving generation, held until release is called.
func (l *Live) acquire() (*held, *Generation) {
	for {
		h := l.cur.Load()
		n := h.refs.Load()
		if n > 0 && h.refs.CompareAndSwap(n, n+1) {
			return h, h.gen
		}
		if n <= 0 && l.cur.Load() == h {
			// Live is closed (the process is ending): hand the last
			// generation out as it is rather than spin; its release
			// closes nothing twice.
			h.refs.Add(1)
			return h, h.gen
		}
		// h was replaced and has drained: load the current one again.
	}
}

// release gives up one use of h; the last closes its generation.
func (h *held) release() {
	if h.refs.Add(-1) == 0 {
		h.gen.Close()
	}
}

// OnSwap registers fn, called after each swap with the old and the new
// generation (in the reload's goroutine, one swap at a time).
func (l *Live) OnSwap(fn func(old, cur *Generation)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.onSwap = append(l.onSwap, fn)
}

// Status returns what the last reload did.
func (l *Live) Status() ReloadStatus {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.last
}

// Reload reads the configuration file again, builds a new generation and,
// if it builds, swaps it in. On error the running generation keeps
// serving; the error is logged, counted and kept for Status.
func (l *Live) Reload(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	err := l.reload(ctx)
	l.last.At = time.Now()
	l.last.Error = ""
	result := "ok"
	if err != nil {
		l.last.Error = err.Error()
		result = "failed"
		l.log.Error("reload refused; the running configuration keeps serving", "generation", l.last.Generation, "error", err)
	}
	l.lastFailed.Store(err != nil)
	if l.reloads != nil {
		l.reloads.WithLabelValues(result).Inc()
	}
	return err
}

func (l *Live) reload(ctx context.Context) error {
	if l.file == "" {
		return errors.New("no configuration file to reload")
	}
	cfg, err := LoadConfig(l.file)
	if err != nil {
		return err
	}
	g, err := l.build(ctx, cfg)
	if err != nil {
		return err
	}
	h := &held{gen: g}
	h.refs.Store(1)
	old := l.cur.Swap(h)
	l.last.Generation = g.Seq
	l.last.Restart = restartNeeded(old.gen.cfg, cfg)
	l.setCollectors(g)
	for _, fn := range l.onSwap {
		fn(old.gen, g)
	}
	old.release()
	attrs := []any{"generation", g.Seq, "routes", len(g.routes.HTTP.Routes()), "methods", len(g.routes.Methods)}
	if len(l.last.Restart) > 0 {
		attrs = append(attrs, "restart_needed_for", l.last.Restart)
		l.log.Warn("reloaded; some changed settings take effect only at the next start", attrs...)
	} else {
		l.log.Info("reloaded", attrs...)
	}
	return nil
}

func (l *Live) setCollectors(g *Generation) {
	if l.metrics != nil {
		l.metrics.SetCollectors(append(slices.Clone(g.sec.collectors), g.upstreamCollectors()...))
	}
}

// Close releases the serving generation.
func (l *Live) Close() {
	l.cur.Load().release()
}

// restartNeeded lists the settings that differ between old and cur but
// are read only when the process starts: the listeners and their own
// settings, and the broker.
func restartNeeded(old, cur *Config) []string {
	var out []string
	for name, pair := range map[string][2]any{
		"listen": {old.Listen, cur.Listen},
		"http":   {old.HTTP, cur.HTTP},
		"websocket.prefix, ping, idle, max_message_bytes": {stripWS(old.WebSocket), stripWS(cur.WebSocket)},
		"security.tls":                 {old.Security.TLS, cur.Security.TLS},
		"security.limits (listener)":   {old.Security.Limits.MaxConnsPerClient, cur.Security.Limits.MaxConnsPerClient},
		"mqtt (broker settings)":       {brokerSettings(old.MQTT), brokerSettings(cur.MQTT)},
		"shutdown_timeout, access_log": {[2]any{old.ShutdownTimeout, old.AccessLog == nil || *old.AccessLog}, [2]any{cur.ShutdownTimeout, cur.AccessLog == nil || *cur.AccessLog}},
		"log, tracing":                 {[2]any{old.Log, old.Tracing}, [2]any{cur.Log, cur.Tracing}},
	} {
		if !reflect.DeepEqual(pair[0], pair[1]) {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// stripWS is the part of the websocket section read at start.
func stripWS(w WebSocketConfig) WebSocketConfig {
	w.AllowQueryToken = false // a step of the chains: reloaded
	return w
}

// brokerSettings is the part of the mqtt section read when the broker
// starts (the rest is the generation's).
func brokerSettings(m MQTTConfig) MQTTConfig {
	m.DeadLetter, m.MaxStateTopics, m.MaxPendingReplies = "", 0, 0
	return m
}

// MQTTRules returns the uplink rules of the serving generation, held until
// the returned function is called: the bridge's view of the generation.
func (l *Live) MQTTRules() (*mqtt.Rules, func()) {
	h, g := l.acquire()
	rs := &mqtt.Rules{Resolver: g.routes.Resolver}
	if g.mqtt != nil {
		rs.List = g.mqtt.rules
	}
	return rs, h.release
}
