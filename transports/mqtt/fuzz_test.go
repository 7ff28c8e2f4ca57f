package mqtt

import (
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	iotv1 "github.com/rosettagw/rosetta/proto/example/iot/v1"
)

// FuzzRuleDecode matches any topic against uplink rules and decodes any
// payload, as JSON, protobuf or raw bytes: never a panic, and a request
// that decodes names the device its topic names, whatever the payload
// says (a device cannot speak for another).
func FuzzRuleDecode(f *testing.F) {
	f.Add("devices/d1/telemetry", []byte(`{"reading":{"temperature":21.5}}`), byte(0), "")
	f.Add("devices/d1/telemetry", []byte(`{"deviceId":"other"}`), byte(0), "application/json")
	wire, _ := proto.Marshal(&iotv1.RecordRequest{DeviceId: "other"})
	f.Add("devices/d1/telemetry", wire, byte(1), "")
	f.Add("devices/d1/telemetry", wire, byte(0), "application/protobuf")
	f.Add("devices/d%2F1/upload", []byte("raw bytes"), byte(2), "")
	f.Add("devices/d1/blob/a/b", []byte{0xff}, byte(3), "text/plain")
	rules := []*Rule{
		mustFuzzRule(f, RuleConfig{Filter: "devices/{device_id}/telemetry"}),
		mustFuzzRule(f, RuleConfig{Filter: "devices/{device_id}/telemetry", Payload: Proto}),
		mustFuzzRule(f, RuleConfig{Filter: "devices/{device_id}/upload", Method: method("Upload"), Payload: Raw, Body: "data"}),
		mustFuzzRule(f, RuleConfig{Filter: "devices/{device_id}/blob/#", Method: method("UploadBody"), Payload: Raw, Body: "body"}),
	}
	f.Fuzz(func(t *testing.T, topic string, payload []byte, sel byte, contentType string) {
		r := rules[int(sel)%len(rules)]
		vals, ok := r.match(topic)
		if !ok {
			return
		}
		m := &Message{Topic: topic, Payload: payload, ContentType: contentType}
		wire, err := r.decode(m, vals, r.encoding(m))
		if err != nil {
			return
		}
		req := r.input.New().Interface()
		if err := proto.Unmarshal(wire, req); err != nil {
			t.Fatalf("decoded request does not unmarshal: %v", err)
		}
		fd := req.ProtoReflect().Descriptor().Fields().ByName("device_id")
		if got := req.ProtoReflect().Get(fd).String(); got != vals[0] {
			t.Errorf("topic %q names device %q, the request %q", topic, vals[0], got)
		}
	})
}

func mustFuzzRule(f *testing.F, cfg RuleConfig) *Rule {
	if cfg.Method == nil {
		cfg.Method = method("Record")
	}
	r, err := NewRule(cfg)
	if err != nil {
		f.Fatal(err)
	}
	return r
}

// FuzzSizeGuard follows any byte stream, cut anywhere, through the framing
// of the MQTT packets: never a panic, and where the stream is cut does not
// change what it finds (a packet too large, the CONNECT's version).
func FuzzSizeGuard(f *testing.F) {
	connect5 := []byte{0x10, 0x0d, 0, 4, 'M', 'Q', 'T', 'T', 5, 0x02, 0, 60, 0, 0, 0}
	f.Add(append(connect5, 0x30, 0xff, 0xff, 0x03), uint16(3), uint32(1024))
	f.Add(append(connect5, 0x30, 0x05, 0, 1, 't', 0, 'x', 0xc0, 0x00), uint16(1), uint32(16))
	f.Add([]byte{0x10, 0x80, 0x80, 0x80, 0x80, 0x01}, uint16(2), uint32(64))
	f.Fuzz(func(t *testing.T, stream []byte, cut uint16, limit uint32) {
		limit = max(limit, 2)
		whole := &sizeGuard{max: limit, log: slog.New(slog.DiscardHandler), Conn: nopConn{}}
		whole.followOnly(stream)
		pieces := &sizeGuard{max: limit, log: slog.New(slog.DiscardHandler), Conn: nopConn{}}
		at := min(int(cut), len(stream))
		pieces.followOnly(stream[:at])
		pieces.followOnly(stream[at:])
		if whole.done != pieces.done || whole.version != pieces.version || (whole.done && whole.length != pieces.length) {
			t.Errorf("whole: too large %v (%d), version %d; cut at %d: too large %v (%d), version %d",
				whole.done, whole.length, whole.version, at, pieces.done, pieces.length, pieces.version)
		}
	})
}

// followOnly is what Read does with the bytes it read.
func (g *sizeGuard) followOnly(b []byte) {
	if !g.done {
		g.follow(b)
	}
}

// nopConn is a connection that reads nothing and takes every write.
type nopConn struct{ net.Conn }

func (nopConn) Read([]byte) (int, error)         { return 0, io.EOF }
func (nopConn) Write(p []byte) (int, error)      { return len(p), nil }
func (nopConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (nopConn) SetReadDeadline(time.Time) error  { return nil }
func (nopConn) SetWriteDeadline(time.Time) error { return nil }
