package upstream

import (
	"cmp"
	"fmt"
	"time"
)

// OutlierDetection ejects an endpoint whose calls keep failing, as Envoy's
// outlier detection does with consecutive 5xx: after ConsecutiveFailures
// failures in a row (UNAVAILABLE, a connection that failed, an HTTP 5xx) the
// endpoint takes no calls for BaseEjectionTime times the number of times it
// has been ejected, capped at MaxEjectionTime, then returns by itself. The
// multiplier starts again from one once the endpoint has gone
// MaxEjectionTime without an ejection. An active health check that sees an
// unhealthy endpoint recover ends its ejection at once.
type OutlierDetection struct {
	// ConsecutiveFailures ejects an endpoint (default 5).
	ConsecutiveFailures int
	// BaseEjectionTime is the first ejection's length (default 30s).
	BaseEjectionTime time.Duration
	// MaxEjectionTime caps an ejection (default 300s, and at least
	// BaseEjectionTime).
	MaxEjectionTime time.Duration
	// MaxEjectionPercent bounds the share of the endpoints ejected at once
	// (default 10); one endpoint may always be ejected.
	MaxEjectionPercent int
}

func (o *OutlierDetection) check() error {
	if o == nil {
		return nil
	}
	if o.ConsecutiveFailures < 0 || o.BaseEjectionTime < 0 || o.MaxEjectionTime < 0 || o.MaxEjectionPercent < 0 || o.MaxEjectionPercent > 100 {
		return fmt.Errorf("outlier_detection: the settings must not be negative, and max_ejection_percent at most 100")
	}
	return nil
}

func (o *OutlierDetection) consecutive() int { return cmp.Or(o.ConsecutiveFailures, 5) }

func (o *OutlierDetection) base() time.Duration { return cmp.Or(o.BaseEjectionTime, 30*time.Second) }

func (o *OutlierDetection) maxTime() time.Duration {
	return max(cmp.Or(o.MaxEjectionTime, 300*time.Second), o.base())
}

// eject takes e out of the balancer for its ejection time, unless it is
// ejected already or the share of ejected endpoints is at its bound.
func (c *cluster) eject(e *endpoint) {
	o := c.opts.Outlier
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	if e.draining.Load() || now.Before(e.ejectedUntil) {
		return
	}
	ejected := 0
	for _, x := range c.all {
		if now.Before(x.ejectedUntil) {
			ejected++
		}
	}
	if ejected > 0 && (ejected+1)*100 > cmp.Or(o.MaxEjectionPercent, 10)*len(c.all) {
		c.ejectionsRefused.Add(1)
		return
	}
	if !e.lastEjected.IsZero() && now.Sub(e.lastEjected) > o.maxTime() {
		e.ejections = 0
	}
	e.ejections++
	e.ejectionsTotal.Add(1)
	d := min(o.base()*time.Duration(e.ejections), o.maxTime())
	e.ejectedUntil = now.Add(d)
	e.lastEjected = e.ejectedUntil
	e.consecutive.Store(0)
	c.refresh(now)
	time.AfterFunc(d, func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.refresh(time.Now())
	})
}
