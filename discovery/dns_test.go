package discovery

import (
	"context"
	"testing"
	"time"

	"github.com/rosettagw/rosetta/discovery/discoverytest"
)

// TestDNSAddresses: the A records of a name, at the configured port,
// followed as dnsmasq's hosts change (SIGHUP), refreshed on their TTL; a
// resolver that stops answering keeps the last good set until it is back.
func TestDNSAddresses(t *testing.T) {
	d := discoverytest.StartDnsmasq(t, 1, "127.0.0.1 lib.test\n")
	src := &DNS{Name: "lib.test", Port: 9090, Resolver: d.Addr, Timeout: 200 * time.Millisecond}
	w := watch(t, src, Options{})
	w.want(t, "127.0.0.1:9090/1")

	d.Reload("127.0.0.1 lib.test\n127.0.0.2 lib.test\n::1 lib.test\n")
	w.want(t, "127.0.0.1:9090/1", "127.0.0.2:9090/1", "[::1]:9090/1")
	d.Reload("127.0.0.2 lib.test\n")
	w.want(t, "127.0.0.2:9090/1")

	// The resolver goes away: lookups fail, the set stays.
	d.Stop()
	w.waitErrors(t, "dns", "lookup")
	w.quiet(t)
	d.WriteHosts("127.0.0.3 lib.test\n")
	d.Start()
	w.want(t, "127.0.0.3:9090/1")
}

// TestDNSTTL: the refresh interval is the records' TTL, clamped.
func TestDNSTTL(t *testing.T) {
	d := discoverytest.StartDnsmasq(t, 42, "127.0.0.1 lib.test\n", "_grpc._tcp.lib.test,lib.test,9001,0,10")
	for _, src := range []*DNS{{Name: "lib.test", Port: 1}, {Name: "_grpc._tcp.lib.test", SRV: true}} {
		_, ttl, err := src.lookup(context.Background(), d.Addr)
		if err != nil || ttl != 42*time.Second {
			t.Errorf("%s: TTL %v (%v), want 42s", src.Name, ttl, err)
		}
	}
}

// TestDNSSRV: SRV records give the targets, ports and weights (the lowest
// priority only); a new record set (dnsmasq restarted with it) is
// followed.
func TestDNSSRV(t *testing.T) {
	d := discoverytest.StartDnsmasq(t, 1, "127.0.0.1 a.lib.test\n127.0.0.2 b.lib.test\n127.0.0.3 c.lib.test\n",
		"_grpc._tcp.lib.test,a.lib.test,9001,0,10",
		"_grpc._tcp.lib.test,b.lib.test,9002,0,30",
		"_grpc._tcp.lib.test,c.lib.test,9003,1,50") // a backup: a higher priority value
	src := &DNS{Name: "_grpc._tcp.lib.test", SRV: true, Resolver: d.Addr, Timeout: 200 * time.Millisecond}
	w := watch(t, src, Options{})
	w.want(t, "127.0.0.1:9001/10", "127.0.0.2:9002/30")

	d.Stop()
	d.Configure(1, "_grpc._tcp.lib.test,b.lib.test,9002,0,30", "_grpc._tcp.lib.test,c.lib.test,9003,0,5")
	d.Start()
	w.want(t, "127.0.0.2:9002/30", "127.0.0.3:9003/5")
}
