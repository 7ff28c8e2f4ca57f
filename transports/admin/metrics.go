package admin

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rosettagw/rosetta/router"
	"github.com/rosettagw/rosetta/translate"
)

// Metrics is one gateway's Prometheus registry: the calls of every route,
// the Go runtime and the process, and the counts that policies keep
// themselves (rate-limit decisions, response violations), read at scrape
// time. It uses a registry of its own, never the global default.
type Metrics struct {
	registry *prometheus.Registry
	calls    *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	ended    *prometheus.CounterVec
	policies collectorSet
}

// latencyBuckets span a gateway's own sub-millisecond work to slow
// upstreams, in seconds.
var latencyBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// NewMetrics returns the metrics of one gateway, with the Go runtime and
// process collectors registered.
func NewMetrics() *Metrics {
	m := &Metrics{
		registry: prometheus.NewRegistry(),
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rosetta_calls_total",
			Help: "Calls handled, by ingress protocol, route and gRPC status code (policy refusals included).",
		}, []string{"protocol", "route", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "rosetta_call_duration_seconds",
			Help:    "Time from the route's chain taking a call to its answer (a stream's whole life), by ingress protocol and route.",
			Buckets: latencyBuckets,
		}, []string{"protocol", "route"}),
		ended: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rosetta_streams_ended_total",
			Help: "Streaming calls the gateway ended itself, by ingress protocol, route and reason (idle: no message for the stream idle timeout; shutdown: the gateway was stopping; write_timeout: a WebSocket client read nothing for the write timeout).",
		}, []string{"protocol", "route", "reason"}),
	}
	m.registry.MustRegister(m.calls, m.latency, m.ended, &m.policies,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Route returns the series of one route, named route in the labels. Its
// Observe counts and times each call of the route's chain, the calls its
// policies refuse included. The labels' values come from the route set,
// the ingress protocols and the gRPC codes, so their number is bounded.
func (m *Metrics) Route(route string) *RouteMetrics {
	return &RouteMetrics{
		calls:   m.calls.MustCurryWith(prometheus.Labels{"route": route}),
		latency: m.latency.MustCurryWith(prometheus.Labels{"route": route}),
		ended:   m.ended.MustCurryWith(prometheus.Labels{"route": route}),
	}
}

// protocols are the ingress protocols, in the order of RouteMetrics'
// caches.
var protocols = [...]router.Protocol{router.HTTP, router.WebSocket, router.GRPCWeb, router.GRPC, router.MQTT}

// numCodes is the number of gRPC codes (OK to Unauthenticated).
const numCodes = int(codes.Unauthenticated) + 1

// RouteMetrics are one route's series. The series a call touches are
// looked up once, then cached, so that a call costs no label hashing; a
// series exists only once a call used it.
type RouteMetrics struct {
	calls   *prometheus.CounterVec
	latency prometheus.ObserverVec
	ended   *prometheus.CounterVec
	counter [len(protocols) * numCodes]atomic.Pointer[prometheus.Counter]
	timer   [len(protocols)]atomic.Pointer[prometheus.Observer]
}

// Observe counts one call of protocol p that ended with code after d.
func (rc *RouteMetrics) Observe(p router.Protocol, code codes.Code, d time.Duration) {
	if int(code) >= numCodes {
		code = codes.Unknown // as gRPC reads a code it does not know; it bounds the labels too
	}
	i := slices.Index(protocols[:], p)
	if i < 0 {
		rc.latency.WithLabelValues(string(p)).Observe(d.Seconds())
		rc.calls.WithLabelValues(string(p), code.String()).Inc()
		return
	}
	timer := rc.timer[i].Load()
	if timer == nil {
		o := rc.latency.WithLabelValues(string(p))
		timer = &o
		rc.timer[i].Store(timer)
	}
	(*timer).Observe(d.Seconds())
	slot := &rc.counter[i*numCodes+int(code)]
	counter := slot.Load()
	if counter == nil {
		c := rc.calls.WithLabelValues(string(p), code.String())
		counter = &c
		slot.Store(counter)
	}
	(*counter).Inc()
}

// StreamEnded counts one stream of protocol p that the gateway ended
// itself, for reason (router.StreamEndReason).
func (rc *RouteMetrics) StreamEnded(p router.Protocol, reason string) {
	rc.ended.WithLabelValues(string(p), reason).Inc()
}

// CodeOf is the gRPC code of a call's outcome; a plain HTTP upstream's
// error status is mapped the way google.rpc.Code documents.
func CodeOf(c *router.Call, err error) codes.Code {
	if err != nil {
		return status.Code(err)
	}
	if c.Reply == nil || c.Reply.HTTPStatus < 400 {
		return codes.OK
	}
	return translate.CodeFromHTTP(c.Reply.HTTPStatus)
}

// Register adds collectors of the process's own (such as the reload
// counts).
func (m *Metrics) Register(cs ...prometheus.Collector) { m.registry.MustRegister(cs...) }

// SetCollectors replaces the counts the policies and the validator of the
// serving generation export; they are collected at each scrape. A reload
// sets the new generation's.
func (m *Metrics) SetCollectors(cs []prometheus.Collector) {
	m.policies.mu.Lock()
	m.policies.cs = cs
	m.policies.mu.Unlock()
}

// collectorSet delegates to the collectors last set. It describes nothing up
// front (an unchecked collector), so that its set may change.
type collectorSet struct {
	mu sync.Mutex
	cs []prometheus.Collector
}

func (*collectorSet) Describe(chan<- *prometheus.Desc) {}

func (c *collectorSet) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	cs := c.cs
	c.mu.Unlock()
	for _, x := range cs {
		x.Collect(ch)
	}
}
