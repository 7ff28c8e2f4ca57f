package cache

import (
	"context"
	"sync"

	"github.com/rosettagw/rosetta/router"
)

// flights are the upstream calls in flight for misses, by key, so that
// identical misses share one call. Unlike golang.org/x/sync/singleflight,
// a flight counts its callers: one that gives up does not fail the others,
// and the upstream call is cancelled only when the last has gone.
type flights struct {
	mu sync.Mutex
	m  map[string]*flight
}

// flight is one shared upstream call.
type flight struct {
	cancel  context.CancelFunc
	done    chan struct{} // closed when the results below are set
	waiters int           // guarded by flights.mu

	reply    *router.Reply
	attempts int
	stored   bool
	err      error
	// expired says the call failed because the flight's context ended:
	// its first caller's deadline passed (or every caller left).
	expired bool
}

// join returns the flight of key, and true when the caller leads it: then
// a new flight runs run in its own goroutine, under a context that keeps
// ctx's values and deadline but not its cancellation.
func (fs *flights) join(ctx context.Context, key string, run func(context.Context) (*router.Reply, int, bool, error)) (*flight, bool) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if f := fs.m[key]; f != nil {
		f.waiters++
		return f, false
	}
	fctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	if d, ok := ctx.Deadline(); ok {
		var cancelDeadline context.CancelFunc
		fctx, cancelDeadline = context.WithDeadline(fctx, d)
		cancelBoth := cancel
		cancel = func() { cancelDeadline(); cancelBoth() }
	}
	f := &flight{cancel: cancel, done: make(chan struct{}), waiters: 1}
	fs.m[key] = f
	go func() {
		f.reply, f.attempts, f.stored, f.err = run(fctx)
		f.expired = f.err != nil && fctx.Err() != nil
		fs.mu.Lock()
		if fs.m[key] == f {
			delete(fs.m, key)
		}
		fs.mu.Unlock()
		cancel()
		close(f.done)
	}()
	return f, true
}

// leave gives up one caller's wait on f; the last caller to leave cancels
// the upstream call, and a later identical miss starts a new flight.
func (fs *flights) leave(key string, f *flight) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if f.waiters--; f.waiters == 0 {
		if fs.m[key] == f {
			delete(fs.m, key)
		}
		f.cancel()
	}
}
