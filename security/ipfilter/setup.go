package ipfilter

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/rosettagw/rosetta/security"
	"github.com/rosettagw/rosetta/security/clientip"
)

// Config is the ip_filter policy's configuration: CIDR prefixes or single
// addresses, IPv4 or IPv6 (IPv4-mapped IPv6 ones match the IPv4 address).
type Config struct {
	// Allow, when not empty, is the only addresses let through.
	Allow []string `yaml:"allow"`
	// Deny is refused even when Allow matches.
	Deny []string `yaml:"deny"`
}

// New returns the filter cfg describes; ips finds each call's client
// address.
func New(cfg Config, ips *clientip.Resolver) (*Filter, error) {
	if len(cfg.Allow) == 0 && len(cfg.Deny) == 0 {
		return nil, fmt.Errorf("ip_filter needs allow or deny")
	}
	f := &Filter{ips: ips}
	var err error
	if f.allow, err = ParsePrefixes(cfg.Allow); err != nil {
		return nil, fmt.Errorf("allow: %w", err)
	}
	if f.deny, err = ParsePrefixes(cfg.Deny); err != nil {
		return nil, fmt.Errorf("deny: %w", err)
	}
	return f, nil
}

// ParsePrefixes parses CIDR prefixes and bare addresses (a /32 or /128),
// unmapping IPv4-mapped IPv6 ones.
func ParsePrefixes(ss []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(ss))
	for _, s := range ss {
		var p netip.Prefix
		var err error
		if strings.Contains(s, "/") {
			p, err = netip.ParsePrefix(s)
		} else {
			var a netip.Addr
			if a, err = netip.ParseAddr(s); err == nil && a.Zone() == "" {
				p = netip.PrefixFrom(a, a.BitLen())
			}
		}
		if err != nil || !p.IsValid() {
			return nil, fmt.Errorf("%q is not a CIDR prefix or an IP address", s)
		}
		out = append(out, clientip.Unmap(p))
	}
	return out, nil
}

func init() {
	security.Register(security.Kind{
		Name:   "ip_filter",
		Config: func() any { return new(Config) },
		Build: func(c any, env security.Env) (*security.Policy, error) {
			f, err := New(*c.(*Config), env.IPs)
			if err != nil {
				return nil, err
			}
			return &security.Policy{Phase: security.PhaseNetwork, Wrap: f.Wrap}, nil
		},
	})
}
