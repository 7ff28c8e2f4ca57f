package upstream

import (
	"testing"
	"time"
)

// grpcServerMinPingTime is the least time a grpc-go server accepts between
// keepalive pings unless configured otherwise (the default MinTime of
// keepalive.EnforcementPolicy); pings more frequent than that draw GOAWAY
// too_many_pings after three strikes.
const grpcServerMinPingTime = 5 * time.Minute

// TestDefaultKeepaliveSuitsDefaultServers pins the default ping interval to
// what a grpc-go server with default settings accepts: the old 30 s ended
// every idle stream on the connection after about two minutes.
func TestDefaultKeepaliveSuitsDefaultServers(t *testing.T) {
	if DefaultKeepaliveTime < grpcServerMinPingTime {
		t.Errorf("DefaultKeepaliveTime %v is shorter than the %v a default grpc-go server requires between pings", DefaultKeepaliveTime, grpcServerMinPingTime)
	}
}
