package router

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// StreamLimits bound the life of the streaming calls an ingress serves.
// The ingresses' listener puts them in each request's context
// (WithStreamLimits); Dispatch applies them to every stream it pumps.
type StreamLimits struct {
	// Idle ends a stream that has carried no message, in either
	// direction, for that long, with DEADLINE_EXCEEDED (zero: no limit).
	Idle time.Duration
	// Stop, when it ends, ends every stream with UNAVAILABLE: the
	// gateway is shutting down, and a stream would otherwise hold the
	// drain of the calls in flight to its deadline.
	Stop context.Context
}

// streamLimitsKey keys StreamLimits in a context.
type streamLimitsKey struct{}

// WithStreamLimits returns ctx carrying l, for the streams whose calls run
// in it.
func WithStreamLimits(ctx context.Context, l StreamLimits) context.Context {
	return context.WithValue(ctx, streamLimitsKey{}, l)
}

// StreamEnd is why the gateway itself ended a stream: it carries the
// status the client gets.
type StreamEnd struct {
	// Reason is "idle" or "shutdown", or an ingress's own (NewStreamEnd).
	Reason string
	st     *status.Status
}

// NewStreamEnd returns the StreamEnd of an ingress that ended a stream
// itself for reason (such as "write_timeout"), the client getting st.
func NewStreamEnd(reason string, st *status.Status) *StreamEnd {
	return &StreamEnd{Reason: reason, st: st}
}

func (e *StreamEnd) Error() string { return e.st.Message() }

// GRPCStatus is the status the client gets.
func (e *StreamEnd) GRPCStatus() *status.Status { return e.st }

// StreamEndReason is the Reason of the StreamEnd err holds, or "" when the
// gateway did not end the call itself.
func StreamEndReason(err error) string {
	if e, ok := errors.AsType[*StreamEnd](err); ok {
		return e.Reason
	}
	return ""
}

// ended is the StreamEnd that cancelled ctx, if one did; else err.
func ended(ctx context.Context, err error) error {
	if e, ok := errors.AsType[*StreamEnd](context.Cause(ctx)); ok {
		return e
	}
	return err
}

// limitStream applies the limits ctx holds to the stream whose context it
// is, ending it by cancel with a StreamEnd. The returned touch restarts
// the idle timer on a message (true) or stops every limit (false, once the
// stream is over).
func limitStream(ctx context.Context, cancel context.CancelCauseFunc) (touch func(alive bool)) {
	l, _ := ctx.Value(streamLimitsKey{}).(StreamLimits)
	stopShutdown := func() bool { return false }
	if l.Stop != nil {
		stopShutdown = context.AfterFunc(l.Stop, func() {
			cancel(&StreamEnd{Reason: "shutdown", st: status.New(codes.Unavailable, "the gateway is shutting down")})
		})
	}
	if l.Idle <= 0 {
		return func(alive bool) {
			if !alive {
				stopShutdown()
			}
		}
	}
	idle := time.AfterFunc(l.Idle, func() {
		cancel(&StreamEnd{Reason: "idle", st: status.New(codes.DeadlineExceeded, fmt.Sprintf("no message for %v: stream idle timeout", l.Idle))})
	})
	var over atomic.Bool // a message may still cross once the stream is over
	return func(alive bool) {
		if !alive {
			over.Store(true)
			idle.Stop()
			stopShutdown()
		} else if !over.Load() {
			idle.Reset(l.Idle)
		}
	}
}
