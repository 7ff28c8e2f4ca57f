package ratelimit

import "github.com/prometheus/client_golang/prometheus"

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

// Collector exports the limiter's decisions (its Stats, read at each
// scrape), labelled with its policy name. It describes no metrics up front
// (an unchecked collector), so that the collectors of several policies, and
// of a reloaded configuration, can be registered and unregistered freely.
func (l *Limiter) Collector() prometheus.Collector { return collector{l} }

type collector struct{ l *Limiter }

func (collector) Describe(chan<- *prometheus.Desc) {}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	s := c.l.Stats()
	counter := func(d *prometheus.Desc, v int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), append([]string{c.l.name}, labels...)...)
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
