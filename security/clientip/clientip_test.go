package clientip_test

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"google.golang.org/grpc/metadata"

	"github.com/rosettagw/rosetta/router"
	"github.com/rosettagw/rosetta/security/clientip"
)

func TestClientIP(t *testing.T) {
	trusted := []netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/8"),
		netip.MustParsePrefix("::ffff:192.168.0.0/112"), // mapped form of 192.168.0.0/16
		netip.MustParsePrefix("fd00::/8"),
	}
	xff := clientip.New(trusted)
	fwd, err := clientip.NewHeader(trusted, "Forwarded")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		peer   string
		header map[string][]string
		want   string // "" for the zero Addr
		fwd    bool   // the resolver reading Forwarded
	}{
		{"untrusted peer, XFF ignored", "203.0.113.5:1234", map[string][]string{"x-forwarded-for": {"10.1.1.1"}}, "203.0.113.5", false},
		{"untrusted peer, Forwarded ignored", "203.0.113.5:1234", map[string][]string{"forwarded": {"for=198.51.100.1"}}, "203.0.113.5", false},
		{"mapped peer unmapped", "[::ffff:203.0.113.5]:1234", nil, "203.0.113.5", false},
		{"trusted peer, no header", "10.0.0.1:1", nil, "10.0.0.1", false},
		{"trusted peer, XFF", "10.0.0.1:1", map[string][]string{"x-forwarded-for": {"198.51.100.7"}}, "198.51.100.7", false},
		{"spoofed left entries skipped", "10.0.0.1:1", map[string][]string{"x-forwarded-for": {"1.2.3.4, 198.51.100.7, 10.9.9.9"}}, "198.51.100.7", false},
		{"several XFF lines", "10.0.0.1:1", map[string][]string{"x-forwarded-for": {"1.2.3.4", "198.51.100.7"}}, "198.51.100.7", false},
		{"all hops trusted", "10.0.0.1:1", map[string][]string{"x-forwarded-for": {"10.2.2.2, 10.3.3.3"}}, "10.2.2.2", false},
		{"mapped trusted peer", "[::ffff:192.168.1.1]:1", map[string][]string{"x-forwarded-for": {"198.51.100.7"}}, "198.51.100.7", false},
		{"IPv4 trusted via mapped prefix", "192.168.1.1:1", map[string][]string{"x-forwarded-for": {"::ffff:198.51.100.7"}}, "198.51.100.7", false},
		{"zoned peer", "[fe80::1%eth0]:1", nil, "fe80::1", false},
		{"IPv6 hop", "[fd00::1]:1", map[string][]string{"x-forwarded-for": {"2001:db8::7"}}, "2001:db8::7", false},
		{"XFF with port", "10.0.0.1:1", map[string][]string{"x-forwarded-for": {"[2001:db8::7]:443"}}, "2001:db8::7", false},
		{"XFF junk hop", "10.0.0.1:1", map[string][]string{"x-forwarded-for": {"not-an-ip"}}, "", false},
		// The issue-14 attack: the proxy appends X-Forwarded-For only, the
		// client sends its own Forwarded.
		{"XFF resolver ignores Forwarded", "10.0.0.1:1", map[string][]string{"forwarded": {`for="[2001:db8::9]:80";proto=https`}, "x-forwarded-for": {"198.51.100.7"}}, "198.51.100.7", false},
		{"XFF resolver, Forwarded alone", "10.0.0.1:1", map[string][]string{"forwarded": {"for=198.51.100.1"}}, "10.0.0.1", false},
		{"Forwarded resolver ignores XFF", "10.0.0.1:1", map[string][]string{"forwarded": {`for="[2001:db8::9]:80";proto=https`}, "x-forwarded-for": {"198.51.100.7"}}, "2001:db8::9", true},
		{"Forwarded resolver, XFF alone", "10.0.0.1:1", map[string][]string{"x-forwarded-for": {"198.51.100.7"}}, "10.0.0.1", true},
		{"Forwarded chain", "10.0.0.1:1", map[string][]string{"forwarded": {"for=192.0.2.60, for=198.51.100.17, for=10.4.4.4"}}, "198.51.100.17", true},
		{"Forwarded lines", "10.0.0.1:1", map[string][]string{"forwarded": {"for=192.0.2.60", "for=198.51.100.17"}}, "198.51.100.17", true},
		{"Forwarded unknown", "10.0.0.1:1", map[string][]string{"forwarded": {"for=unknown"}}, "", true},
		{"Forwarded malformed", "10.0.0.1:1", map[string][]string{"forwarded": {`for="192.0.2.1`}}, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &router.Call{Peer: netip.MustParseAddrPort(tt.peer), Incoming: metadata.MD(tt.header)}
			r := xff
			if tt.fwd {
				r = fwd
			}
			got := r.ClientIP(c)
			if tt.want == "" {
				if got.IsValid() {
					t.Errorf("ClientIP = %v, want the zero Addr", got)
				}
				return
			}
			if got != netip.MustParseAddr(tt.want) {
				t.Errorf("ClientIP = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestNewHeader(t *testing.T) {
	for _, h := range []string{"", "X-Forwarded-For", "x-forwarded-for", "forwarded", "FORWARDED"} {
		if _, err := clientip.NewHeader(nil, h); err != nil {
			t.Errorf("NewHeader(%q): %v", h, err)
		}
	}
	for _, h := range []string{"X-Real-Ip", "True-Client-Ip", "x-forwarded"} {
		if _, err := clientip.NewHeader(nil, h); err == nil {
			t.Errorf("NewHeader(%q) accepted", h)
		}
	}
}

func TestZeroResolverTrustsNoOne(t *testing.T) {
	c := &router.Call{Peer: netip.MustParseAddrPort("127.0.0.1:9"), Incoming: metadata.Pairs("x-forwarded-for", "10.0.0.1")}
	if got := (&clientip.Resolver{}).ClientIP(c); got != netip.MustParseAddr("127.0.0.1") {
		t.Errorf("ClientIP = %v, want the peer", got)
	}
}

func TestParseForwarded(t *testing.T) {
	tests := []struct {
		in   string
		want []clientip.Element
	}{
		{`for=192.0.2.43`, []clientip.Element{{"for": "192.0.2.43"}}},
		{`For="[2001:db8:cafe::17]:4711"`, []clientip.Element{{"for": "[2001:db8:cafe::17]:4711"}}},
		{`for=192.0.2.60;proto=http;by=203.0.113.43`, []clientip.Element{{"for": "192.0.2.60", "proto": "http", "by": "203.0.113.43"}}},
		{`for=192.0.2.43, for=198.51.100.17`, []clientip.Element{{"for": "192.0.2.43"}, {"for": "198.51.100.17"}}},
		{`for="_gazonk"`, []clientip.Element{{"for": "_gazonk"}}},
		{`for="a\"b"`, []clientip.Element{{"for": `a"b`}}},
		{` , for=1.2.3.4 ; proto=https ,`, []clientip.Element{{"for": "1.2.3.4", "proto": "https"}}},
		{``, nil},
	}
	for _, tt := range tests {
		got, err := clientip.ParseForwarded(tt.in)
		if err != nil {
			t.Errorf("ParseForwarded(%q): %v", tt.in, err)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseForwarded(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
	for _, bad := range []string{
		`for`, `for=`, `=1.2.3.4`, `for="1.2.3.4`, `for=[2001:db8::1]`, `for=1.2.3.4:80`,
		`for=1.2.3.4;for=5.6.7.8`, `for = 1.2.3.4`, `for=1.2.3.4 junk`, "for=\"a\x01\"", `for="a\`,
		strings.Repeat("for=1.2.3.4,", 65),
	} {
		if els, err := clientip.ParseForwarded(bad); err == nil {
			t.Errorf("ParseForwarded(%q) = %v, want an error", bad, els)
		}
	}
}

func TestParseNode(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.1": "192.0.2.1", "192.0.2.1:8080": "192.0.2.1", "192.0.2.1:_p": "192.0.2.1",
		"[2001:db8::1]": "2001:db8::1", "[2001:db8::1]:443": "2001:db8::1", "[::ffff:1.2.3.4]": "::ffff:1.2.3.4",
	} {
		got, err := clientip.ParseNode(in)
		if err != nil || got != netip.MustParseAddr(want) {
			t.Errorf("ParseNode(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"unknown", "_hidden", "2001:db8::1", "[192.0.2.1]", "[2001:db8::1", "[fe80::1%eth0]", "192.0.2.1:99999", "192.0.2.1:", "192.0.2.1x", "host.example", ""} {
		if got, err := clientip.ParseNode(bad); err == nil {
			t.Errorf("ParseNode(%q) = %v, want an error", bad, got)
		}
	}
}

func TestUnmap(t *testing.T) {
	for in, want := range map[string]string{
		"::ffff:10.0.0.0/104": "10.0.0.0/8", "::ffff:192.0.2.1/128": "192.0.2.1/32",
		"10.1.2.3/8": "10.0.0.0/8", "2001:db8::/32": "2001:db8::/32",
	} {
		if got := clientip.Unmap(netip.MustParsePrefix(in)); got != netip.MustParsePrefix(want) {
			t.Errorf("Unmap(%s) = %s, want %s", in, got, want)
		}
	}
}

// FuzzParseForwarded checks that the parser never panics, and that what it
// accepts round-trips: every element re-serialised parses to the same.
func FuzzParseForwarded(f *testing.F) {
	for _, s := range []string{`for=192.0.2.43`, `for="[2001:db8::1]:80";proto=https;by=_x`, `for=a, for=b`, `for="\"q\""`, `;;,`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		els, err := clientip.ParseForwarded(s)
		if err != nil {
			return
		}
		var parts []string
		for _, el := range els {
			var pairs []string
			for k, v := range el {
				pairs = append(pairs, k+`="`+strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(v)+`"`)
				if v, err := clientip.ParseNode(v); err == nil && !v.IsValid() {
					t.Fatalf("ParseNode accepted an invalid address")
				}
			}
			parts = append(parts, strings.Join(pairs, ";"))
		}
		again, err := clientip.ParseForwarded(strings.Join(parts, ","))
		if err != nil {
			t.Fatalf("re-serialised %q does not parse: %v", strings.Join(parts, ","), err)
		}
		if !reflect.DeepEqual(again, els) {
			t.Fatalf("round trip changed %v into %v", els, again)
		}
	})
}
