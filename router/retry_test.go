package router

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// failing fails with errs in turn, then answers.
type failing struct {
	errs  []error
	calls int
}

func (f *failing) Invoke(context.Context, string, []byte, metadata.MD) (*Reply, error) {
	f.calls++
	if len(f.errs) > 0 {
		err := f.errs[0]
		f.errs = f.errs[1:]
		return nil, err
	}
	return &Reply{}, nil
}

func TestDispatchRetries(t *testing.T) {
	unavailable := status.Error(codes.Unavailable, "down")
	deadline := status.Error(codes.DeadlineExceeded, "slow")
	decode := func() ([]byte, error) { return nil, nil }
	for _, tt := range []struct {
		name     string
		retry    *Retry
		errs     []error
		code     codes.Code
		attempts int
	}{
		{"no retry", nil, []error{unavailable}, codes.Unavailable, 1},
		{"retried until it answers", &Retry{Attempts: 3, Backoff: time.Microsecond}, []error{unavailable, unavailable}, codes.OK, 3},
		{"attempts bound", &Retry{Attempts: 2, Backoff: time.Microsecond}, []error{unavailable, unavailable}, codes.Unavailable, 2},
		{"unavailable only: a deadline is not retried", &Retry{Attempts: 3, Backoff: time.Microsecond, UnavailableOnly: true}, []error{deadline}, codes.DeadlineExceeded, 1},
		{"not transient", &Retry{Attempts: 3, Backoff: time.Microsecond}, []error{status.Error(codes.InvalidArgument, "no")}, codes.InvalidArgument, 1},
		{"a spent budget stops retries", &Retry{Attempts: 3, Backoff: time.Microsecond, Budget: &RetryBudget{MinConcurrent: -1}}, []error{unavailable}, codes.Unavailable, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			inv := &failing{errs: tt.errs}
			c := &Call{Route: &Route{Invoker: inv, Retry: tt.retry}, Decode: decode}
			err := Dispatch.Handle(context.Background(), c)
			if status.Code(err) != tt.code || c.Attempts != tt.attempts || inv.calls != tt.attempts {
				t.Errorf("code %v after %d attempts (%d calls), want %v after %d", status.Code(err), c.Attempts, inv.calls, tt.code, tt.attempts)
			}
		})
	}
}

// TestRetryBudget: at most Percent of the active calls retry at once, and
// always MinConcurrent.
func TestRetryBudget(t *testing.T) {
	b := &RetryBudget{Percent: 20, MinConcurrent: 1}
	b.active.Store(10) // 20% of 10: 2 retries at once
	r1, ok1 := b.take()
	r2, ok2 := b.take()
	_, ok3 := b.take()
	if !ok1 || !ok2 || ok3 || b.Retrying() != 2 {
		t.Fatalf("takes %v %v %v with %d retrying, want two of three", ok1, ok2, ok3, b.Retrying())
	}
	r1()
	if _, ok := b.take(); !ok {
		t.Error("a retry given back was not available again")
	}
	r2()
	b.active.Store(0)
	b.retrying.Store(0)
	if _, ok := b.take(); !ok {
		t.Error("the floor of one retry was refused with no call active")
	}
}
