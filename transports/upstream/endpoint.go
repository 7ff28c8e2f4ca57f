package upstream

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rosettagw/rosetta/router"
)

// Endpoint is one address of an upstream, as a static list or service
// discovery gives it.
type Endpoint struct {
	// Addr is "host:port".
	Addr string
	// Weight is the endpoint's share under the weighted and least request
	// balancers (0 is 1); round robin ignores it.
	Weight int
}

// Options are the endpoint management both kinds of upstream share: how
// calls are spread, and how endpoints that fail are kept out.
type Options struct {
	// Name is the upstream's name, in messages and metric labels.
	Name string
	// Balancer is RoundRobin (the default), LeastRequest or Weighted.
	Balancer string
	// Health, when set, checks every endpoint actively.
	Health *HealthCheck
	// Outlier, when set, ejects endpoints whose calls keep failing.
	Outlier *OutlierDetection
	// Breaker, when set, stops calls to the upstream while most fail.
	Breaker *BreakerConfig
	// PanicThreshold is Envoy's panic threshold, in percent (nil: 50):
	// while fewer than this share of the endpoints are usable (healthy and
	// not ejected), calls are spread over all of them, the unusable
	// included, rather than piled on the few left. 0 never does: with no
	// usable endpoint, calls get UNAVAILABLE.
	PanicThreshold *int
}

// endpoint is one endpoint with its connection and its state.
type endpoint struct {
	addr   string
	weight atomic.Int64
	conn   any    // *grpc.ClientConn, or the base *url.URL of an HTTP upstream
	close  func() // closes conn; nil when there is nothing to close

	inflight atomic.Int64
	calls    [numCodes]atomic.Uint64 // by gRPC code
	failures atomic.Uint64
	latency  prometheus.Histogram
	// consecutive counts the failures since the last success, for
	// outlier detection.
	consecutive atomic.Int64
	draining    atomic.Bool
	// ejectionsTotal counts the endpoint's ejections.
	ejectionsTotal atomic.Uint64
	closeOnce      sync.Once
	stopHealth     context.CancelFunc

	// Guarded by the cluster's mu.
	healthy       bool
	passes, fails int // consecutive health check outcomes
	ejectedUntil  time.Time
	ejections     int       // times ejected, the multiplier of the ejection time
	lastEjected   time.Time // when the last ejection ended or will end
	// current is smooth weighted round-robin's running value (the
	// weighted balancer's, or the least request balancer's while weights
	// differ), guarded by that balancer's mutex.
	current float64
}

// numCodes is the number of gRPC codes (OK to Unauthenticated).
const numCodes = int(codes.Unauthenticated) + 1

// usable reports whether the endpoint takes calls outside panic mode.
func (e *endpoint) usable(now time.Time) bool {
	return e.healthy && !now.Before(e.ejectedUntil)
}

// closeConn closes the endpoint's connection once.
func (e *endpoint) closeConn() {
	e.closeOnce.Do(func() {
		if e.close != nil {
			e.close()
		}
	})
}

// cluster is the set of endpoints of one upstream and what chooses among
// them: the balancer, health, outlier detection and the breaker. GRPC and
// HTTP embed it.
type cluster struct {
	opts     Options
	kind     string
	balancer balancer
	breaker  *breaker
	panicPct int
	// dial makes an endpoint's connection; check probes its health.
	dial  func(addr string) (conn any, closeFn func(), err error)
	check func(ctx context.Context, e *endpoint) error

	mu    sync.Mutex
	all   []*endpoint // guarded by mu; replaced, never edited
	panic bool        // guarded by mu
	// ejectionsRefused counts the ejections max_ejection_percent stopped.
	ejectionsRefused atomic.Uint64
	closed           bool // guarded by mu
	// active is what calls choose from: the usable endpoints, or all of
	// them in panic mode.
	active atomic.Pointer[[]*endpoint]
}

// newCluster checks opts; SetEndpoints then fills it.
func newCluster(kind string, opts Options) (*cluster, error) {
	b, err := newBalancer(opts.Balancer)
	if err != nil {
		return nil, err
	}
	c := &cluster{opts: opts, kind: kind, balancer: b, panicPct: 50}
	if opts.PanicThreshold != nil {
		c.panicPct = *opts.PanicThreshold
	}
	if c.panicPct < 0 || c.panicPct > 100 {
		return nil, fmt.Errorf("panic_threshold %d: want 0 to 100", c.panicPct)
	}
	if err := opts.Health.check(); err != nil {
		return nil, err
	}
	if err := opts.Outlier.check(); err != nil {
		return nil, err
	}
	if c.breaker, err = newBreaker(opts.Name, opts.Breaker); err != nil {
		return nil, err
	}
	c.active.Store(&[]*endpoint{})
	return c, nil
}

// SetEndpoints replaces the upstream's endpoints. An endpoint whose address
// was already there keeps its connection and state (a new weight applies);
// a new one is dialled and counts as healthy until its checks say
// otherwise; a removed one takes no more calls and is closed once its calls
// in flight have ended. Discovery calls it whenever the endpoints change.
func (c *cluster) SetEndpoints(eps []Endpoint) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return fmt.Errorf("upstream %q is closed", c.opts.Name)
	}
	old := map[string]*endpoint{}
	for _, e := range c.all {
		old[e.addr] = e
	}
	next := make([]*endpoint, 0, len(eps))
	seen := map[string]bool{}
	var errs []error
	for _, ep := range eps {
		if seen[ep.Addr] {
			continue
		}
		seen[ep.Addr] = true
		w := cmp.Or(ep.Weight, 1)
		if w < 0 {
			errs = append(errs, fmt.Errorf("endpoint %s: negative weight", ep.Addr))
			continue
		}
		if e := old[ep.Addr]; e != nil {
			e.weight.Store(int64(w))
			next = append(next, e)
			delete(old, ep.Addr)
			continue
		}
		conn, closeFn, err := c.dial(ep.Addr)
		if err != nil {
			errs = append(errs, fmt.Errorf("endpoint %s: %v", ep.Addr, err))
			continue
		}
		e := &endpoint{addr: ep.Addr, conn: conn, close: closeFn, healthy: true,
			latency: prometheus.NewHistogram(prometheus.HistogramOpts{
				Name: "rosetta_upstream_request_duration_seconds", Help: latencyHelp, Buckets: latencyBuckets,
				ConstLabels: prometheus.Labels{"upstream": c.opts.Name, "endpoint": ep.Addr},
			})}
		e.weight.Store(int64(w))
		c.startHealth(e)
		next = append(next, e)
	}
	for _, e := range old {
		c.drain(e)
	}
	c.all = next
	c.refresh(time.Now())
	if len(errs) > 0 {
		return fmt.Errorf("upstream %q: %v", c.opts.Name, errs)
	}
	return nil
}

// drain takes e out of service: it closes once its last call has ended.
func (c *cluster) drain(e *endpoint) {
	if e.stopHealth != nil {
		e.stopHealth()
	}
	e.draining.Store(true)
	if e.inflight.Load() == 0 {
		e.closeConn()
	}
}

// refresh recomputes the endpoints calls choose from. Called with mu held
// after any change of the endpoints or of their state.
func (c *cluster) refresh(now time.Time) {
	usable := make([]*endpoint, 0, len(c.all))
	for _, e := range c.all {
		if e.usable(now) {
			usable = append(usable, e)
		}
	}
	c.panic = len(c.all) > 0 && len(usable)*100 < c.panicPct*len(c.all)
	if c.panic {
		usable = slices.Clone(c.all)
	}
	c.active.Store(&usable)
}

// Close stops the health checks and closes every endpoint's connection.
func (c *cluster) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	for _, e := range c.all {
		c.drain(e)
	}
	c.all = nil
	c.active.Store(&[]*endpoint{})
	return nil
}

// attempt is one call in progress on an endpoint.
type attempt struct {
	c     *cluster
	e     *endpoint
	start time.Time
	// breakerDone reports the outcome to the breaker (nil: no breaker).
	breakerDone func(error)
}

// begin admits a call (the breaker) and chooses its endpoint, avoiding the
// ones the call's earlier attempts tried when another is usable.
func (c *cluster) begin(ctx context.Context) (attempt, error) {
	a := attempt{c: c}
	if c.breaker != nil {
		done, err := c.breaker.allow()
		if err != nil {
			return attempt{}, err
		}
		a.breakerDone = done
	}
	tried := router.TriedOf(ctx)
	for {
		eps := *c.active.Load()
		if len(eps) == 0 {
			a.abandon()
			return attempt{}, status.Errorf(codes.Unavailable, "upstream %q has no usable endpoint (all unhealthy or ejected)", c.opts.Name)
		}
		e := c.balancer.pick(eps)
		if tried != nil && len(eps) > 1 {
			for i := 0; i < len(eps) && slices.Contains(tried.Endpoints, e.addr); i++ {
				e = c.balancer.pick(eps)
			}
		}
		e.inflight.Add(1)
		if e.draining.Load() { // removed since the list was read
			c.release(e)
			continue
		}
		if tried != nil {
			tried.Endpoints = append(tried.Endpoints, e.addr)
		}
		a.e, a.start = e, time.Now()
		return a, nil
	}
}

// abandon gives back the breaker's admission of a call never sent.
func (a *attempt) abandon() {
	if a.breakerDone != nil {
		a.breakerDone(errCallExcluded)
	}
}

// release ends a call on e, closing e if it was removed meanwhile.
func (c *cluster) release(e *endpoint) {
	if e.inflight.Add(-1) == 0 && e.draining.Load() {
		e.closeConn()
	}
}

// end records the call's outcome: code is its gRPC code (an HTTP upstream's
// status mapped), failed says whether it counts against the endpoint and
// the breaker, excluded that it says nothing about the upstream (the
// caller went away).
func (a *attempt) end(code codes.Code, failed, excluded bool) {
	e := a.e
	e.latency.Observe(time.Since(a.start).Seconds())
	if int(code) >= numCodes {
		code = codes.Unknown
	}
	e.calls[code].Add(1)
	if a.breakerDone != nil {
		a.breakerDone(outcome(failed, excluded))
	}
	switch {
	case failed:
		e.failures.Add(1)
		if n := e.consecutive.Add(1); a.c.opts.Outlier != nil && n >= int64(a.c.opts.Outlier.consecutive()) {
			a.c.eject(e)
		}
	case !excluded:
		e.consecutive.Store(0)
	}
	a.c.release(e)
}

// Usable is the number of endpoints that take calls outside panic mode:
// healthy and not ejected. Zero means the upstream is down, for readiness.
func (c *cluster) Usable() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	n := 0
	for _, e := range c.all {
		if e.usable(now) {
			n++
		}
	}
	return n
}

// Status is an upstream's state, as /admin/upstreams shows it.
type Status struct {
	Name     string `json:"name"`
	Kind     string `json:"kind"`
	Balancer string `json:"balancer"`
	// Breaker is "closed", "half-open" or "open"; "off" without a breaker.
	Breaker string `json:"breaker"`
	// Panic says that too few endpoints are usable and calls go to all.
	Panic     bool             `json:"panic"`
	Usable    int              `json:"usable"`
	Endpoints []EndpointStatus `json:"endpoints"`
}

// EndpointStatus is one endpoint's state.
type EndpointStatus struct {
	Addr    string `json:"addr"`
	Weight  int    `json:"weight"`
	Healthy bool   `json:"healthy"`
	// EjectedUntil is set while outlier detection keeps the endpoint out.
	EjectedUntil *time.Time `json:"ejected_until,omitempty"`
	Ejections    int        `json:"ejections"`
	InFlight     int64      `json:"in_flight"`
	Calls        uint64     `json:"calls"`
	Failures     uint64     `json:"failures"`
}

// Status reports the upstream's state.
func (c *cluster) Status() Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.statusLocked()
}

// statusLocked is Status with mu held; its endpoints are c.all's, in order.
func (c *cluster) statusLocked() Status {
	now := time.Now()
	s := Status{Name: c.opts.Name, Kind: c.kind, Balancer: cmp.Or(c.opts.Balancer, RoundRobin), Breaker: c.breaker.state(), Panic: c.panic,
		Endpoints: make([]EndpointStatus, 0, len(c.all))}
	for _, e := range c.all {
		es := EndpointStatus{Addr: e.addr, Weight: int(e.weight.Load()), Healthy: e.healthy, Ejections: e.ejections,
			InFlight: e.inflight.Load(), Failures: e.failures.Load()}
		for i := range e.calls {
			es.Calls += e.calls[i].Load()
		}
		if now.Before(e.ejectedUntil) {
			t := e.ejectedUntil
			es.EjectedUntil = &t
		}
		if e.usable(now) {
			s.Usable++
		}
		s.Endpoints = append(s.Endpoints, es)
	}
	return s
}
