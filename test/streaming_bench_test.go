package test

import (
	"context"
	"testing"
	"time"

	ws "github.com/coder/websocket"
)

// BenchmarkWebSocketEcho measures messages per second through the gateway on
// one bidirectional Chat stream over WebSocket (JSON frames), the client
// writing and reading concurrently.
func BenchmarkWebSocketEcho(b *testing.B) {
	u := startStreamUpstream(b)
	ros := startRosetta(b, libraryConfig(descriptorSetSchema(), u.addr, "", ""))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	conn, _, err := ws.Dial(ctx, wsURL(ros, "Chat"), &ws.DialOptions{Subprotocols: []string{"rosetta.json"}})
	if err != nil {
		b.Fatal(err)
	}
	defer conn.CloseNow()
	msg := []byte(`{"message": "bench"}`)
	b.ResetTimer()
	start := time.Now()
	errc := make(chan error, 1)
	go func() {
		for range b.N {
			if err := conn.Write(ctx, ws.MessageText, msg); err != nil {
				errc <- err
				return
			}
		}
		errc <- nil
	}()
	for range b.N {
		if _, _, err := conn.Read(ctx); err != nil {
			b.Fatal(err)
		}
	}
	if err := <-errc; err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
}

// BenchmarkWebSocketIdle measures the gateway's resident memory per open,
// idle bidirectional WebSocket call (each with its upstream gRPC stream):
// run it with -benchtime 10000x for 10,000 connections.
func BenchmarkWebSocketIdle(b *testing.B) {
	u := startStreamUpstream(b)
	ros := startRosetta(b, libraryConfig(descriptorSetSchema(), u.addr, "", "websocket: {idle_timeout: 10m, ping_interval: 10m}\n"))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	before := rssKiB(b, ros)
	conns := make([]*ws.Conn, 0, b.N)
	defer func() {
		for _, c := range conns {
			c.CloseNow()
		}
	}()
	b.ResetTimer()
	for range b.N {
		c, _, err := ws.Dial(ctx, wsURL(ros, "Chat"), &ws.DialOptions{Subprotocols: []string{"rosetta.json"}})
		if err != nil {
			b.Fatalf("connection %d: %v", len(conns)+1, err)
		}
		conns = append(conns, c)
	}
	// One echo on the last connection: every upgrade before it is served.
	last := conns[len(conns)-1]
	if err := last.Write(ctx, ws.MessageText, []byte(`{"message": "last"}`)); err != nil {
		b.Fatal(err)
	}
	if _, _, err := last.Read(ctx); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	after := rssKiB(b, ros)
	b.ReportMetric(float64(after-before)/float64(b.N), "KiB/conn")
	b.ReportMetric(float64(after)/1024, "MiB-total")
}
