package cache

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the cache's Prometheus metrics.
type metrics struct {
	requests    *prometheus.CounterVec
	coalescedV  *prometheus.CounterVec
	notStoredV  *prometheus.CounterVec
	storeErrors *prometheus.CounterVec
	evictions   prometheus.Counter
	// usage are the gauges of the in-memory store (none for Redis).
	usage []prometheus.Collector

	mu      sync.Mutex
	methods map[string]*methodMetrics
}

// methodMetrics are one method's counters, bound once.
type methodMetrics struct {
	hit, miss, bypass, coalesced prometheus.Counter
	notStoredV                   *prometheus.CounterVec
	name                         string
}

func (m *methodMetrics) notStored(reason string) {
	m.notStoredV.WithLabelValues(m.name, reason).Inc()
}

func newMetrics(mem *Memory) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rosetta_cache_requests_total",
			Help: "Calls of cached methods by outcome: hit (answered from the cache), miss (sent upstream, or coalesced with an identical call in flight), bypass (the client's Cache-Control said no-store).",
		}, []string{"method", "result"}),
		coalescedV: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rosetta_cache_coalesced_total",
			Help: "Misses answered by an identical call already in flight instead of an upstream call of their own.",
		}, []string{"method"}),
		notStoredV: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rosetta_cache_not_stored_total",
			Help: "Upstream answers not stored, by reason: status (not OK), upstream_cache_control (no-store, no-cache, private, max-age=0), set_cookie, too_large (beyond max_entry_bytes).",
		}, []string{"method", "reason"}),
		storeErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rosetta_cache_store_errors_total",
			Help: "Failed operations of the cache's store (Redis unreachable or slow); the calls went upstream.",
		}, []string{"op"}),
		evictions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rosetta_cache_evictions_total",
			Help: "Entries evicted from the in-memory cache to keep it within max_bytes.",
		}),
		methods: map[string]*methodMetrics{},
	}
	if mem != nil {
		m.usage = []prometheus.Collector{
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "rosetta_cache_bytes", Help: "Bytes held by the in-memory cache."},
				func() float64 { b, _ := mem.Usage(); return float64(b) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "rosetta_cache_entries", Help: "Entries held by the in-memory cache."},
				func() float64 { _, n := mem.Usage(); return float64(n) }),
		}
	}
	return m
}

// of returns the counters of a method.
func (m *metrics) of(name string) *methodMetrics {
	m.mu.Lock()
	defer m.mu.Unlock()
	if mm := m.methods[name]; mm != nil {
		return mm
	}
	mm := &methodMetrics{
		hit: m.requests.WithLabelValues(name, "hit"), miss: m.requests.WithLabelValues(name, "miss"),
		bypass: m.requests.WithLabelValues(name, "bypass"), coalesced: m.coalescedV.WithLabelValues(name),
		notStoredV: m.notStoredV, name: name,
	}
	m.methods[name] = mm
	return mm
}

// Collector returns the cache's metrics, for the gateway's registry.
func (c *Cache) Collector() prometheus.Collector { return c.metrics }

// Describe sends nothing: the set of metrics is not fixed up front.
func (m *metrics) Describe(chan<- *prometheus.Desc) {}

// Collect sends every metric.
func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	for _, c := range append([]prometheus.Collector{m.requests, m.coalescedV, m.notStoredV, m.storeErrors, m.evictions}, m.usage...) {
		c.Collect(ch)
	}
}
