package mqtt

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/mochi-mqtt/server/v2/packets"
)

// TestBrokerLogHidesPackets logs what the broker logs on a malformed
// packet or a second CONNECT (the whole packet) and finds none of its
// secrets in the output.
func TestBrokerLogHidesPackets(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(brokerLog{slog.NewTextHandler(&buf, nil)})
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
