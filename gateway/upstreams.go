package gateway

import (
	"maps"
	"slices"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rosettagw/rosetta/transports/upstream"
)

// endpointSet is an upstream client that balances over endpoints: both
// kinds of upstream.
type endpointSet interface {
	Status() upstream.Status
	Usable() int
	prometheus.Collector
}

// UpstreamStatus is every upstream's state, by name, as /admin/upstreams
// serves it.
func (g *Generation) UpstreamStatus() []upstream.Status {
	out := []upstream.Status{}
	for _, name := range slices.Sorted(maps.Keys(g.upstreams)) {
		if s, ok := g.upstreams[name].(endpointSet); ok {
			out = append(out, s.Status())
		}
	}
	return out
}

// DownUpstreams lists the upstreams with no usable endpoint (all unhealthy
// or ejected), which make the gateway not ready.
func (g *Generation) DownUpstreams() []string {
	var down []string
	for _, name := range slices.Sorted(maps.Keys(g.upstreams)) {
		if s, ok := g.upstreams[name].(endpointSet); ok && s.Usable() == 0 {
			down = append(down, name)
		}
	}
	return down
}

// upstreamCollectors are the upstreams' metrics.
func (g *Generation) upstreamCollectors() []prometheus.Collector {
	var cs []prometheus.Collector
	for _, name := range slices.Sorted(maps.Keys(g.upstreams)) {
		if s, ok := g.upstreams[name].(endpointSet); ok {
			cs = append(cs, s)
		}
	}
	return cs
}
