package upstream

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
)

// The balancers an upstream may use.
const (
	// RoundRobin takes the usable endpoints in turn (the default).
	RoundRobin = "round_robin"
	// LeastRequest draws two usable endpoints at random and takes the one
	// with fewer calls in flight (the power of two choices, as Envoy's
	// LEAST_REQUEST with its default choice_count of 2).
	LeastRequest = "least_request"
	// Weighted splits the calls by the endpoints' static weights with
	// nginx's smooth weighted round-robin: weights 5, 1, 1 give
	// a a b a c a a, never five in a row.
	Weighted = "weighted"
)

// balancer chooses one endpoint of a non-empty list (the usable ones, or
// all in panic mode). It must be safe for concurrent use and should not
// allocate.
type balancer interface {
	pick(eps []*endpoint) *endpoint
}

// newBalancer returns the balancer named name ("" is RoundRobin).
func newBalancer(name string) (balancer, error) {
	switch name {
	case "", RoundRobin:
		return &roundRobin{}, nil
	case LeastRequest:
		return leastRequest{}, nil
	case Weighted:
		return &smoothWeighted{}, nil
	}
	return nil, fmt.Errorf("unknown balancer %q (want %s, %s or %s)", name, RoundRobin, LeastRequest, Weighted)
}

// roundRobin takes the endpoints in turn.
type roundRobin struct{ next atomic.Uint64 }

func (r *roundRobin) pick(eps []*endpoint) *endpoint {
	return eps[(r.next.Add(1)-1)%uint64(len(eps))]
}

// leastRequest is the power of two choices on the calls in flight: two
// distinct endpoints drawn at random, the less loaded taken (a tie goes to
// the first drawn). It avoids both the herd that always choosing the least
// loaded causes and the scan of every endpoint.
type leastRequest struct{}

func (leastRequest) pick(eps []*endpoint) *endpoint {
	n := len(eps)
	if n == 1 {
		return eps[0]
	}
	i := rand.IntN(n)
	j := rand.IntN(n - 1)
	if j >= i {
		j++
	}
	a, b := eps[i], eps[j]
	if b.inflight.Load() < a.inflight.Load() {
		return b
	}
	return a
}

// smoothWeighted is nginx's smooth weighted round-robin: each pick adds
// every endpoint's weight to its current value, takes the endpoint with the
// largest, and subtracts the total from it. Over any run of total picks
// each endpoint is taken exactly weight times, spread evenly. The current
// values live on the endpoints and are guarded by mu.
type smoothWeighted struct{ mu sync.Mutex }

func (s *smoothWeighted) pick(eps []*endpoint) *endpoint {
	s.mu.Lock()
	defer s.mu.Unlock()
	var best *endpoint
	var total int64
	for _, e := range eps {
		w := e.weight.Load()
		e.current += w
		total += w
		if best == nil || e.current > best.current {
			best = e
		}
	}
	best.current -= total
	return best
}
