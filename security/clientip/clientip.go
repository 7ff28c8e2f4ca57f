// Package clientip finds a call's client address: the connection's peer, or,
// when the peer is a trusted proxy, the address the proxies recorded in the
// Forwarded (RFC 7239) or X-Forwarded-For header.
package clientip

import (
	"net/netip"
	"strings"

	"github.com/rosettagw/rosetta/router"
)

// Resolver finds client addresses. The zero Resolver trusts no proxy: the
// client is always the connection's peer.
type Resolver struct {
	trusted []netip.Prefix
}

// New returns a Resolver that believes the forwarding headers only when
// they come from, and only for the hops that are, inside trusted.
func New(trusted []netip.Prefix) *Resolver {
	r := &Resolver{}
	for _, p := range trusted {
		r.trusted = append(r.trusted, Unmap(p))
	}
	return r
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
// unmapped and IPv6 zones dropped. When the peer is a trusted proxy, it walks the hops of the
// Forwarded header (or, without one, X-Forwarded-For) from the nearest and
// returns the first that is not a trusted proxy, or the farthest when all
// are. It returns the zero Addr when that hop names no address (unknown,
// obfuscated or malformed) or when the header does not parse: callers must
// treat an invalid address as unknown and deny what needs one.
func (r *Resolver) ClientIP(c *router.Call) netip.Addr {
	peer := c.Peer.Addr().Unmap().WithZone("") // a zone would match no prefix
	if !r.Trusted(peer) {
		return peer
	}
	hops, ok := forwardedHops(c)
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

// forwardedHops lists the addresses of the forwarding headers, farthest
// first; an entry naming no address is the zero Addr. ok is false when a
// header is present but malformed.
func forwardedHops(c *router.Call) (hops []netip.Addr, ok bool) {
	if fwd := c.Incoming.Get("forwarded"); len(fwd) > 0 {
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
