// Package discovery finds the endpoints of an upstream and follows their
// changes: a static list, DNS (A/AAAA or SRV records, refreshed on their
// TTL), an etcd key prefix (leases respected) or Consul's health API
// (blocking queries, passing instances only).
//
// Every source implements Source; Run watches one source for one upstream
// and hands each new set of endpoints to a callback, bounded in size,
// deduplicated, with backoff after errors, and counted in metrics. A failed
// source never empties an upstream: the last good set stays until the
// source answers again.
package discovery

import (
	"cmp"
	"context"
	"log/slog"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Endpoint is one address of an upstream.
type Endpoint struct {
	// Addr is "host:port".
	Addr string
	// Weight is the endpoint's relative share (at least 1).
	Weight int
}

// Source finds an upstream's endpoints.
type Source interface {
	// Kind names the source in metrics and logs: "static", "dns", "etcd",
	// "consul".
	Kind() string
	// Watch calls update with the full current set of endpoints, once it
	// is known and then on every change, until ctx ends (it returns nil)
	// or the source fails (it returns the error; Run calls Watch again
	// after a backoff). update is never called concurrently.
	Watch(ctx context.Context, update func([]Endpoint)) error
}

// Options configure Run.
type Options struct {
	// Upstream names the upstream in metrics and logs.
	Upstream string
	// MaxEndpoints bounds a set (default 256); the endpoints beyond it, in
	// address order, are left out and the cut is logged and counted.
	MaxEndpoints int
	// Backoff is the first wait after a failure (default 250ms), doubled
	// up to MaxBackoff (default 30s), with jitter.
	Backoff, MaxBackoff time.Duration
	Log                 *slog.Logger
	// Metrics, when set, counts updates and errors.
	Metrics *Metrics
}

// Run watches src until ctx ends, calling set with every new set of
// endpoints: sorted by address, weights at least 1, at most MaxEndpoints,
// never empty and never twice the same set in a row.
func Run(ctx context.Context, src Source, opts Options, set func([]Endpoint)) {
	log := cmp.Or(opts.Log, slog.New(slog.DiscardHandler)).With("upstream", opts.Upstream, "source", src.Kind())
	maxN := cmp.Or(opts.MaxEndpoints, 256)
	first, maxBackoff := cmp.Or(opts.Backoff, 250*time.Millisecond), cmp.Or(opts.MaxBackoff, 30*time.Second)
	m := opts.Metrics
	var last []Endpoint
	backoff := first
	for ctx.Err() == nil {
		err := src.Watch(ctx, func(eps []Endpoint) {
			backoff = first // the source answered
			eps = normalise(eps)
			if len(eps) == 0 {
				log.Warn("discovery found no endpoints; keeping the last set", "endpoints", len(last))
				m.errored(opts.Upstream, src.Kind(), "empty")
				return
			}
			found := len(eps)
			eps = eps[:min(found, maxN)]
			if slices.Equal(eps, last) {
				return
			}
			if found > maxN {
				log.Warn("discovery found more endpoints than max_endpoints; the rest are left out", "found", found, "max_endpoints", maxN)
				m.errored(opts.Upstream, src.Kind(), "truncated")
			}
			last = eps
			log.Info("discovery updated the endpoints", "endpoints", len(eps))
			m.updated(opts.Upstream, src.Kind(), len(eps))
			set(slices.Clone(eps))
		})
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			log.Warn("discovery failed; keeping the last set", "err", err, "retry_in", backoff, "endpoints", len(last))
			m.errored(opts.Upstream, src.Kind(), "lookup")
		}
		wait := backoff/2 + rand.N(backoff/2+1)
		backoff = min(2*backoff, maxBackoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// normalise sorts the set by address, merges duplicates and makes every
// weight at least 1.
func normalise(eps []Endpoint) []Endpoint {
	out := make([]Endpoint, 0, len(eps))
	for _, e := range eps {
		if e.Addr == "" {
			continue
		}
		out = append(out, Endpoint{Addr: e.Addr, Weight: max(e.Weight, 1)})
	}
	slices.SortFunc(out, func(a, b Endpoint) int { return cmp.Compare(a.Addr, b.Addr) })
	return slices.CompactFunc(out, func(a, b Endpoint) bool { return a.Addr == b.Addr })
}

// Metrics count the updates and errors of every watch.
type Metrics struct {
	updates, errors *prometheus.CounterVec
	endpoints       *prometheus.GaugeVec
}

// NewMetrics returns the discovery metrics: rosetta_discovery_updates_total
// and rosetta_discovery_errors_total{upstream,source,reason} and
// rosetta_discovery_endpoints{upstream}.
func NewMetrics() *Metrics {
	return &Metrics{
		updates: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rosetta_discovery_updates_total",
			Help: "New sets of endpoints discovery handed to an upstream.",
		}, []string{"upstream", "source"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rosetta_discovery_errors_total",
			Help: "Discovery failures (lookup), empty answers (empty) and sets cut to max_endpoints (truncated).",
		}, []string{"upstream", "source", "reason"}),
		endpoints: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "rosetta_discovery_endpoints",
			Help: "Endpoints of the set discovery last handed to an upstream.",
		}, []string{"upstream"}),
	}
}

// Collectors are the metrics, to register.
func (m *Metrics) Collectors() []prometheus.Collector {
	return []prometheus.Collector{m.updates, m.errors, m.endpoints}
}

func (m *Metrics) updated(upstream, source string, n int) {
	if m != nil {
		m.updates.WithLabelValues(upstream, source).Inc()
		m.endpoints.WithLabelValues(upstream).Set(float64(n))
	}
}

func (m *Metrics) errored(upstream, source, reason string) {
	if m != nil {
		m.errors.WithLabelValues(upstream, source, reason).Inc()
	}
}

// Static is a fixed list of endpoints.
type Static []Endpoint

// Kind is "static".
func (Static) Kind() string { return "static" }

// Watch hands over the list and waits for ctx to end.
func (s Static) Watch(ctx context.Context, update func([]Endpoint)) error {
	update(slices.Clone(s))
	<-ctx.Done()
	return nil
}
