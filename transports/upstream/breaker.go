package upstream

import (
	"cmp"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/sony/gobreaker/v2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rosettagw/rosetta/router"
)

// BreakerConfig configures an upstream's circuit breaker. It opens when, over
// the last Window, at least MinRequests calls were made and FailureRatio of
// them failed (UNAVAILABLE, a connection that failed, an HTTP 5xx); while
// open, calls are answered UNAVAILABLE at once without reaching the
// upstream. After OpenDuration it lets HalfOpenRequests calls through: if
// they all succeed it closes, a failure opens it again.
type BreakerConfig struct {
	// FailureRatio opens the breaker (default 0.5).
	FailureRatio float64
	// MinRequests in the window before the ratio counts (default 20).
	MinRequests int
	// Window is the rolling window the ratio is taken over (default 10s,
	// in ten buckets).
	Window time.Duration
	// OpenDuration is how long the breaker stays open (default 30s).
	OpenDuration time.Duration
	// HalfOpenRequests are the probes let through after it (default 3).
	HalfOpenRequests int
}

// breaker is an upstream's circuit breaker, gobreaker's two-step one.
type breaker struct {
	name       string
	cb         *gobreaker.TwoStepCircuitBreaker[struct{}]
	open       time.Duration
	rejections atomic.Uint64
}

// The outcomes reported to gobreaker: a failure, and a call that says
// nothing about the upstream (the caller went away, or it was never sent).
var (
	errCallFailed   = errors.New("upstream call failed")
	errCallExcluded = errors.New("call excluded")
)

func newBreaker(name string, cfg *BreakerConfig) (*breaker, error) {
	if cfg == nil {
		return nil, nil
	}
	if cfg.FailureRatio < 0 || cfg.FailureRatio > 1 || cfg.MinRequests < 0 || cfg.Window < 0 || cfg.OpenDuration < 0 || cfg.HalfOpenRequests < 0 {
		return nil, fmt.Errorf("circuit_breaker: failure_ratio is 0 to 1, and no setting may be negative")
	}
	ratio := cmp.Or(cfg.FailureRatio, 0.5)
	minReq := uint32(cmp.Or(cfg.MinRequests, 20))
	window := cmp.Or(cfg.Window, 10*time.Second)
	b := &breaker{name: name, open: cmp.Or(cfg.OpenDuration, 30*time.Second)}
	b.cb = gobreaker.NewTwoStepCircuitBreaker[struct{}](gobreaker.Settings{
		Name:         name,
		MaxRequests:  uint32(cmp.Or(cfg.HalfOpenRequests, 3)),
		Interval:     window,
		BucketPeriod: window / 10,
		Timeout:      b.open,
		ReadyToTrip: func(c gobreaker.Counts) bool {
			return c.Requests >= minReq && float64(c.TotalFailures) >= ratio*float64(c.Requests)
		},
		IsSuccessful: func(err error) bool { return err != errCallFailed },
		IsExcluded:   func(err error) bool { return err == errCallExcluded },
	})
	return b, nil
}

// allow admits a call, returning the function that reports its outcome, or
// the UNAVAILABLE answer of an open breaker.
func (b *breaker) allow() (func(error), error) {
	done, err := b.cb.Allow()
	if err != nil {
		b.rejections.Add(1)
		what := "open"
		if errors.Is(err, gobreaker.ErrTooManyRequests) {
			what = "half-open, its probes already in flight"
		}
		return nil, router.Refused(status.Errorf(codes.Unavailable,
			"upstream %q: circuit breaker %s after too many failures; calls are refused without reaching it for up to %v", b.name, what, b.open))
	}
	return done, nil
}

// outcome is what a call's result tells the breaker.
func outcome(failed, excluded bool) error {
	switch {
	case excluded:
		return errCallExcluded
	case failed:
		return errCallFailed
	}
	return nil
}

// state is "closed", "half-open", "open", or "off" for no breaker.
func (b *breaker) state() string {
	if b == nil {
		return "off"
	}
	return b.cb.State().String()
}

// stateValue is the state as the breaker-state gauge shows it: 0 closed, 1
// half-open, 2 open.
func (b *breaker) stateValue() float64 {
	switch b.cb.State() {
	case gobreaker.StateHalfOpen:
		return 1
	case gobreaker.StateOpen:
		return 2
	}
	return 0
}
