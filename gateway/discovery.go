package gateway

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/rosettagw/rosetta/discovery"
	"github.com/rosettagw/rosetta/router"
	"github.com/rosettagw/rosetta/transports/upstream"
)

// endpointSetter is an upstream client whose endpoints can change while it
// serves: the endpoints it keeps stay connected, the ones removed drain.
type endpointSetter interface {
	SetEndpoints([]upstream.Endpoint) error
}

// dialDiscovered returns the client of an upstream whose endpoints come
// from discovery, pooled with its watch: the watch starts with the client,
// hands every later set to it, and stops when the last generation using the
// client is released. The first set is waited for (InitialTimeout), as the
// client is dialled with it.
func (g *builder) dialDiscovered(name string, u *Upstream) (router.Invoker, error) {
	if (u.GRPC != nil && len(u.GRPC.Targets) > 0) || (u.HTTP != nil && len(u.HTTP.Targets) > 0) {
		return nil, fmt.Errorf("set grpc.targets (or http.targets) or discovery, not both")
	}
	p, err := g.pool.acquire(g.cfg, "upstream "+name, specOf(u), func(env *poolEnv) (any, func(), error) {
		src, err := discoverySource(env, u.Discovery)
		if err != nil {
			return nil, nil, fmt.Errorf("discovery: %v", err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		var (
			mu      sync.Mutex
			client  router.Invoker
			pending []discovery.Endpoint
			first   = make(chan struct{})
			warned  bool
		)
		log := g.log.With("upstream", name)
		set := func(eps []discovery.Endpoint) { // under mu
			if s, ok := client.(endpointSetter); ok {
				if err := s.SetEndpoints(upstreamEndpoints(eps)); err != nil {
					log.Warn("discovered endpoints refused", "err", err)
				}
			} else if !warned {
				warned = true
				log.Warn("this upstream client cannot change its endpoints while it serves; the discovered change applies at the next restart", "endpoints", len(eps))
			}
		}
		go discovery.Run(ctx, src, discovery.Options{Upstream: name, MaxEndpoints: u.Discovery.MaxEndpoints, Log: g.log, Metrics: g.pool.discovery},
			func(eps []discovery.Endpoint) {
				mu.Lock()
				defer mu.Unlock()
				if client != nil {
					set(eps)
					return
				}
				if pending == nil {
					close(first)
				}
				pending = eps
			})
		wait := cmp.Or(time.Duration(u.Discovery.InitialTimeout), 10*time.Second)
		select {
		case <-first:
		case <-time.After(wait):
			cancel()
			return nil, nil, fmt.Errorf("discovery (%s) found no endpoints within %v", src.Kind(), wait)
		}
		mu.Lock()
		defer mu.Unlock()
		c, closeFn, err := dialClient(env, name, u, upstreamEndpoints(pending))
		if err != nil {
			cancel()
			return nil, nil, err
		}
		client = c
		return c, func() { cancel(); closeFn() }, nil
	})
	if err != nil {
		return nil, err
	}
	g.held = append(g.held, p)
	return p.value.(router.Invoker), nil
}

// upstreamEndpoints converts discovered endpoints.
func upstreamEndpoints(eps []discovery.Endpoint) []upstream.Endpoint {
	out := make([]upstream.Endpoint, len(eps))
	for i, e := range eps {
		out[i] = upstream.Endpoint{Addr: e.Addr, Weight: e.Weight}
	}
	return out
}

// discoverySource builds the configured source; files holding secrets are
// read through env, so that their change makes a new client.
func discoverySource(env *poolEnv, d *DiscoveryConfig) (discovery.Source, error) {
	n := 0
	for _, set := range []bool{d.DNS != nil, d.Etcd != nil, d.Consul != nil} {
		if set {
			n++
		}
	}
	if n != 1 {
		return nil, fmt.Errorf("set exactly one of dns, etcd, consul")
	}
	if d.MaxEndpoints < 0 {
		return nil, fmt.Errorf("max_endpoints must not be negative")
	}
	readSecret := func(file string) (string, error) {
		if file == "" {
			return "", nil
		}
		b, err := os.ReadFile(env.path(file))
		return strings.TrimSpace(string(b)), err
	}
	switch {
	case d.DNS != nil:
		c := d.DNS
		if c.Name == "" || (!c.SRV && (c.Port <= 0 || c.Port > 65535)) {
			return nil, fmt.Errorf("dns: set name, and port (1-65535) unless srv")
		}
		return &discovery.DNS{Name: c.Name, Port: c.Port, SRV: c.SRV, Resolver: c.Resolver,
			MinTTL: time.Duration(c.MinTTL), MaxTTL: time.Duration(c.MaxTTL)}, nil
	case d.Etcd != nil:
		c := d.Etcd
		if len(c.Endpoints) == 0 || c.Prefix == "" {
			return nil, fmt.Errorf("etcd: set endpoints and prefix")
		}
		pw, err := readSecret(c.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("etcd.password_file: %v", err)
		}
		return &discovery.Etcd{Endpoints: c.Endpoints, Prefix: c.Prefix, Username: c.Username, Password: pw}, nil
	default:
		c := d.Consul
		if c.Service == "" {
			return nil, fmt.Errorf("consul: set service")
		}
		token, err := readSecret(c.TokenFile)
		if err != nil {
			return nil, fmt.Errorf("consul.token_file: %v", err)
		}
		return &discovery.Consul{Address: c.Address, Service: c.Service, Tag: c.Tag, Datacenter: c.Datacenter, Token: token}, nil
	}
}
