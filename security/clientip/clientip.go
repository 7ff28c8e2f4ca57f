// Package clientip finds a call's client address: the connection's peer, or,
// when the peer is a trusted proxy, the address the proxies recorded in one
// header, chosen by the configuration: X-Forwarded-For (the default, the one
// common proxies append to) or Forwarded (RFC 7239). The other header is
// never read: a client could otherwise put its own hops in the header the
// proxy does not touch.
package clientip

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/rosettagw/rosetta/router"
)

// Resolver finds client addresses. The zero Resolver trusts no proxy: the
// client is always the connection's peer.
type Resolver struct {
	trusted   []netip.Prefix
	forwarded bool // read Forwarded rather than X-Forwarded-For
}

// The headers a Resolver may read hops from.
const (
	XForwardedFor = "x-forwarded-for"
	Forwarded     = "forwarded"
)

// New returns a Resolver that believes X-Forwarded-For only when it comes
// from, and only for the hops that are, inside trusted.
func New(trusted []netip.Prefix) *Resolver {
	r, _ := NewHeader(trusted, XForwardedFor)
	return r
}

// NewHeader is New reading the hops from header: "x-forwarded-for" (also
// the default, "") or "forwarded", case-insensitive.
func NewHeader(trusted []netip.Prefix, header string) (*Resolver, error) {
	r := &Resolver{}
	switch strings.ToLower(header) {
	case "", XForwardedFor:
	case Forwarded:
		r.forwarded = true
	default:
		return nil, fmt.Errorf("client IP header %q: want X-Forwarded-For or Forwarded", header)
	}
	for _, p := range trusted {
		r.trusted = append(r.trusted, Unmap(p))
	}
	return r, nil
}

// Unmap turns a prefix of IPv4-mapped IPv6 addresses (::ffff:10.0.0.0/104)
// into the IPv4 prefix it stands for, so that it matches unmapped addresses.
func Unmap(p netip.Prefix) netip.Prefix {
	if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
		return netip.PrefixFrom(a.Unmap(), p.Bits()-96).Masked()
	}
	return p.Masked()
}

// Trusted reports whether a is a trusted proxy.
func (r *Resolver) Trusted(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range r.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// ClientIP returns the client's address, IPv4-mapped IPv6 addresses
// unmapped and IPv6 zones dropped. When the peer is a trusted proxy, it walks
// the hops of the configured header (every line of it, in order) from the
// nearest and returns the first that is not a trusted proxy (the right-most
// untrusted hop), or the farthest when all are; the peer itself when the
// header is absent. It returns the zero Addr when that hop names no address (unknown,
// obfuscated or malformed) or when the header does not parse: callers must
// treat an invalid address as unknown and deny what needs one.
func (r *Resolver) ClientIP(c *router.Call) netip.Addr {
	peer := c.Peer.Addr().Unmap().WithZone("") // a zone would match no prefix
	if !r.Trusted(peer) {
		return peer
	}
	hops, ok := r.hops(c)
	if !ok {
		return netip.Addr{}
	}
	client := peer
	for i := len(hops) - 1; i >= 0; i-- {
		client = hops[i]
		if !client.IsValid() || !r.Trusted(client) {
			return client
		}
	}
	return client
}

// hops lists the addresses of the configured header, farthest first; an
// entry naming no address is the zero Addr. ok is false when the header is
// present but malformed.
func (r *Resolver) hops(c *router.Call) (hops []netip.Addr, ok bool) {
	if r.forwarded {
		fwd := c.Incoming.Get("forwarded")
		if len(fwd) == 0 {
			return nil, true
		}
		els, err := ParseForwarded(strings.Join(fwd, ","))
		if err != nil {
			return nil, false
		}
		for _, el := range els {
			if v, has := el["for"]; has {
				a, _ := ParseNode(v)
				hops = append(hops, a.Unmap())
			}
		}
		return hops, true
	}
	for _, line := range c.Incoming.Get("x-forwarded-for") {
		for part := range strings.SplitSeq(line, ",") {
			hops = append(hops, parseXFF(strings.TrimSpace(part)))
		}
	}
	return hops, true
}

// parseXFF parses one X-Forwarded-For entry: an address, or an address and
// port ("192.0.2.1:80", "[2001:db8::1]:80").
func parseXFF(s string) netip.Addr {
	if a, err := netip.ParseAddr(s); err == nil && a.Zone() == "" {
		return a.Unmap()
	}
	if ap, err := netip.ParseAddrPort(s); err == nil && ap.Addr().Zone() == "" {
		return ap.Addr().Unmap()
	}
	return netip.Addr{}
}
