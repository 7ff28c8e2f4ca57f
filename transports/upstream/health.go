package upstream

import (
	"cmp"
	"context"
	"fmt"
	"time"
)

// HealthCheck probes every endpoint of an upstream on a timer: a gRPC
// upstream with grpc.health.v1.Health/Check (SERVING is healthy), an HTTP
// upstream with a GET of Path (a 2xx is healthy). An endpoint turns
// unhealthy after UnhealthyThreshold failed probes in a row and healthy
// again after HealthyThreshold good ones; a new endpoint counts as healthy
// until probed. Unhealthy endpoints take no calls (see
// Options.PanicThreshold).
type HealthCheck struct {
	// Interval between probes (default 5s); Timeout bounds one (default
	// 1s).
	Interval, Timeout time.Duration
	// HealthyThreshold (default 1) and UnhealthyThreshold (default 2).
	HealthyThreshold, UnhealthyThreshold int
	// Service is the service name a gRPC probe asks about ("": the
	// server as a whole).
	Service string
	// Path is the path an HTTP probe gets (default /healthz).
	Path string
}

func (h *HealthCheck) check() error {
	if h == nil {
		return nil
	}
	if h.Interval < 0 || h.Timeout < 0 || h.HealthyThreshold < 0 || h.UnhealthyThreshold < 0 {
		return fmt.Errorf("health_check: the settings must not be negative")
	}
	return nil
}

func (h *HealthCheck) path() string { return cmp.Or(h.Path, "/healthz") }

// startHealth starts probing e, when the upstream checks health.
func (c *cluster) startHealth(e *endpoint) {
	h := c.opts.Health
	if h == nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	e.stopHealth = cancel
	go func() {
		tick := time.NewTicker(cmp.Or(h.Interval, 5*time.Second))
		defer tick.Stop()
		for {
			pctx, pcancel := context.WithTimeout(ctx, cmp.Or(h.Timeout, time.Second))
			err := c.check(pctx, e)
			pcancel()
			if ctx.Err() != nil {
				return
			}
			c.probed(e, err == nil)
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
}

// probed records one probe of e. An endpoint that recovers is also
// forgiven its ejection, as Envoy's successful_active_health_check_uneject_host.
func (c *cluster) probed(e *endpoint, ok bool) {
	h := c.opts.Health
	c.mu.Lock()
	defer c.mu.Unlock()
	if ok {
		e.passes, e.fails = e.passes+1, 0
		if !e.healthy && e.passes >= cmp.Or(h.HealthyThreshold, 1) {
			e.healthy = true
			e.ejectedUntil = time.Time{}
			c.refresh(time.Now())
		}
		return
	}
	e.passes, e.fails = 0, e.fails+1
	if e.healthy && e.fails >= cmp.Or(h.UnhealthyThreshold, 2) {
		e.healthy = false
		c.refresh(time.Now())
	}
}
