package admin

import (
	"context"
	"slices"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rosettagw/rosetta/router"
	"github.com/rosettagw/rosetta/security/ratelimit"
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
	limiters limiterCollector
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
	}
	m.registry.MustRegister(m.calls, m.latency, &m.limiters,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Middleware counts and times the calls of one route, named route in the
// labels. Put it first in the route's chain so that it sees the calls its
// policies refuse. The labels' values come from the route set, the ingress
// protocols and the gRPC codes, so their number is bounded.
func (m *Metrics) Middleware(route string) router.Middleware {
	rc := &routeCounters{
		calls:   m.calls.MustCurryWith(prometheus.Labels{"route": route}),
		latency: m.latency.MustCurryWith(prometheus.Labels{"route": route}),
	}
	return func(next router.Handler) router.Handler {
		return router.HandlerFunc(func(ctx context.Context, c *router.Call) error {
			start := time.Now()
			err := next.Handle(ctx, c)
			rc.observe(c.Protocol, codeOf(c, err), time.Since(start))
			return err
		})
	}
}

// protocols are the ingress protocols, in the order of routeCounters'
// caches.
var protocols = [...]router.Protocol{router.HTTP, router.WebSocket, router.GRPCWeb, router.GRPC, router.MQTT}

// numCodes is the number of gRPC codes (OK to Unauthenticated).
const numCodes = int(codes.Unauthenticated) + 1

// routeCounters are one route's series. The series a call touches are
// looked up once, then cached, so that a call costs no label hashing; a
// series exists only once a call used it.
type routeCounters struct {
	calls   *prometheus.CounterVec
	latency prometheus.ObserverVec
	counter [len(protocols) * numCodes]atomic.Pointer[prometheus.Counter]
	timer   [len(protocols)]atomic.Pointer[prometheus.Observer]
}

func (rc *routeCounters) observe(p router.Protocol, code codes.Code, d time.Duration) {
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

// codeOf is the gRPC code of a call's outcome; a plain HTTP upstream's
// error status is mapped the way google.rpc.Code documents.
func codeOf(c *router.Call, err error) codes.Code {
	if err != nil {
		return status.Code(err)
	}
	if c.Reply == nil || c.Reply.HTTPStatus < 400 {
		return codes.OK
	}
	return translate.CodeFromHTTP(c.Reply.HTTPStatus)
}

// AddLimiter exports the decisions of the rate-limit policy named policy;
// stats (its Limiter's Stats) is read at every scrape. Add every limiter
// before the metrics are served.
func (m *Metrics) AddLimiter(policy string, stats func() ratelimit.Stats) {
	m.limiters = append(m.limiters, limiterStats{policy: policy, stats: stats})
}

// AddResponseViolations exports the count of upstream responses that broke
// their schema's rules; count is read at every scrape.
func (m *Metrics) AddResponseViolations(count func() uint64) {
	m.registry.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "rosetta_validation_response_violations_total",
		Help: "Upstream responses that broke their schema's buf.validate rules.",
	}, func() float64 { return float64(count()) }))
}

var (
	limitDecisions = prometheus.NewDesc("rosetta_ratelimit_decisions_total",
		"Rate-limit decisions by policy: allowed and refused are enforced decisions, shadowed the refusals a shadow limit let through.",
		[]string{"policy", "decision"}, nil)
	limitStoreErrors = prometheus.NewDesc("rosetta_ratelimit_store_errors_total",
		"Rate-limit decisions the Redis store failed to make, by policy.",
		[]string{"policy"}, nil)
	limitStoreFailures = prometheus.NewDesc("rosetta_ratelimit_store_failure_decisions_total",
		"How calls were decided while the Redis store failed, by policy: open, closed or fallback (local limits).",
		[]string{"policy", "decision"}, nil)
	limitEvictions = prometheus.NewDesc("rosetta_ratelimit_evictions_total",
		"Active keys the local store dropped to stay within max_keys, by policy.",
		[]string{"policy"}, nil)
)

// limiterCollector reads the rate-limit policies' Stats at scrape time.
type limiterCollector []limiterStats

// limiterStats is one rate-limit policy's counts.
type limiterStats struct {
	policy string
	stats  func() ratelimit.Stats
}

func (l *limiterCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- limitDecisions
	ch <- limitStoreErrors
	ch <- limitStoreFailures
	ch <- limitEvictions
}

func (l *limiterCollector) Collect(ch chan<- prometheus.Metric) {
	for _, ls := range *l {
		s := ls.stats()
		counter := func(d *prometheus.Desc, v int64, labels ...string) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), append([]string{ls.policy}, labels...)...)
		}
		counter(limitDecisions, s.Allowed, "allowed")
		counter(limitDecisions, s.Refused, "refused")
		counter(limitDecisions, s.Shadowed, "shadowed")
		counter(limitStoreErrors, s.StoreErrors)
		counter(limitStoreFailures, s.FailedOpen, "open")
		counter(limitStoreFailures, s.FailedClosed, "closed")
		counter(limitStoreFailures, s.Fallbacks, "fallback")
		counter(limitEvictions, s.Evictions)
	}
}
