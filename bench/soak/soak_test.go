package main

import (
	"encoding/binary"
	"errors"
	"io"
	"math"
	"net"
	"testing"
	"time"
)

func TestSlope(t *testing.T) {
	x := []float64{0, 1, 2, 3, 4}
	if got := slope(x, []float64{3, 5, 7, 9, 11}); math.Abs(got-2) > 1e-9 {
		t.Errorf("slope of 2x+3 = %v, want 2", got)
	}
	if got := slope(x, []float64{5, 5, 5, 5, 5}); got != 0 {
		t.Errorf("slope of a constant = %v, want 0", got)
	}
	if got := slope(x[:1], []float64{1}); !math.IsNaN(got) {
		t.Errorf("slope of one point = %v, want NaN", got)
	}
}

func TestRecovery(t *testing.T) {
	b := func(calls, errs int64) bucket { return bucket{calls: calls, errors: errs} }
	buckets := map[string][]bucket{
		"REST": {b(5, 0), b(5, 2), b(5, 1), b(5, 0), b(5, 0)},
		"MQTT": {b(5, 0), b(5, 0), b(5, 0), b(5, 3), b(5, 0)},
	}
	// The fault ended at 1.5 s: second 2 has a REST error, second 3 an
	// MQTT one, second 4 is clean.
	if d, ok := recovery(buckets, 1500*time.Millisecond, 5); !ok || d != 2500*time.Millisecond {
		t.Errorf("recovery = %v, %v; want 2.5s", d, ok)
	}
	if _, ok := recovery(buckets, 1500*time.Millisecond, 4); ok {
		t.Error("recovered within a window whose every second has an error")
	}
	if d, ok := recovery(buckets, 4*time.Second, 5); !ok || d != 0 {
		t.Errorf("recovery after a clean end = %v, %v; want 0", d, ok)
	}
}

func TestGRPCWebAnswer(t *testing.T) {
	frame := func(flag byte, payload string) []byte {
		f := make([]byte, 5, 5+len(payload))
		f[0] = flag
		binary.BigEndian.PutUint32(f[1:], uint32(len(payload)))
		return append(f, payload...)
	}
	msg := frame(0, "\x0a\x09shelves/1")
	for _, c := range []struct {
		name string
		body []byte
		want func(error) bool
	}{
		{"ok", append(msg, frame(0x80, "grpc-status: 0\r\n")...), func(err error) bool { return err == nil }},
		{"unavailable", frame(0x80, "grpc-status: 14\r\ngrpc-message: down\r\n"), func(err error) bool { return err != nil && !errors.Is(err, errLimited) }},
		{"limited", frame(0x80, "grpc-status: 8\r\n"), func(err error) bool { return errors.Is(err, errLimited) }},
		{"no trailer", msg, func(err error) bool { return err != nil }},
		{"status 0 without a message", frame(0x80, "grpc-status: 0\r\n"), func(err error) bool { return err != nil }},
	} {
		if err := grpcWebAnswer(c.body); !c.want(err) {
			t.Errorf("%s: %v", c.name, err)
		}
	}
}

// echoServer answers every connection by echoing it.
func echoServer(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	return ln.Addr().String()
}

// roundTrip writes msg on c and reads it back.
func roundTrip(c net.Conn, msg string) error {
	if _, err := c.Write([]byte(msg)); err != nil {
		return err
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(c, buf); err != nil {
		return err
	}
	if string(buf) != msg {
		return errors.New("echoed " + string(buf))
	}
	return nil
}

func TestFaultProxy(t *testing.T) {
	p, err := newFaultProxy(echoServer(t))
	if err != nil {
		t.Fatal(err)
	}
	defer p.close()
	c, err := net.Dial("tcp", p.addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := roundTrip(c, "hello"); err != nil {
		t.Fatal(err)
	}

	// Latency holds every chunk, each way: a round trip takes at least
	// twice the latency (a lower bound, whatever the machine's load).
	const latency = 50 * time.Millisecond
	p.setLatency(latency)
	start := time.Now()
	if err := roundTrip(c, "slow"); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 2*latency {
		t.Errorf("round trip with %v latency took %v", latency, d)
	}
	p.setLatency(0)

	// Dropping resets the open connection and refuses new ones.
	p.setDropping(true)
	if err := roundTrip(c, "gone"); err == nil {
		t.Error("an open connection still works while dropping")
	}
	c2, err := net.Dial("tcp", p.addr())
	if err == nil {
		if err := roundTrip(c2, "new"); err == nil {
			t.Error("a new connection works while dropping")
		}
		c2.Close()
	}
	p.setDropping(false)
	c3, err := net.Dial("tcp", p.addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c3.Close()
	if err := roundTrip(c3, "back"); err != nil {
		t.Errorf("after dropping: %v", err)
	}
}
