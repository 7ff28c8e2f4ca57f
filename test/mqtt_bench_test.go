package test

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
)

// benchDevices is how many devices publish at once in the MQTT benchmarks;
// each keeps benchInflight QoS 1 messages unacknowledged at most.
const benchDevices, benchInflight = 4, 8

// BenchmarkMQTTUplink measures messages per second from MQTT devices to the
// gRPC upstream (the message counts once the upstream got it) through the
// embedded broker and through Mosquitto, at QoS 0 and 1, beside each
// broker alone (publish → subscribe, no gateway) on the same run.
func BenchmarkMQTTUplink(b *testing.B) {
	routes := `  - mqtt: bench/{device_id}/telemetry
    call: example.iot.v1.DeviceService/Record
    qos: 1
`
	for _, qos := range []byte{0, 1} {
		b.Run(fmt.Sprintf("embedded/gateway/qos%d", qos), func(b *testing.B) {
			up := startIoTUpstream(b)
			broker := freePort(b)
			startRosettaListen(b, fmt.Sprintf("mqtt: %q", broker), iotConfig(up.addr, anonymous, routes))
			benchPublish(b, broker, qos, func() int64 { return up.total.Load() })
		})
		b.Run(fmt.Sprintf("mosquitto/gateway/qos%d", qos), func(b *testing.B) {
			up := startIoTUpstream(b)
			broker := startMosquitto(b)
			startRosetta(b, iotConfig(up.addr, brokerSection(broker, 5, "bench", ", workers: 32"), routes))
			benchPublish(b, broker, qos, func() int64 { return up.total.Load() })
		})
		b.Run(fmt.Sprintf("embedded/broker-alone/qos%d", qos), func(b *testing.B) {
			broker := startMochi(b)
			benchPublish(b, broker, qos, benchSubscriber(b, broker, qos))
		})
		b.Run(fmt.Sprintf("mosquitto/broker-alone/qos%d", qos), func(b *testing.B) {
			broker := startMosquitto(b)
			benchPublish(b, broker, qos, benchSubscriber(b, broker, qos))
		})
	}
}

// startMochi runs a bare mochi-mqtt broker, the embedded broker's engine,
// in the test process.
func startMochi(b *testing.B) string {
	b.Helper()
	srv := mochi.New(&mochi.Options{InlineClient: true, Logger: slog.New(slog.DiscardHandler)})
	if err := srv.AddHook(new(allowAll), nil); err != nil {
		b.Fatal(err)
	}
	addr := freePort(b)
	if err := srv.AddListener(listeners.NewTCP(listeners.Config{ID: "tcp", Address: addr})); err != nil {
		b.Fatal(err)
	}
	if err := srv.Serve(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { srv.Close() })
	return addr
}

// allowAll admits every client to every topic.
type allowAll struct{ mochi.HookBase }

func (allowAll) ID() string { return "allow-all" }

func (allowAll) Provides(b byte) bool {
	return b == mochi.OnConnectAuthenticate || b == mochi.OnACLCheck
}

func (allowAll) OnConnectAuthenticate(*mochi.Client, packets.Packet) bool { return true }

func (allowAll) OnACLCheck(*mochi.Client, string, bool) bool { return true }

// benchSubscriber subscribes a client to the benchmark topics and returns
// its count of received messages.
func benchSubscriber(b *testing.B, broker string, qos byte) func() int64 {
	var n atomic.Int64
	sub := connect5(b, broker, "bench-sub", func(*paho.Publish) { n.Add(1) })
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	if _, err := sub.c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "bench/+/telemetry", QoS: qos}}}); err != nil {
		b.Fatal(err)
	}
	return n.Load
}

// benchPublish publishes b.N messages from benchDevices devices and waits
// until received() reaches b.N; it reports messages per second, and for
// QoS 0 the share of messages that arrived.
func benchPublish(b *testing.B, broker string, qos byte, received func() int64) {
	devs := make([]*device5, benchDevices)
	for d := range devs {
		devs[d] = connect5(b, broker, fmt.Sprintf("bench-%d", d), nil)
	}
	base := received()
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	var next atomic.Int64
	for d, dev := range devs {
		for range benchInflight {
			wg.Add(1)
			go func() {
				defer wg.Done()
				topic := fmt.Sprintf("bench/%d/telemetry", d)
				for i := next.Add(1); i <= int64(b.N); i = next.Add(1) {
					payload := []byte(fmt.Sprintf(`{"id":"%d","reading":{"temperature":20.5,"humidity":40}}`, i))
					if _, err := dev.c.Publish(context.Background(), &paho.Publish{Topic: topic, QoS: qos, Payload: payload}); err != nil {
						b.Error(err)
						return
					}
				}
			}()
		}
	}
	wg.Wait()
	// QoS 0 may lose messages: wait until the count stops growing.
	deadline := time.Now().Add(30 * time.Second)
	last, lastChange := received(), time.Now()
	for received()-base < int64(b.N) && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
		if n := received(); n != last {
			last, lastChange = n, time.Now()
		} else if qos == 0 && time.Since(lastChange) > time.Second {
			break
		}
	}
	got := received() - base
	elapsed := lastChange.Sub(start) // when the last message arrived
	b.StopTimer()
	if qos == 1 && got < int64(b.N) {
		b.Fatalf("%d of %d QoS 1 messages arrived", got, b.N)
	}
	b.ReportMetric(float64(got)/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(float64(got)/float64(b.N), "delivered")
	b.ReportMetric(0, "ns/op")
}
