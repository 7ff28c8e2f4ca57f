package mqtt

import (
	"sync/atomic"

	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics count a process's MQTT traffic, read at scrape time. A nil
// *Metrics counts nothing.
type Metrics struct {
	connected            atomic.Int64
	in, out              atomic.Uint64
	deadLetters, retries atomic.Uint64
	acks                 [256]atomic.Uint64 // by PUBACK reason code
	dropped              [numDropReasons]atomic.Uint64
}

// dropReason is why the embedded broker dropped a message for a device.
type dropReason int

const (
	// dropSlowReader: the device reads too slowly, and its queue of
	// packets to write is full.
	dropSlowReader dropReason = iota
	// dropInflight: a QoS 1 message while the device already has the most
	// unacknowledged ones it may.
	dropInflight
	numDropReasons
)

// dropReasons are the label values of dropReason.
var dropReasons = [numDropReasons]string{"slow_reader", "inflight_full"}

var (
	connectedDesc = prometheus.NewDesc("rosetta_mqtt_connected_devices",
		"Devices connected to the embedded broker.", nil, nil)
	inDesc = prometheus.NewDesc("rosetta_mqtt_messages_received_total",
		"Device messages the bridge took (uplinks), matched by a rule or not.", nil, nil)
	outDesc = prometheus.NewDesc("rosetta_mqtt_messages_published_total",
		"Messages the gateway published: replies, dead letters and downlink publishes.", nil, nil)
	acksDesc = prometheus.NewDesc("rosetta_mqtt_acks_total",
		"QoS 1 acknowledgements the embedded broker sent for uplinks, by MQTT 5 reason code.", []string{"reason"}, nil)
	deadDesc = prometheus.NewDesc("rosetta_mqtt_dead_letters_total",
		"Uplinks that failed and were dead-lettered (published, or logged when no topic is set).", nil, nil)
	retriesDesc = prometheus.NewDesc("rosetta_mqtt_retries_total",
		"Upstream attempts of uplinks beyond the first.", nil, nil)
	droppedDesc = prometheus.NewDesc("rosetta_mqtt_messages_dropped_total",
		"Messages the embedded broker dropped for a device: its write queue was full (slow_reader) or it had the most unacknowledged QoS 1 messages it may (inflight_full).", []string{"reason"}, nil)
)

// reasons name the reason codes a PUBACK of the bridge carries.
var reasons = map[byte]string{
	packets.CodeSuccess.Code:             "success",
	packets.ErrNotAuthorized.Code:        "not_authorized",
	packets.ErrQuotaExceeded.Code:        "quota_exceeded",
	packets.ErrPayloadFormatInvalid.Code: "payload_format_invalid",
	packets.ErrUnspecifiedError.Code:     "unspecified_error",
}

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{connectedDesc, inDesc, outDesc, acksDesc, deadDesc, retriesDesc, droppedDesc} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(connectedDesc, prometheus.GaugeValue, float64(m.connected.Load()))
	ch <- prometheus.MustNewConstMetric(inDesc, prometheus.CounterValue, float64(m.in.Load()))
	ch <- prometheus.MustNewConstMetric(outDesc, prometheus.CounterValue, float64(m.out.Load()))
	ch <- prometheus.MustNewConstMetric(deadDesc, prometheus.CounterValue, float64(m.deadLetters.Load()))
	ch <- prometheus.MustNewConstMetric(retriesDesc, prometheus.CounterValue, float64(m.retries.Load()))
	for code, name := range reasons {
		ch <- prometheus.MustNewConstMetric(acksDesc, prometheus.CounterValue, float64(m.acks[code].Load()), name)
	}
	for r, name := range dropReasons {
		ch <- prometheus.MustNewConstMetric(droppedDesc, prometheus.CounterValue, float64(m.dropped[r].Load()), name)
	}
}

func (m *Metrics) drop(r dropReason) {
	if m != nil {
		m.dropped[r].Add(1)
	}
}

// Published counts a message the gateway published.
func (m *Metrics) Published() {
	if m != nil {
		m.out.Add(1)
	}
}

func (m *Metrics) received() {
	if m != nil {
		m.in.Add(1)
	}
}

func (m *Metrics) connect(delta int64) {
	if m != nil {
		m.connected.Add(delta)
	}
}

func (m *Metrics) ack(code byte) {
	if m != nil {
		if _, ok := reasons[code]; !ok {
			code = packets.ErrUnspecifiedError.Code
		}
		m.acks[code].Add(1)
	}
}

func (m *Metrics) deadLetter() {
	if m != nil {
		m.deadLetters.Add(1)
	}
}

func (m *Metrics) retried(attempts int) {
	if m != nil && attempts > 1 {
		m.retries.Add(uint64(attempts - 1))
	}
}
