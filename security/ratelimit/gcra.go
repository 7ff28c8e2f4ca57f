package ratelimit

import (
	"context"
	"time"
)

// limit is one GCRA limit: Burst calls at once, refilled at one per
// interval.
type limit struct {
	name string
	// interval is the emission interval T: the period divided by the rate.
	interval time.Duration
	// tau is the tolerance: Burst × interval. A call is allowed when the
	// key's theoretical arrival time, after the call, is at most tau ahead
	// of now.
	tau   time.Duration
	burst int
}

// store decides calls for keys.
type store interface {
	// take decides one call against each limit for the key at the same
	// index: when every limit allows it, one unit is taken from each;
	// otherwise none is. used[i] is how far the key's theoretical arrival
	// time is ahead of now after the decision (0 for an idle key).
	take(ctx context.Context, keys []string, limits []*limit, used []time.Duration) (allowed bool, err error)
}

// gcra decides one call on an arrival time: it returns the key's new
// theoretical arrival time (unchanged when the call is refused) and whether
// the call fits. Times are nanoseconds on the store's clock.
func gcra(tat, now int64, l *limit) (int64, bool) {
	tat = max(tat, now)
	next := tat + int64(l.interval)
	if next-now > int64(l.tau) {
		return tat, false
	}
	return next, true
}

// remaining is how many calls l still allows at once, given used.
func (l *limit) remaining(used time.Duration) int {
	return max(0, int((l.tau-used)/l.interval))
}

// retryAfter is how long a refused call must wait, given used.
func (l *limit) retryAfter(used time.Duration) time.Duration {
	return max(0, used+l.interval-l.tau)
}

// share is l scaled to one of n replicas: 1/n of the rate and of the burst
// (at least one call).
func (l *limit) share(n int) *limit {
	burst := max(1, l.burst/n)
	interval := l.interval * time.Duration(n)
	return &limit{name: l.name, interval: interval, tau: interval * time.Duration(burst), burst: burst}
}
