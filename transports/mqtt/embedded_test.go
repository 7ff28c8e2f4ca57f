package mqtt

import (
	"bytes"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/mochi-mqtt/server/v2/packets"
)

// TestBrokerLogHidesPackets logs what the broker logs on a malformed
// packet or a second CONNECT (the whole packet) and finds none of its
// secrets in the output.
func TestBrokerLogHidesPackets(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(brokerLog{slog.NewTextHandler(&buf, nil), nil})
	connect := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect}, Connect: packets.ConnectParams{
		Username: []byte("dev-user"), Password: []byte("hunter2-password"), PasswordFlag: true, UsernameFlag: true,
	}}
	publish := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish}, TopicName: "devices/d1/telemetry",
		Payload: []byte("payload-secret"), Properties: packets.Properties{User: []packets.UserProperty{{Key: "authorization", Val: "Bearer user-prop-secret"}}}}
	log.Warn("error processing packet", "error", errors.New("protocol violation"), "client", "d1", "listener", "t1", "pk", connect)
	log.Warn("error processing packet", "error", errors.New("malformed packet"), "client", "d1", "listener", "t1", "pk", &publish)
	log.With("packet", publish, "client", "d1").Warn("failed publishing packet", "other", "unknown-attr-secret")
	out := buf.String()
	for _, secret := range []string{"hunter2-password", "dev-user", "payload-secret", "user-prop-secret", "unknown-attr-secret"} {
		if strings.Contains(out, secret) {
			t.Errorf("the broker log holds %q:\n%s", secret, out)
		}
	}
	for _, kept := range []string{"protocol violation", "client=d1", "pk_type=Connect", "pk_type=Publish", "packet_type=Publish"} {
		if !strings.Contains(out, kept) {
			t.Errorf("the broker log lost %q:\n%s", kept, out)
		}
	}
}

// TestBrokerLogThinsDrops: the broker's warning for each dropped QoS 1
// message is logged for a device's 1st, 2nd, 4th, 8th... drop, and every
// drop is counted.
func TestBrokerLogThinsDrops(t *testing.T) {
	var buf bytes.Buffer
	m := &Metrics{}
	d := &drops{metrics: m}
	log := slog.New(brokerLog{slog.NewTextHandler(&buf, nil), d})
	for range 10 {
		log.Warn(quotaReached, "client", "d1", "listener", "tcp")
	}
	for range 3 {
		log.Warn(quotaReached, "client", "d2", "listener", "tcp")
	}
	d.forget("d1") // disconnected: a new connection starts again
	log.Warn(quotaReached, "client", "d1", "listener", "tcp")
	var got []string
	for line := range strings.Lines(buf.String()) {
		_, rest, _ := strings.Cut(line, "client=")
		client, _, _ := strings.Cut(rest, " ")
		_, n, _ := strings.Cut(line, "dropped=")
		got = append(got, client+":"+strings.TrimSpace(n))
	}
	want := []string{"d1:1", "d1:2", "d1:4", "d1:8", "d2:1", "d2:2", "d1:1"}
	if !slices.Equal(got, want) {
		t.Errorf("logged drops %v, want %v\n%s", got, want, buf.String())
	}
	if n := m.dropped[dropInflight].Load(); n != 14 {
		t.Errorf("counted %d drops, want 14", n)
	}
}
