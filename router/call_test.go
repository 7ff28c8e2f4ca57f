package router_test

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/rosettagw/rosetta/router"
)

func TestChainOrder(t *testing.T) {
	var trace []string
	mw := func(name string) router.Middleware {
		return func(next router.Handler) router.Handler {
			return router.HandlerFunc(func(ctx context.Context, c *router.Call) error {
				trace = append(trace, name+" in")
				err := next.Handle(ctx, c)
				trace = append(trace, name+" out")
				return err
			})
		}
	}
	final := router.HandlerFunc(func(ctx context.Context, c *router.Call) error {
		trace = append(trace, "final")
		return nil
	})
	tests := []struct {
		mws  []router.Middleware
		want []string
	}{
		{nil, []string{"final"}},
		{[]router.Middleware{mw("a")}, []string{"a in", "final", "a out"}},
		{[]router.Middleware{mw("a"), mw("b"), mw("c")}, []string{"a in", "b in", "c in", "final", "c out", "b out", "a out"}},
	}
	for _, tt := range tests {
		trace = nil
		if err := router.Chain(final, tt.mws...).Handle(context.Background(), &router.Call{}); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(trace, tt.want) {
			t.Errorf("trace = %q, want %q", trace, tt.want)
		}
	}
}

func TestChainShortCircuit(t *testing.T) {
	deny := errors.New("denied")
	called := false
	final := router.HandlerFunc(func(ctx context.Context, c *router.Call) error { called = true; return nil })
	reject := func(next router.Handler) router.Handler {
		return router.HandlerFunc(func(ctx context.Context, c *router.Call) error { return deny })
	}
	if err := router.Chain(final, reject).Handle(context.Background(), &router.Call{}); !errors.Is(err, deny) {
		t.Errorf("err = %v, want the middleware's", err)
	}
	if called {
		t.Error("the final handler ran after a middleware refused the call")
	}
}

// fakeInvoker records what it was asked.
type fakeInvoker struct {
	calls       int
	target      string
	req         []byte
	md          metadata.MD
	deadline    time.Time
	hasDeadline bool
	reply       *router.Reply
	err         error
}

func (f *fakeInvoker) Invoke(ctx context.Context, target string, req []byte, md metadata.MD) (*router.Reply, error) {
	f.calls++
	f.target, f.req, f.md = target, req, md
	f.deadline, f.hasDeadline = ctx.Deadline()
	return f.reply, f.err
}

func TestDispatch(t *testing.T) {
	reply := &router.Reply{Message: []byte{1, 2, 3}}
	upstreamErr := status.Error(codes.Unavailable, "down")
	decodeErr := errors.New("bad body")
	tests := []struct {
		name         string
		timeout      time.Duration
		decode       func() ([]byte, error)
		invokeErr    error
		wantErr      error
		wantCalls    int
		wantDeadline bool
	}{
		{name: "timeout", timeout: 2 * time.Second, decode: func() ([]byte, error) { return []byte("req"), nil }, wantCalls: 1, wantDeadline: true},
		{name: "no timeout", decode: func() ([]byte, error) { return []byte("req"), nil }, wantCalls: 1},
		{name: "decode error", timeout: time.Second, decode: func() ([]byte, error) { return nil, decodeErr }, wantErr: decodeErr},
		{name: "upstream error", decode: func() ([]byte, error) { return []byte("req"), nil }, invokeErr: upstreamErr, wantErr: upstreamErr, wantCalls: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inv := &fakeInvoker{reply: reply, err: tt.invokeErr}
			if tt.invokeErr != nil {
				inv.reply = nil
			}
			md := metadata.Pairs("x-request-id", "42")
			c := &router.Call{
				Route:    &router.Route{Invoker: inv, Timeout: tt.timeout},
				Protocol: router.HTTP,
				Metadata: md,
				Target:   "/example.library.v1.LibraryService/GetBook",
				Decode:   tt.decode,
			}
			start := time.Now()
			err := router.Dispatch.Handle(context.Background(), c)
			end := time.Now()
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if inv.calls != tt.wantCalls {
				t.Fatalf("Invoke called %d times, want %d", inv.calls, tt.wantCalls)
			}
			if tt.wantErr != nil {
				if c.Reply != nil {
					t.Errorf("Reply = %+v after an error", c.Reply)
				}
				return
			}
			if c.Reply != reply {
				t.Errorf("Reply = %+v, want the invoker's", c.Reply)
			}
			if inv.target != c.Target || string(inv.req) != "req" || !reflect.DeepEqual(inv.md, md) {
				t.Errorf("Invoke(%q, %q, %v), want (%q, %q, %v)", inv.target, inv.req, inv.md, c.Target, "req", md)
			}
			if inv.hasDeadline != tt.wantDeadline {
				t.Fatalf("deadline set = %v, want %v", inv.hasDeadline, tt.wantDeadline)
			}
			if tt.wantDeadline {
				if inv.deadline.Before(start.Add(tt.timeout)) || inv.deadline.After(end.Add(tt.timeout)) {
					t.Errorf("deadline %v after the start, want the %v route timeout", inv.deadline.Sub(start), tt.timeout)
				}
			}
		})
	}
}

func TestDispatchKeepsEarlierDeadline(t *testing.T) {
	inv := &fakeInvoker{reply: &router.Reply{}}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	want, _ := ctx.Deadline()
	c := &router.Call{
		Route:  &router.Route{Invoker: inv, Timeout: time.Hour},
		Decode: func() ([]byte, error) { return nil, nil },
	}
	if err := router.Dispatch.Handle(ctx, c); err != nil {
		t.Fatal(err)
	}
	if !inv.hasDeadline || !inv.deadline.Equal(want) {
		t.Errorf("deadline = %v, want the caller's earlier %v", inv.deadline, want)
	}
}

func TestDispatchEndsChain(t *testing.T) {
	inv := &fakeInvoker{reply: &router.Reply{Message: []byte("ok")}}
	decoded := false
	var order []string
	policy := func(next router.Handler) router.Handler {
		return router.HandlerFunc(func(ctx context.Context, c *router.Call) error {
			order = append(order, "policy")
			if decoded {
				t.Error("the request was decoded before the policy ran")
			}
			return next.Handle(ctx, c)
		})
	}
	c := &router.Call{
		Route:  &router.Route{Invoker: inv},
		Target: "t",
		Decode: func() ([]byte, error) { decoded = true; order = append(order, "decode"); return []byte("x"), nil },
	}
	if err := router.Chain(router.Dispatch, policy).Handle(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	if want := []string{"policy", "decode"}; !reflect.DeepEqual(order, want) || inv.calls != 1 {
		t.Errorf("order = %q, calls = %d", order, inv.calls)
	}
}
