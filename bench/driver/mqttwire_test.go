package main

import (
	"bufio"
	"bytes"
	"net"
	"testing"
)

// pipe returns the two ends of an in-memory connection as mqttConns.
func pipe() (*mqttConn, *mqttConn) {
	a, b := net.Pipe()
	wrap := func(c net.Conn) *mqttConn { return &mqttConn{c: c, r: bufio.NewReader(c), w: bufio.NewWriter(c)} }
	return wrap(a), wrap(b)
}

func TestMQTTWirePublishAndPuback(t *testing.T) {
	dev, broker := pipe()
	defer dev.c.Close()
	defer broker.c.Close()
	long := bytes.Repeat([]byte("x"), 300) // a remaining length of two bytes
	for _, payload := range [][]byte{[]byte(`{"id":"7"}`), long} {
		go func() {
			dev.publish("bench/d1/telemetry", 513, payload)
			_ = dev.flush()
		}()
		b0, err := broker.read()
		if err != nil {
			t.Fatal(err)
		}
		if b0 != mqttPublish|1<<1 {
			t.Fatalf("first byte %#x, want a QoS 1 PUBLISH", b0)
		}
		topic, id, got, err := broker.publishOf(b0)
		if err != nil || string(topic) != "bench/d1/telemetry" || id != 513 || !bytes.Equal(got, payload) {
			t.Fatalf("publishOf = %q, %d, %d bytes, %v", topic, id, len(got), err)
		}
	}
	go func() {
		broker.puback(513)
		_ = broker.flush()
	}()
	if typ, err := dev.read(); err != nil || typ != mqttPuback {
		t.Fatalf("read %#x, %v; want a PUBACK", typ, err)
	}
	if id, reason, err := dev.pubackOf(); id != 513 || reason != 0 || err != nil {
		t.Fatalf("pubackOf = %d, %#x, %v", id, reason, err)
	}
	dev.body = []byte{0x02, 0x01, 0x99, 0x00} // an MQTT 5 PUBACK with a reason code and no properties
	if id, reason, err := dev.pubackOf(); id != 513 || reason != 0x99 || err != nil {
		t.Fatalf("pubackOf = %d, %#x, %v", id, reason, err)
	}
}

func TestReadingID(t *testing.T) {
	for in, want := range map[string]int64{
		`{"id":"42","reading":{"temperature":20.5}}`: 42,
		`{"id":"x"}`:    -1,
		`{"reading":1}`: -1,
		`{"id":"12`:     -1,
	} {
		if got := readingID([]byte(in)); got != want {
			t.Errorf("readingID(%s) = %d, want %d", in, got, want)
		}
	}
}
