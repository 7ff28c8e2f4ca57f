package discovery

import (
	"cmp"
	"context"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/hashicorp/consul/api"
)

// Consul finds the passing instances of a service through Consul's health
// API (/v1/health/service/NAME?passing), with blocking queries: each query
// waits until the catalogue's index moves past the last one seen (or Wait
// passes), so a change arrives as soon as Consul knows it. An instance's
// address is its service address, else its node's; its weight is its
// Weights.Passing.
type Consul struct {
	// Address is Consul's HTTP address (default 127.0.0.1:8500, or
	// CONSUL_HTTP_ADDR).
	Address    string
	Service    string
	Tag        string
	Datacenter string
	// Token is the ACL token, when needed.
	Token string
	// Wait bounds one blocking query (default 5m).
	Wait time.Duration
}

// Kind is "consul".
func (*Consul) Kind() string { return "consul" }

// Watch runs blocking queries until one fails.
func (c *Consul) Watch(ctx context.Context, update func([]Endpoint)) error {
	cfg := api.DefaultConfig()
	if c.Address != "" {
		cfg.Address = c.Address
	}
	cfg.Token, cfg.Datacenter = c.Token, c.Datacenter
	cli, err := api.NewClient(cfg)
	if err != nil {
		return fmt.Errorf("consul: %w", err)
	}
	var index uint64
	for {
		q := (&api.QueryOptions{WaitIndex: index, WaitTime: cmp.Or(c.Wait, 5*time.Minute)}).WithContext(ctx)
		entries, meta, err := cli.Health().Service(c.Service, c.Tag, true, q)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return fmt.Errorf("consul: service %s: %w", c.Service, err)
		}
		// The index may go back (a restarted agent): start over then, as
		// Consul's documentation asks; an index of 0 is never waited on.
		if meta.LastIndex < index {
			index = 0
			continue
		}
		changed := meta.LastIndex != index || index == 0
		index = max(meta.LastIndex, 1)
		if !changed {
			continue // the wait timed out with nothing new
		}
		eps := make([]Endpoint, 0, len(entries))
		for _, e := range entries {
			if e.Service == nil {
				continue
			}
			host := e.Service.Address
			if host == "" && e.Node != nil {
				host = e.Node.Address
			}
			if host == "" || e.Service.Port == 0 {
				continue
			}
			eps = append(eps, Endpoint{Addr: net.JoinHostPort(host, strconv.Itoa(e.Service.Port)), Weight: e.Service.Weights.Passing})
		}
		update(eps)
	}
}
