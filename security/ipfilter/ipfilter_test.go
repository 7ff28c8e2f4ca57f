package ipfilter_test

import (
	"context"
	"net/netip"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/rosettagw/rosetta/router"
	"github.com/rosettagw/rosetta/security/clientip"
	"github.com/rosettagw/rosetta/security/ipfilter"
)

func TestFilter(t *testing.T) {
	ips := clientip.New([]netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")})
	f, err := ipfilter.New(ipfilter.Config{
		Allow: []string{"192.0.2.0/24", "2001:db8::/32", "::ffff:198.51.100.0/120", "127.0.0.1"},
		Deny:  []string{"192.0.2.66", "2001:db8:bad::/48"},
	}, ips)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		peer string
		xff  string
		want codes.Code
	}{
		{"192.0.2.1:1", "", codes.OK},
		{"[::ffff:192.0.2.1]:1", "", codes.OK},                           // IPv4-mapped peer matches the IPv4 rule
		{"198.51.100.9:1", "", codes.OK},                                 // IPv4 peer matches the mapped rule
		{"[::ffff:198.51.100.9]:1", "", codes.OK},                        // and so does the mapped peer
		{"192.0.2.66:1", "", codes.PermissionDenied},                     // deny wins over allow
		{"[::ffff:192.0.2.66]:1", "", codes.PermissionDenied},            // also mapped
		{"[2001:db8::1]:1", "", codes.OK},                                // IPv6 allow
		{"[2001:db8:bad::1]:1", "", codes.PermissionDenied},              // IPv6 deny
		{"[2001:db9::1]:1", "", codes.PermissionDenied},                  // outside the allow list
		{"203.0.113.1:1", "", codes.PermissionDenied},                    // outside the allow list
		{"127.0.0.1:1", "", codes.OK},                                    // bare address
		{"203.0.113.1:1", "192.0.2.1", codes.PermissionDenied},           // XFF from an untrusted peer is ignored
		{"10.0.0.1:1", "192.0.2.1", codes.OK},                            // XFF through a trusted proxy
		{"10.0.0.1:1", "192.0.2.1, 203.0.113.1", codes.PermissionDenied}, // the nearest untrusted hop counts
		{"10.0.0.1:1", "garbage", codes.PermissionDenied},                // unknown client
	}
	for _, tt := range tests {
		reached := false
		h := f.Wrap(router.HandlerFunc(func(context.Context, *router.Call) error { reached = true; return nil }))
		c := &router.Call{Peer: netip.MustParseAddrPort(tt.peer), Incoming: metadata.MD{}}
		if tt.xff != "" {
			c.Incoming.Set("x-forwarded-for", tt.xff)
		}
		err := h.Handle(context.Background(), c)
		if got := status.Code(err); got != tt.want {
			t.Errorf("peer %s, XFF %q: code %v, want %v", tt.peer, tt.xff, got, tt.want)
		}
		if reached != (tt.want == codes.OK) {
			t.Errorf("peer %s, XFF %q: next handler reached = %v", tt.peer, tt.xff, reached)
		}
	}
}

func TestDenyOnly(t *testing.T) {
	f, err := ipfilter.New(ipfilter.Config{Deny: []string{"::/0"}}, &clientip.Resolver{})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Check(netip.MustParseAddr("192.0.2.1")); err != nil {
		t.Errorf("an IPv4 address is not in ::/0 once unmapped: %v", err)
	}
	if err := f.Check(netip.MustParseAddr("2001:db8::1")); status.Code(err) != codes.PermissionDenied {
		t.Errorf("::/0 should deny IPv6: %v", err)
	}
	if err := f.Check(netip.MustParseAddr("fe80::1%eth0")); status.Code(err) != codes.PermissionDenied {
		t.Errorf("a zoned address escaped the deny list: %v", err)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, cfg := range []ipfilter.Config{
		{},
		{Allow: []string{"10.0.0.0/33"}},
		{Deny: []string{"not-an-ip"}},
		{Allow: []string{"fe80::1%eth0"}},
	} {
		if _, err := ipfilter.New(cfg, &clientip.Resolver{}); err == nil {
			t.Errorf("New(%+v) = nil error, want one", cfg)
		}
	}
}
