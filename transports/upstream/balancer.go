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
	// LeastRequest is Envoy's weighted least request (LEAST_REQUEST with
	// its default choice_count of 2 and active_request_bias of 1): while
	// the usable endpoints' weights are equal it draws two at random and
	// takes the one with fewer calls in flight (the power of two choices);
	// while they differ it spreads the calls by weight / (calls in flight
	// + 1), so that at equal load weights 1 and 3 get a quarter and three
	// quarters of the calls and a loaded endpoint gets fewer.
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
		return &leastRequest{}, nil
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

// leastRequest is Envoy's weighted least request. With equal weights it is
// the power of two choices on the calls in flight: two distinct endpoints
// drawn at random, the less loaded taken (a tie goes to the first drawn),
// which avoids both the herd that always choosing the least loaded causes
// and the scan of every endpoint; the most loaded endpoint gets no new call
// until it is no longer the most loaded. With different weights each
// endpoint's weight is scaled by its load, weight / (in flight + 1), and
// smooth weighted round-robin over these effective weights picks (where
// Envoy uses an earliest-deadline-first schedule: both interleave the
// endpoints in proportion to their effective weights). A loaded endpoint
// then gets fewer calls but, unlike under the power of two choices, is
// never passed over entirely. The current values live on the endpoints
// and are guarded by mu.
type leastRequest struct{ mu sync.Mutex }

func (l *leastRequest) pick(eps []*endpoint) *endpoint {
	n := len(eps)
	if n == 1 {
		return eps[0]
	}
	if !equalWeights(eps) {
		l.mu.Lock()
		defer l.mu.Unlock()
		return smoothPick(eps, loadedWeight)
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

// equalWeights reports whether every endpoint of eps has the same weight.
func equalWeights(eps []*endpoint) bool {
	w := eps[0].weight.Load()
	for _, e := range eps[1:] {
		if e.weight.Load() != w {
			return false
		}
	}
	return true
}

// loadedWeight is e's weight scaled by its load, as Envoy's weighted least
// request computes it with active_request_bias 1.
func loadedWeight(e *endpoint) float64 {
	return float64(e.weight.Load()) / float64(e.inflight.Load()+1)
}

// staticWeight is e's configured weight.
func staticWeight(e *endpoint) float64 { return float64(e.weight.Load()) }

// smoothWeighted is nginx's smooth weighted round-robin over the endpoints'
// configured weights (smoothPick). Over any run of total picks each
// endpoint is taken exactly weight times, spread evenly. The current values
// live on the endpoints and are guarded by mu.
type smoothWeighted struct{ mu sync.Mutex }

func (s *smoothWeighted) pick(eps []*endpoint) *endpoint {
	s.mu.Lock()
	defer s.mu.Unlock()
	return smoothPick(eps, staticWeight)
}

// smoothPick is nginx's smooth weighted round-robin: each pick adds every
// endpoint's weight (as weight gives it) to its current value, takes the
// endpoint with the largest, and subtracts the total from it. The caller
// holds the mutex that guards the endpoints' current values.
func smoothPick(eps []*endpoint, weight func(*endpoint) float64) *endpoint {
	var best *endpoint
	var total float64
	for _, e := range eps {
		w := weight(e)
		e.current += w
		total += w
		if best == nil || e.current > best.current {
			best = e
		}
	}
	best.current -= total
	return best
}
