package router_test

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/rosettagw/rosetta/router"
)

// quietClient sends one message and then nothing until the test ends.
type quietClient struct {
	sent bool
	done chan struct{}
}

func (q *quietClient) Recv() ([]byte, error) {
	if !q.sent {
		q.sent = true
		return []byte("hello"), nil
	}
	<-q.done
	return nil, context.Canceled
}

func (q *quietClient) SetHeader(metadata.MD) error { return nil }
func (q *quietClient) Send([]byte) error           { return nil }

func TestStreamLimits(t *testing.T) {
	stopped, stop := context.WithCancel(context.Background())
	stop()
	for _, tc := range []struct {
		name   string
		limits router.StreamLimits
		code   codes.Code
		reason string
	}{
		{"idle", router.StreamLimits{Idle: 20 * time.Millisecond}, codes.DeadlineExceeded, "idle"},
		{"shutdown", router.StreamLimits{Stop: stopped}, codes.Unavailable, "shutdown"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := &quietClient{done: make(chan struct{})}
			t.Cleanup(func() { close(q.done) })
			inv := &streamInvoker{}
			ctx := router.WithStreamLimits(t.Context(), tc.limits)
			err := router.Dispatch.Handle(ctx, &router.Call{Route: chatRoute(inv), Stream: q})
			if status.Code(err) != tc.code || router.StreamEndReason(err) != tc.reason {
				t.Errorf("err %v (reason %q), want %v ended for %q", err, router.StreamEndReason(err), tc.code, tc.reason)
			}
			waitDone(t, inv.ctx)
		})
	}
	// A call without limits is ended by no one but its peers.
	if router.StreamEndReason(status.Error(codes.DeadlineExceeded, "upstream deadline")) != "" {
		t.Error("an upstream's DEADLINE_EXCEEDED taken for an idle end")
	}
}
