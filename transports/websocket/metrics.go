package websocket

import "github.com/prometheus/client_golang/prometheus"

var (
	openDesc = prometheus.NewDesc("rosetta_websocket_connections",
		"WebSocket calls open (one connection each).", nil, nil)
	messagesDesc = prometheus.NewDesc("rosetta_websocket_messages_total",
		"WebSocket messages of the calls, by direction: received (from clients) or sent (to clients).", []string{"direction"}, nil)
)

// Collector returns the handler's metrics: the connections open and the
// messages received and sent, read at scrape time.
func (h *Handler) Collector() prometheus.Collector { return collector{h} }

type collector struct{ h *Handler }

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- openDesc
	ch <- messagesDesc
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(openDesc, prometheus.GaugeValue, float64(c.h.open.Load()))
	ch <- prometheus.MustNewConstMetric(messagesDesc, prometheus.CounterValue, float64(c.h.in.Load()), "received")
	ch <- prometheus.MustNewConstMetric(messagesDesc, prometheus.CounterValue, float64(c.h.out.Load()), "sent")
}
