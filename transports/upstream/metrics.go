package upstream

import (
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
)

// latencyBuckets span fast local upstreams to slow ones, in seconds.
var latencyBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

const latencyHelp = "Time of upstream attempts, by upstream and endpoint."

var (
	requestsDesc = prometheus.NewDesc("rosetta_upstream_requests_total",
		"Upstream attempts, by upstream, endpoint and gRPC code (an HTTP upstream's status mapped as google.rpc.Code documents).",
		[]string{"upstream", "endpoint", "code"}, nil)
	inflightDesc = prometheus.NewDesc("rosetta_upstream_in_flight",
		"Upstream attempts in flight, by upstream and endpoint.", []string{"upstream", "endpoint"}, nil)
	healthyDesc = prometheus.NewDesc("rosetta_upstream_endpoint_healthy",
		"1 while the endpoint passes its health checks (or has none), else 0.", []string{"upstream", "endpoint"}, nil)
	ejectedDesc = prometheus.NewDesc("rosetta_upstream_endpoint_ejected",
		"1 while outlier detection keeps the endpoint out, else 0.", []string{"upstream", "endpoint"}, nil)
	ejectionsDesc = prometheus.NewDesc("rosetta_upstream_endpoint_ejections_total",
		"Times outlier detection ejected the endpoint.", []string{"upstream", "endpoint"}, nil)
	refusedDesc = prometheus.NewDesc("rosetta_upstream_ejections_refused_total",
		"Ejections not made because max_ejection_percent of the endpoints were out already.", []string{"upstream"}, nil)
	usableDesc = prometheus.NewDesc("rosetta_upstream_usable_endpoints",
		"Endpoints that are healthy and not ejected.", []string{"upstream"}, nil)
	panicDesc = prometheus.NewDesc("rosetta_upstream_panic",
		"1 while too few endpoints are usable and calls go to all of them (the panic threshold).", []string{"upstream"}, nil)
	breakerDesc = prometheus.NewDesc("rosetta_upstream_breaker_state",
		"The circuit breaker's state: 0 closed, 1 half-open, 2 open.", []string{"upstream"}, nil)
	rejectionsDesc = prometheus.NewDesc("rosetta_upstream_breaker_rejections_total",
		"Calls the open (or probing) circuit breaker answered UNAVAILABLE without reaching the upstream.", []string{"upstream"}, nil)
)

// Describe describes nothing: the upstream is an unchecked collector, whose
// series come and go with its endpoints.
func (c *cluster) Describe(chan<- *prometheus.Desc) {}

// Collect exports the upstream's series, read at scrape time.
func (c *cluster) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	st, all := c.statusLocked(), c.all
	c.mu.Unlock()
	name := c.opts.Name
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	for i, e := range all {
		es := st.Endpoints[i]
		for code := range e.calls {
			if n := e.calls[code].Load(); n > 0 {
				ch <- prometheus.MustNewConstMetric(requestsDesc, prometheus.CounterValue, float64(n), name, e.addr, codes.Code(code).String())
			}
		}
		e.latency.Collect(ch)
		gauge(inflightDesc, float64(es.InFlight), name, e.addr)
		gauge(healthyDesc, b2f(es.Healthy), name, e.addr)
		gauge(ejectedDesc, b2f(es.EjectedUntil != nil), name, e.addr)
		ch <- prometheus.MustNewConstMetric(ejectionsDesc, prometheus.CounterValue, float64(e.ejectionsTotal.Load()), name, e.addr)
	}
	gauge(usableDesc, float64(st.Usable), name)
	gauge(panicDesc, b2f(st.Panic), name)
	if c.opts.Outlier != nil {
		ch <- prometheus.MustNewConstMetric(refusedDesc, prometheus.CounterValue, float64(c.ejectionsRefused.Load()), name)
	}
	if c.breaker != nil {
		gauge(breakerDesc, c.breaker.stateValue(), name)
		ch <- prometheus.MustNewConstMetric(rejectionsDesc, prometheus.CounterValue, float64(c.breaker.rejections.Load()), name)
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
