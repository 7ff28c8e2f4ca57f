package discovery

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/miekg/dns"
)

// DNS finds endpoints in DNS: the A and AAAA records of Name (each at
// Port), or, with SRV, the SRV records of Name (such as
// _grpc._tcp.library.example: targets, ports and weights; only the records
// of the lowest priority). It asks Resolver directly, so the TTL of the
// records is known, and looks again when the smallest TTL has passed
// (clamped to MinTTL and MaxTTL). A failed lookup, or an answer with no
// records, keeps the last good set.
type DNS struct {
	Name string
	Port int
	SRV  bool
	// Resolver is the DNS server's "host:port" (default: the first
	// nameserver of /etc/resolv.conf).
	Resolver string
	// MinTTL (default 1s) and MaxTTL (default 5m) clamp the refresh
	// interval.
	MinTTL, MaxTTL time.Duration
	// Timeout bounds one query (default 2s).
	Timeout time.Duration
}

// Kind is "dns".
func (*DNS) Kind() string { return "dns" }

// Watch looks the name up on every TTL until a lookup fails.
func (d *DNS) Watch(ctx context.Context, update func([]Endpoint)) error {
	resolver := d.Resolver
	if resolver == "" {
		conf, err := dns.ClientConfigFromFile("/etc/resolv.conf")
		if err != nil || len(conf.Servers) == 0 {
			return fmt.Errorf("no resolver configured and none in /etc/resolv.conf: %v", err)
		}
		resolver = net.JoinHostPort(conf.Servers[0], conf.Port)
	}
	minTTL, maxTTL := cmp.Or(d.MinTTL, time.Second), cmp.Or(d.MaxTTL, 5*time.Minute)
	for {
		eps, ttl, err := d.lookup(ctx, resolver)
		if err != nil {
			return err
		}
		update(eps)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(min(max(ttl, minTTL), maxTTL)):
		}
	}
}

// lookup returns the endpoints and the smallest TTL of the records.
func (d *DNS) lookup(ctx context.Context, resolver string) ([]Endpoint, time.Duration, error) {
	if !d.SRV {
		return d.addresses(ctx, resolver, d.Name, d.Port, 1)
	}
	answer, err := d.query(ctx, resolver, d.Name, dns.TypeSRV)
	if err != nil {
		return nil, 0, err
	}
	var srvs []*dns.SRV
	for _, rr := range answer.Answer {
		if s, ok := rr.(*dns.SRV); ok && (len(srvs) == 0 || s.Priority <= srvs[0].Priority) {
			if len(srvs) > 0 && s.Priority < srvs[0].Priority {
				srvs = srvs[:0]
			}
			srvs = append(srvs, s)
		}
	}
	if len(srvs) == 0 {
		return nil, 0, fmt.Errorf("%s: no SRV records", d.Name)
	}
	ttl := time.Duration(srvs[0].Hdr.Ttl) * time.Second
	var eps []Endpoint
	for _, s := range srvs {
		ttl = min(ttl, time.Duration(s.Hdr.Ttl)*time.Second)
		sub, t, err := d.addresses(ctx, resolver, s.Target, int(s.Port), int(s.Weight))
		if err != nil {
			return nil, 0, err
		}
		ttl = min(ttl, t)
		eps = append(eps, sub...)
	}
	return eps, ttl, nil
}

// addresses resolves name's A and AAAA records into endpoints at port.
func (d *DNS) addresses(ctx context.Context, resolver, name string, port, weight int) ([]Endpoint, time.Duration, error) {
	if ip := net.ParseIP(name); ip != nil {
		return []Endpoint{{Addr: net.JoinHostPort(ip.String(), strconv.Itoa(port)), Weight: weight}}, time.Duration(1<<63 - 1), nil
	}
	var eps []Endpoint
	ttl := time.Duration(-1)
	var errs []error
	for _, qt := range []uint16{dns.TypeA, dns.TypeAAAA} {
		answer, err := d.query(ctx, resolver, name, qt)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, rr := range answer.Answer {
			var ip net.IP
			switch r := rr.(type) {
			case *dns.A:
				ip = r.A
			case *dns.AAAA:
				ip = r.AAAA
			default:
				continue // a CNAME on the way
			}
			t := time.Duration(rr.Header().Ttl) * time.Second
			if ttl < 0 || t < ttl {
				ttl = t
			}
			eps = append(eps, Endpoint{Addr: net.JoinHostPort(ip.String(), strconv.Itoa(port)), Weight: weight})
		}
	}
	if len(eps) == 0 {
		return nil, 0, fmt.Errorf("%s: no A or AAAA records: %w", name, errors.Join(errs...))
	}
	return eps, ttl, nil
}

// query asks the resolver one question, over TCP when the UDP answer was
// truncated.
func (d *DNS) query(ctx context.Context, resolver, name string, qt uint16) (*dns.Msg, error) {
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qt)
	m.SetEdns0(4096, false)
	c := &dns.Client{Timeout: cmp.Or(d.Timeout, 2*time.Second)}
	r, _, err := c.ExchangeContext(ctx, m, resolver)
	if err == nil && r.Truncated {
		c.Net = "tcp"
		r, _, err = c.ExchangeContext(ctx, m, resolver)
	}
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", dns.TypeToString[qt], name, err)
	}
	if r.Rcode != dns.RcodeSuccess {
		return nil, fmt.Errorf("%s %s: %s", dns.TypeToString[qt], name, dns.RcodeToString[r.Rcode])
	}
	return r, nil
}
