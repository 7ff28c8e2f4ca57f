package gateway

import (
	"cmp"
	"fmt"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/net/http/httpguts"

	"github.com/rosettagw/rosetta/router"
)

// newSplitRequests is the count of calls each split sends to each of its
// upstreams; the pool keeps it across reloads.
func newSplitRequests() *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "rosetta_split_requests_total",
		Help: "Calls a split (canary) sent to each of its upstreams, by service (or route) and upstream.",
	}, []string{"service", "upstream"})
}

// upstreamOf resolves the gRPC upstream of a service or route: the one
// named, or a split between several. It returns the name routes record
// (the split's first upstream: its retry policy applies), the invoker and
// the default deadline (the largest of the split's upstreams').
func (g *builder) upstreamOf(label, name string, sc SplitConfig) (string, router.Invoker, time.Duration, error) {
	if len(sc.Split) == 0 {
		if sc.Sticky != nil {
			return "", nil, 0, fmt.Errorf("sticky needs a split")
		}
		inv, err := g.grpcUpstream(name)
		if err != nil {
			return "", nil, 0, err
		}
		return name, inv, time.Duration(g.cfg.Upstreams[name].Timeout), nil
	}
	if name != "" {
		return "", nil, 0, fmt.Errorf("set upstream or split, not both")
	}
	key := label // one split per service (its routes share it) or route
	if s := g.splits[key]; s != nil {
		return s.Targets[0].Name, s, g.splitTimeouts[key], nil
	}
	s := &router.Split{}
	var timeout time.Duration
	total := 0
	for i, t := range sc.Split {
		inv, err := g.grpcUpstream(t.Upstream)
		if err != nil {
			return "", nil, 0, fmt.Errorf("split[%d]: %v", i, err)
		}
		if t.Weight < 0 {
			return "", nil, 0, fmt.Errorf("split[%d]: weight must not be negative", i)
		}
		for _, o := range s.Targets {
			if o.Name == t.Upstream {
				return "", nil, 0, fmt.Errorf("split[%d]: upstream %q listed twice", i, t.Upstream)
			}
		}
		total += t.Weight
		timeout = max(timeout, time.Duration(g.cfg.Upstreams[t.Upstream].Timeout))
		s.Targets = append(s.Targets, router.SplitTarget{Name: t.Upstream, Weight: t.Weight, Invoker: inv})
		if p := t.Pin; p != nil {
			if p.Header == "" && p.Cookie == "" {
				return "", nil, 0, fmt.Errorf("split[%d].pin: set a header, a cookie or both", i)
			}
			if p.Header != "" && !httpguts.ValidHeaderFieldName(p.Header) {
				return "", nil, 0, fmt.Errorf("split[%d].pin.header %q: not a header name", i, p.Header)
			}
			s.Pins = append(s.Pins, router.SplitPin{Header: strings.ToLower(p.Header), Cookie: p.Cookie, Value: cmp.Or(p.Value, "1"), Target: i})
		}
	}
	if total == 0 {
		return "", nil, 0, fmt.Errorf("split: the weights add up to zero")
	}
	if st := sc.Sticky; st != nil {
		if st.Header != "" && !httpguts.ValidHeaderFieldName(st.Header) {
			return "", nil, 0, fmt.Errorf("sticky.header %q: not a header name", st.Header)
		}
		s.Sticky = &router.SplitSticky{Identity: st.Identity == nil || *st.Identity, Header: strings.ToLower(st.Header), Cookie: st.Cookie}
	}
	counters := make([]prometheus.Counter, len(s.Targets))
	for i, t := range s.Targets {
		counters[i] = g.pool.splitRequests.WithLabelValues(label, t.Name)
	}
	s.Chosen = func(i int) { counters[i].Inc() }
	if g.splits == nil {
		g.splits, g.splitTimeouts = map[string]*router.Split{}, map[string]time.Duration{}
	}
	g.splits[key], g.splitTimeouts[key] = s, timeout
	return s.Targets[0].Name, s, timeout, nil
}
