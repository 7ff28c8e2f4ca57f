package router

import (
	"context"
	"fmt"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// recording records the traceparent each attempt sends, then answers as
// failing does.
type recording struct {
	failing
	sent []string
}

func (r *recording) Invoke(ctx context.Context, target string, req []byte, md metadata.MD) (*Reply, error) {
	r.sent = append(r.sent, md.Get("traceparent")...)
	return r.failing.Invoke(ctx, target, req, md)
}

// TestDispatchTracesEachAttempt checks that each upstream attempt, a retry
// included, is a child span of the call's, and that the upstream receives
// the trace context naming that attempt.
func TestDispatchTracesEachAttempt(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	ctx, call := tp.Tracer("test").Start(context.Background(), "call")
	up := &recording{failing: failing{errs: []error{status.Error(codes.Unavailable, "down")}}}
	c := &Call{
		Route:  &Route{Invoker: up, Upstream: "library"},
		Decode: func() ([]byte, error) { return nil, nil },
		Retry:  &Retry{Attempts: 2, Backoff: time.Millisecond},
	}
	if err := Dispatch.Handle(ctx, c); err != nil {
		t.Fatal(err)
	}
	call.End()
	var attempts []sdktrace.ReadOnlySpan
	for _, s := range rec.Ended() {
		if s.SpanKind() == trace.SpanKindClient {
			attempts = append(attempts, s)
		}
	}
	if len(attempts) != 2 || len(up.sent) != 2 {
		t.Fatalf("%d attempt spans, %d traceparents sent; want 2 of each", len(attempts), len(up.sent))
	}
	for i, s := range attempts {
		if s.Parent().SpanID() != call.SpanContext().SpanID() {
			t.Errorf("attempt %d's parent is %s, want the call's span", i+1, s.Parent().SpanID())
		}
		if want := fmt.Sprintf("00-%s-%s-01", s.SpanContext().TraceID(), s.SpanContext().SpanID()); up.sent[i] != want {
			t.Errorf("attempt %d sent traceparent %q, want %q", i+1, up.sent[i], want)
		}
	}
	if attempts[0].Status().Code.String() != "Error" || attempts[1].Status().Code.String() == "Error" {
		t.Errorf("attempt statuses %v, %v: want the failed one marked", attempts[0].Status(), attempts[1].Status())
	}
}

// TestDispatchUntraced checks that a call without a span sends no trace
// context.
func TestDispatchUntraced(t *testing.T) {
	up := &recording{}
	c := &Call{Route: &Route{Invoker: up}, Decode: func() ([]byte, error) { return nil, nil }, Metadata: metadata.MD{}}
	if err := Dispatch.Handle(context.Background(), c); err != nil || len(up.sent) != 0 {
		t.Fatalf("err %v, traceparents %q; want none", err, up.sent)
	}
}
