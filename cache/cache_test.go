package cache

import (
	"context"
	"errors"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/rosettagw/rosetta/internal/testwait"
	"github.com/rosettagw/rosetta/router"
)

// upstream is a fake end of the chain: it counts calls, holds each until
// released, and records whether its context was cancelled.
type upstream struct {
	calls     atomic.Int64
	release   chan struct{}
	cancelled chan struct{}
}

func newUpstream() *upstream {
	return &upstream{release: make(chan struct{}), cancelled: make(chan struct{}, 10)}
}

func (u *upstream) Handle(ctx context.Context, c *router.Call) error {
	u.calls.Add(1)
	select {
	case <-u.release:
		c.Reply = &router.Reply{Message: []byte("answer"), Header: metadata.Pairs("x-up", "1")}
		return nil
	case <-ctx.Done():
		u.cancelled <- struct{}{}
		return ctx.Err()
	}
}

func newCall(msg []byte) *router.Call {
	return &router.Call{Route: &router.Route{Upstream: "up"}, Target: "/pkg.S/M", Incoming: metadata.MD{},
		Decode: func() ([]byte, error) { return msg, nil }}
}

var rule = Rule{Name: "pkg.S/M", TTL: time.Hour, Input: (&structpb.Struct{}).ProtoReflect().Descriptor()}

// waiters is the number of callers waiting on the flights of c.
func waiters(c *Cache) int {
	c.flights.mu.Lock()
	defer c.flights.mu.Unlock()
	n := 0
	for _, f := range c.flights.m {
		n += f.waiters
	}
	return n
}

// TestCoalescedCallerLeaves cancels the caller whose miss started the
// upstream call: the others still get its answer, from one upstream call
// that was never cancelled.
func TestCoalescedCallerLeaves(t *testing.T) {
	c := New(Config{MaxBytes: 1 << 20, MaxEntryBytes: 1 << 10})
	up := newUpstream()
	h := c.Step(rule)(up)
	leaderCtx, cancelLeader := context.WithCancel(context.Background())
	errs := make(chan error, 3)
	go func() { errs <- h.Handle(leaderCtx, newCall(nil)) }()
	testwait.For(t, "the first call upstream", func() bool { return up.calls.Load() == 1 })
	calls := []*router.Call{newCall(nil), newCall(nil)}
	for _, call := range calls {
		go func() { errs <- h.Handle(context.Background(), call) }()
	}
	testwait.For(t, "three callers on one flight", func() bool { return waiters(c) == 3 })
	cancelLeader()
	if err := <-errs; !errors.Is(err, context.Canceled) {
		t.Fatalf("the cancelled caller got %v", err)
	}
	close(up.release)
	for range calls {
		if err := <-errs; err != nil {
			t.Fatalf("a waiting caller got %v", err)
		}
	}
	for _, call := range calls {
		if call.Reply == nil || string(call.Reply.Message) != "answer" || call.ResponseHeader.Get(CacheStatus)[0] != "rosetta; fwd=miss; collapsed" {
			t.Errorf("a waiting caller's answer: %+v, %v", call.Reply, call.ResponseHeader)
		}
	}
	if n := up.calls.Load(); n != 1 {
		t.Errorf("%d upstream calls, want 1", n)
	}
	select {
	case <-up.cancelled:
		t.Error("the upstream call was cancelled with its first caller")
	default:
	}
	// The answer was stored even though its first caller had left.
	call := newCall(nil)
	if err := h.Handle(context.Background(), call); err != nil || call.ResponseHeader.Get(XCache)[0] != "HIT" {
		t.Errorf("after the flight: %v, %v", err, call.ResponseHeader)
	}
}

// TestCoalescedAllLeave cancels every caller: the upstream call is
// cancelled, and a later miss starts a new one.
func TestCoalescedAllLeave(t *testing.T) {
	c := New(Config{MaxBytes: 1 << 20, MaxEntryBytes: 1 << 10})
	up := newUpstream()
	h := c.Step(rule)(up)
	ctx, cancel := context.WithCancel(context.Background())
	errs := make(chan error, 2)
	for range 2 {
		go func() { errs <- h.Handle(ctx, newCall(nil)) }()
	}
	testwait.For(t, "two callers on one flight", func() bool { return waiters(c) == 2 })
	cancel()
	<-errs
	<-errs
	select {
	case <-up.cancelled:
	case <-time.After(10 * time.Second):
		t.Fatal("the upstream call outlived every caller")
	}
	close(up.release)
	call := newCall(nil)
	if err := h.Handle(context.Background(), call); err != nil || up.calls.Load() != 2 {
		t.Errorf("a later miss: %v, %d upstream calls, want 2", err, up.calls.Load())
	}
}

// TestKeyNormalised checks that a request's key does not depend on its
// wire encoding (map order here), and does depend on the identity and the
// Vary headers.
func TestKeyNormalised(t *testing.T) {
	c := New(Config{MaxBytes: 1 << 20, MaxEntryBytes: 1 << 10})
	r := rule
	r.Vary = []string{"accept-language"}
	mt := (&structpb.Struct{}).ProtoReflect().Type()
	// entry is one map entry of Struct.fields: key k, a Value whose
	// string_value (field 3) is "x".
	entry := func(k string) []byte {
		value := protowire.AppendString(protowire.AppendTag(nil, 3, protowire.BytesType), "x")
		e := protowire.AppendString(protowire.AppendTag(nil, 1, protowire.BytesType), k)
		e = protowire.AppendBytes(protowire.AppendTag(e, 2, protowire.BytesType), value)
		return protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), e)
	}
	ab := append(entry("a"), entry("b")...)
	ba := append(entry("b"), entry("a")...)
	key := func(msg []byte, edit func(*router.Call)) string {
		call := newCall(msg)
		if edit != nil {
			edit(call)
		}
		k, ok := c.key(r, mt, call, msg)
		if !ok {
			t.Fatalf("%x does not decode", msg)
		}
		return k
	}
	base := key(ab, nil)
	if key(ba, nil) != base {
		t.Error("the same map in another order has another key")
	}
	if key(ab, func(c *router.Call) { c.Identity = &router.Identity{Subject: "bob", Method: "jwt"} }) == base {
		t.Error("an identity does not change the key")
	}
	if key(ab, func(c *router.Call) { c.Incoming.Set("accept-language", "fr") }) == base {
		t.Error("a Vary header does not change the key")
	}
	if key(ab, func(c *router.Call) { c.Incoming.Set("x-other", "1") }) != base {
		t.Error("a header outside Vary changes the key")
	}
	if _, ok := c.key(r, mt, newCall([]byte{0xff}), []byte{0xff}); ok {
		t.Error("junk has a key")
	}
}

// BenchmarkStepHit is the cache step's own cost of a hit in memory: the
// request's deterministic form, the key, the lookup and the reply.
//
//	go test ./cache -run '^$' -bench StepHit -benchtime 2s
func BenchmarkStepHit(b *testing.B) {
	c := New(Config{MaxBytes: 64 << 20, MaxEntryBytes: 1 << 20})
	up := newUpstream()
	close(up.release)
	h := c.Step(rule)(up)
	msg, _ := proto.Marshal(&structpb.Struct{Fields: map[string]*structpb.Value{"name": structpb.NewStringValue("shelves/1")}})
	if err := h.Handle(context.Background(), newCall(msg)); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := h.Handle(context.Background(), newCall(msg)); err != nil {
			b.Fatal(err)
		}
	}
	if up.calls.Load() != 1 {
		b.Fatalf("%d upstream calls", up.calls.Load())
	}
}

// fakeStream is a router.Stream carrying reqs and recording what it is sent.
type fakeStream struct {
	reqs   [][]byte
	header metadata.MD
	sent   []string
}

func (s *fakeStream) Recv() ([]byte, error) {
	if len(s.reqs) == 0 {
		return nil, io.EOF
	}
	msg := s.reqs[0]
	s.reqs = s.reqs[1:]
	return msg, nil
}

func (s *fakeStream) SetHeader(md metadata.MD) error { s.header = md; return nil }

func (s *fakeStream) Send(msg []byte) error { s.sent = append(s.sent, string(msg)); return nil }

// TestStreamedUnaryCall: a call of a unary method carried as a Stream (as a
// WebSocket call is) is cached as the same call with a Decode is: its one
// request is read, the answer (the upstream's, then the stored one) sent
// down the stream; without a request message it fails, never upstream.
func TestStreamedUnaryCall(t *testing.T) {
	c := New(Config{MaxBytes: 1 << 20, MaxEntryBytes: 1 << 10})
	up := newUpstream()
	close(up.release)
	h := c.Step(rule)(up)
	for i, want := range []string{"MISS", "HIT"} {
		st := &fakeStream{reqs: [][]byte{nil}}
		call := &router.Call{Route: &router.Route{Upstream: "up"}, Target: "/pkg.S/M", Incoming: metadata.MD{}, Stream: st}
		if err := h.Handle(context.Background(), call); err != nil {
			t.Fatalf("call %d: %v", i+1, err)
		}
		if len(st.sent) != 1 || st.sent[0] != "answer" || st.header.Get("x-up")[0] != "1" || call.ResponseHeader.Get(XCache)[0] != want {
			t.Errorf("call %d: sent %q with header %v, %v; want the answer, %s", i+1, st.sent, st.header, call.ResponseHeader, want)
		}
		if call.Stream != st || call.Decode != nil {
			t.Errorf("call %d: the call's Stream and Decode were not given back", i+1)
		}
	}
	if n := up.calls.Load(); n != 1 {
		t.Errorf("%d upstream calls, want 1", n)
	}
	call := &router.Call{Route: &router.Route{Upstream: "up"}, Target: "/pkg.S/M", Incoming: metadata.MD{}, Stream: &fakeStream{}}
	if err := h.Handle(context.Background(), call); status.Code(err) != codes.Unimplemented || up.calls.Load() != 1 {
		t.Errorf("a stream without a request: %v, %d upstream calls", err, up.calls.Load())
	}
}
