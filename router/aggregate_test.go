package router

import (
	"context"
	"io"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/structpb"

	libraryv1 "github.com/rosettagw/rosetta/proto/example/library/v1"
	orderv1 "github.com/rosettagw/rosetta/proto/example/order/v1"
)

// msg returns the descriptor of an order example message.
func msg(name string) protoreflect.MessageDescriptor {
	return orderv1.File_example_order_v1_order_proto.Messages().ByName(protoreflect.Name(name))
}

// fakeShop is an Invoker answering the order example's gRPC methods from
// functions, counting calls and the calls it saw cancelled.
type fakeShop struct {
	mu       sync.Mutex
	handlers map[string]func(ctx context.Context, req []byte) (proto.Message, error)
	calls    map[string]int
	canceled map[string]int
}

func newFakeShop() *fakeShop {
	f := &fakeShop{calls: map[string]int{}, canceled: map[string]int{}}
	f.handlers = map[string]func(context.Context, []byte) (proto.Message, error){
		"GetProduct": func(_ context.Context, b []byte) (proto.Message, error) {
			req := &orderv1.GetProductRequest{}
			proto.Unmarshal(b, req)
			if req.Id == "nope" {
				return nil, status.Error(codes.NotFound, "no such product")
			}
			return &orderv1.Product{Id: req.Id, Name: "name of " + req.Id, PriceCents: 1 << 40}, nil
		},
		"ListRelated": func(context.Context, []byte) (proto.Message, error) {
			return &orderv1.ListRelatedResponse{ProductIds: []string{"a", "b", "c", "d", "e"}}, nil
		},
		"Reserve": func(_ context.Context, b []byte) (proto.Message, error) {
			req := &orderv1.ReserveRequest{}
			proto.Unmarshal(b, req)
			return &orderv1.Reservation{ReservationId: "r-" + req.ProductId, ProductId: req.ProductId, Quantity: req.Quantity}, nil
		},
		"Release": func(context.Context, []byte) (proto.Message, error) {
			return &orderv1.ReleaseResponse{Released: true}, nil
		},
		"Decline": func(context.Context, []byte) (proto.Message, error) {
			return nil, status.Error(codes.FailedPrecondition, "declined")
		},
		"Stalling": waitForCancel,
		"Echo": func(_ context.Context, b []byte) (proto.Message, error) {
			req := &orderv1.CreateOrderRequest{}
			return req, proto.Unmarshal(b, req)
		},
	}
	return f
}

// waitForCancel answers only when the caller gives up.
func waitForCancel(ctx context.Context, _ []byte) (proto.Message, error) {
	<-ctx.Done()
	return nil, status.FromContextError(ctx.Err()).Err()
}

// signalling wraps h to close the returned channel when h is first called.
func signalling(h func(context.Context, []byte) (proto.Message, error)) (func(context.Context, []byte) (proto.Message, error), <-chan struct{}) {
	entered := make(chan struct{})
	var once sync.Once
	return func(ctx context.Context, b []byte) (proto.Message, error) {
		once.Do(func() { close(entered) })
		return h(ctx, b)
	}, entered
}

// after wraps h to run only once event has happened (or the caller gave
// up), so that a test can order steps the engine runs in parallel.
func after(event <-chan struct{}, h func(context.Context, []byte) (proto.Message, error)) func(context.Context, []byte) (proto.Message, error) {
	return func(ctx context.Context, b []byte) (proto.Message, error) {
		select {
		case <-event:
		case <-ctx.Done():
			return nil, status.FromContextError(ctx.Err()).Err()
		}
		return h(ctx, b)
	}
}

func (f *fakeShop) Invoke(ctx context.Context, target string, req []byte, _ metadata.MD) (*Reply, error) {
	name := target[strings.LastIndex(target, "/")+1:]
	f.mu.Lock()
	f.calls[name]++
	h := f.handlers[name]
	f.mu.Unlock()
	resp, err := h(ctx, req)
	if ctx.Err() != nil {
		f.mu.Lock()
		f.canceled[name]++
		f.mu.Unlock()
	}
	if err != nil {
		return &Reply{}, err
	}
	b, err := proto.Marshal(resp)
	return &Reply{Message: b}, err
}

func (f *fakeShop) count(m map[string]int, name string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return m[name]
}

// invokerFunc adapts a function to Invoker.
type invokerFunc func(ctx context.Context, target string, req []byte) (*Reply, error)

func (f invokerFunc) Invoke(ctx context.Context, target string, req []byte, _ metadata.MD) (*Reply, error) {
	return f(ctx, target, req)
}

// step returns a step calling method of the fake shop.
func (f *fakeShop) step(name, method, req, resp string, fields map[string]string) StepSpec {
	return StepSpec{Name: name, Invoker: f, Target: "/example.order.v1.Svc/" + method, Request: msg(req), Response: msg(resp), Fields: fields}
}

// orderSpec is the order example's composition against shop.
func orderSpec(shop *fakeShop) AggregateSpec {
	related := shop.step("related", "ListRelated", "ListRelatedRequest", "ListRelatedResponse", map[string]string{"product_id": "input.product_id"})
	related.Optional = true
	suggestions := shop.step("suggestions", "GetProduct", "GetProductRequest", "Product", map[string]string{"id": "item"})
	suggestions.ForEach, suggestions.Concurrency, suggestions.Optional = "related.product_ids", 2, true
	reserve := shop.step("reserve", "Reserve", "ReserveRequest", "Reservation", map[string]string{"product_id": "product.id", "quantity": "input.quantity"})
	reserve.Compensate = "release"
	return AggregateSpec{
		Input: msg("CreateOrderRequest"),
		Steps: []StepSpec{
			shop.step("product", "GetProduct", "GetProductRequest", "Product", map[string]string{"id": "input.product_id"}),
			related, suggestions, reserve,
			shop.step("release", "Release", "ReleaseRequest", "ReleaseResponse", map[string]string{"reservation_id": "reserve.reservation_id"}),
			shop.step("charge", "Charge", "ChargeRequest", "Charge", map[string]string{"unit_price_cents": "product.price_cents", "quantity": "input.quantity"}),
		},
		Respond: map[string]string{"product": "product", "suggestions": "suggestions", "reservationId": "reserve.reservation_id", "charge": "charge"},
	}
}

// call runs agg on an order for product and returns the answer.
func call(t *testing.T, agg *Aggregate, product string) (*structpb.Struct, *Call, error) {
	t.Helper()
	in, err := proto.Marshal(&orderv1.CreateOrderRequest{OrderId: "o-1", ProductId: product, Quantity: 3, Card: "4242"})
	if err != nil {
		t.Fatal(err)
	}
	c := &Call{Decode: func() ([]byte, error) { return in, nil }}
	if err := agg.Handle(context.Background(), c); err != nil {
		return nil, c, err
	}
	out := &structpb.Struct{}
	if err := proto.Unmarshal(c.Reply.Message, out); err != nil {
		t.Fatalf("answer is not a Struct: %v", err)
	}
	return out, c, nil
}

// settleGoroutines fails the test unless the goroutine count comes back to
// base within a few seconds.
func settleGoroutines(t *testing.T, base int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > base {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("%d goroutines left behind:\n%s", runtime.NumGoroutine()-base, buf[:runtime.Stack(buf, true)])
		}
		runtime.Gosched()
		time.Sleep(time.Millisecond)
	}
}

func TestAggregate(t *testing.T) {
	t.Run("success", func(t *testing.T) {
		shop := newFakeShop()
		shop.handlers["Charge"] = func(_ context.Context, b []byte) (proto.Message, error) {
			req := &orderv1.ChargeRequest{}
			proto.Unmarshal(b, req)
			return &orderv1.Charge{ChargeId: "c", AmountCents: req.UnitPriceCents * int64(req.Quantity)}, nil
		}
		agg, err := NewAggregate(orderSpec(shop))
		if err != nil {
			t.Fatal(err)
		}
		base := runtime.NumGoroutine()
		out, c, err := call(t, agg, "kb")
		if err != nil {
			t.Fatal(err)
		}
		settleGoroutines(t, base)
		f := out.GetFields()
		// 2^40 * 3 survives as an int64 through both steps.
		if got := f["charge"].GetStructValue().GetFields()["amountCents"].GetStringValue(); got != "3298534883328" {
			t.Errorf("charge amount %q, want 3298534883328 (int64 kept exact)", got)
		}
		if got := f["reservationId"].GetStringValue(); got != "r-kb" {
			t.Errorf("reservationId %q, want r-kb (reserve saw product.id)", got)
		}
		var ids []string
		for _, v := range f["suggestions"].GetListValue().GetValues() {
			ids = append(ids, v.GetStructValue().GetFields()["id"].GetStringValue())
		}
		if strings.Join(ids, ",") != "a,b,c,d,e" {
			t.Errorf("suggestions %v, want a..e in order", ids)
		}
		if _, ok := f[partialKey]; ok || len(c.ResponseHeader) > 0 {
			t.Errorf("complete answer marked partial: %v %v", f[partialKey], c.ResponseHeader)
		}
		if n := shop.count(shop.calls, "Release"); n != 0 {
			t.Errorf("Release called %d times on success", n)
		}
	})

	t.Run("optional step fails", func(t *testing.T) {
		shop := newFakeShop()
		shop.handlers["Charge"] = shop.handlers["Release"]
		shop.handlers["ListRelated"] = waitForCancel
		spec := orderSpec(shop)
		spec.Steps[1].Timeout = 20 * time.Millisecond
		agg, err := NewAggregate(spec)
		if err != nil {
			t.Fatal(err)
		}
		base := runtime.NumGoroutine()
		out, c, err := call(t, agg, "kb")
		if err != nil {
			t.Fatal(err)
		}
		settleGoroutines(t, base)
		f := out.GetFields()
		if _, ok := f["suggestions"]; ok {
			t.Error("answer holds the key of a failed optional step")
		}
		if !f[partialKey].GetBoolValue() || len(f[failedStepsKey].GetListValue().GetValues()) != 2 {
			t.Errorf("answer not marked partial with two failed steps: %v", out)
		}
		if got := c.ResponseHeader.Get(PartialHeader); len(got) != 1 || got[0] != "related,suggestions" {
			t.Errorf("%s header %q, want related,suggestions", PartialHeader, got)
		}
		if shop.count(shop.canceled, "ListRelated") != 1 {
			t.Error("the slow optional step was not cancelled at its timeout")
		}
	})

	t.Run("required step fails", func(t *testing.T) {
		shop := newFakeShop()
		shop.handlers["Charge"] = shop.handlers["Release"]
		// The product step fails only once the related step is in flight,
		// so there is a call to cancel.
		var related <-chan struct{}
		shop.handlers["ListRelated"], related = signalling(waitForCancel)
		shop.handlers["GetProduct"] = after(related, shop.handlers["GetProduct"])
		agg, err := NewAggregate(orderSpec(shop))
		if err != nil {
			t.Fatal(err)
		}
		base := runtime.NumGoroutine()
		_, _, err = call(t, agg, "nope")
		settleGoroutines(t, base)
		if st := status.Convert(err); st.Code() != codes.NotFound || !strings.Contains(st.Message(), "step product") {
			t.Errorf("error %v, want NOT_FOUND naming step product", err)
		}
		if shop.count(shop.canceled, "ListRelated") != 1 {
			t.Error("the step in flight was not cancelled")
		}
		if shop.count(shop.calls, "Reserve") != 0 {
			t.Error("a step depending on the failed one ran")
		}
	})

	t.Run("compensation", func(t *testing.T) {
		shop := newFakeShop()
		shop.handlers["Charge"] = shop.handlers["Decline"]
		spec := orderSpec(shop)
		spec.Steps[5].After = []string{"reserve"}
		agg, err := NewAggregate(spec)
		if err != nil {
			t.Fatal(err)
		}
		base := runtime.NumGoroutine()
		_, _, err = call(t, agg, "kb")
		settleGoroutines(t, base)
		if st := status.Convert(err); st.Code() != codes.FailedPrecondition || !strings.Contains(st.Message(), "step charge: declined") {
			t.Errorf("error %v, want FAILED_PRECONDITION from step charge", err)
		}
		if n := shop.count(shop.calls, "Release"); n != 1 {
			t.Errorf("Release called %d times, want exactly 1", n)
		}
	})

	t.Run("route timeout", func(t *testing.T) {
		// The deadline passes while charge waits, the reservation held: it
		// is released. On a busy machine the deadline may pass before the
		// reservation is made (then nothing is to be released); the route
		// timeout doubles until a run has seen the reservation.
		for timeout := 20 * time.Millisecond; ; timeout *= 2 {
			if timeout > time.Minute {
				t.Fatal("no run reached the reservation before the route's deadline")
			}
			shop := newFakeShop()
			shop.handlers["Charge"] = waitForCancel
			spec := orderSpec(shop)
			spec.Timeout = timeout
			spec.Steps[5].After = []string{"reserve"} // the reservation is held when the deadline passes
			agg, err := NewAggregate(spec)
			if err != nil {
				t.Fatal(err)
			}
			base := runtime.NumGoroutine()
			_, _, err = call(t, agg, "kb")
			settleGoroutines(t, base)
			if st := status.Convert(err); st.Code() != codes.DeadlineExceeded {
				t.Errorf("error %v, want DEADLINE_EXCEEDED", err)
			}
			reserved := shop.count(shop.calls, "Reserve")
			if n := shop.count(shop.calls, "Release"); n != reserved {
				t.Errorf("Release called %d times after %d reservations, want as many", n, reserved)
			}
			if reserved > 0 {
				break
			}
			t.Logf("the %v deadline passed before the reservation; again with a longer one", timeout)
		}
	})

	t.Run("identity", func(t *testing.T) {
		shop := newFakeShop()
		shop.handlers["Charge"] = shop.handlers["Release"]
		spec := orderSpec(shop)
		spec.Steps[3].Fields = map[string]string{"product_id": "identity.subject", "quantity": "claims.qty"}
		agg, err := NewAggregate(spec)
		if err != nil {
			t.Fatal(err)
		}
		in, _ := proto.Marshal(&orderv1.CreateOrderRequest{ProductId: "kb"})
		for _, tc := range []struct {
			id   *Identity
			code codes.Code
		}{
			{&Identity{Subject: "alice", Claims: map[string]any{"qty": float64(7)}}, codes.OK},
			{nil, codes.Unauthenticated},
			{&Identity{Subject: "alice"}, codes.PermissionDenied},
			{&Identity{Subject: "alice", Claims: map[string]any{"qty": 7.5}}, codes.PermissionDenied},
		} {
			c := &Call{Identity: tc.id, Decode: func() ([]byte, error) { return in, nil }}
			err := agg.Handle(context.Background(), c)
			if status.Code(err) != tc.code {
				t.Errorf("identity %+v: error %v, want code %v", tc.id, err, tc.code)
				continue
			}
			if err != nil {
				continue
			}
			out := &structpb.Struct{}
			proto.Unmarshal(c.Reply.Message, out)
			if got := out.GetFields()["reservationId"].GetStringValue(); got != "r-alice" {
				t.Errorf("reservationId %q, want r-alice (from the subject)", got)
			}
		}
	})

	t.Run("whole message", func(t *testing.T) {
		shop := newFakeShop()
		agg, err := NewAggregate(AggregateSpec{
			Input: msg("CreateOrderRequest"),
			Steps: []StepSpec{shop.step("echo", "Echo", "CreateOrderRequest", "CreateOrderRequest", map[string]string{"*": "input"})},
			Merge: []string{"echo"},
		})
		if err != nil {
			t.Fatal(err)
		}
		out, _, err := call(t, agg, "kb")
		if err != nil {
			t.Fatal(err)
		}
		want, _ := structpb.NewStruct(map[string]any{"orderId": "o-1", "productId": "kb", "quantity": 3, "card": "4242"})
		if !proto.Equal(out, want) {
			t.Errorf("answer %v, want the input merged back: %v", out, want)
		}
	})

	t.Run("http step", func(t *testing.T) {
		for _, tc := range []struct {
			reply *Reply
			code  codes.Code
		}{
			{&Reply{HTTPStatus: 200, Message: []byte(`{"chargeId":"c-1","amountCents":"12"}`)}, codes.OK},
			{&Reply{HTTPStatus: 503, Message: []byte("busy")}, codes.Unavailable},
			{&Reply{HTTPStatus: 402, Message: []byte(`{"code":9,"message":"declined"}`)}, codes.FailedPrecondition},
			{&Reply{HTTPStatus: 200, Message: []byte(`not json`)}, codes.Internal},
		} {
			var sent []byte
			inv := invokerFunc(func(_ context.Context, target string, req []byte) (*Reply, error) {
				sent = req
				return tc.reply, nil
			})
			agg, err := NewAggregate(AggregateSpec{
				Input: msg("CreateOrderRequest"),
				Steps: []StepSpec{{Name: "charge", Invoker: inv, Target: "POST /v1/charges", JSON: true,
					Request: msg("ChargeRequest"), Response: msg("Charge"), Fields: map[string]string{"card": "input.card"}}},
			})
			if err != nil {
				t.Fatal(err)
			}
			out, _, err := call(t, agg, "kb")
			if status.Code(err) != tc.code {
				t.Errorf("reply %d %s: error %v, want code %v", tc.reply.HTTPStatus, tc.reply.Message, err, tc.code)
			}
			if string(sent) != `{"card":"4242"}` {
				t.Errorf("request body %s, want the card as proto3 JSON", sent)
			}
			if err == nil && out.GetFields()["charge"].GetStructValue().GetFields()["amountCents"].GetStringValue() != "12" {
				t.Errorf("answer %v, want the charge", out)
			}
		}
	})

	t.Run("http target", func(t *testing.T) {
		var targets []string
		inv := invokerFunc(func(_ context.Context, target string, req []byte) (*Reply, error) {
			if len(req) > 0 {
				t.Errorf("%s sent a body: %s", target, req)
			}
			targets = append(targets, target)
			return &Reply{HTTPStatus: 200, Message: []byte(`{"quantity":2}`)}, nil
		})
		agg, err := NewAggregate(AggregateSpec{
			Input: msg("CreateOrderRequest"),
			Steps: []StepSpec{{Name: "get", Invoker: inv, Target: "GET /v1/orders/{order_id}/items", JSON: true,
				Request: msg("ReserveRequest"), Response: msg("Reservation"),
				Fields: map[string]string{"order_id": "input.product_id", "product_id": "input.card", "quantity": "input.quantity"}}},
		})
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := call(t, agg, "a/b c"); err != nil {
			t.Fatal(err)
		}
		if want := "GET /v1/orders/a%2Fb%20c/items?productId=4242&quantity=3"; len(targets) != 1 || targets[0] != want {
			t.Errorf("targets %q, want [%q]", targets, want)
		}
	})

	t.Run("fan-out item fails", func(t *testing.T) {
		shop := newFakeShop()
		shop.handlers["Charge"] = shop.handlers["Release"]
		getProduct := shop.handlers["GetProduct"]
		// Item "b" fails once item "a" is in flight (the two run at once).
		waitA, aEntered := signalling(waitForCancel)
		gone := after(aEntered, func(context.Context, []byte) (proto.Message, error) {
			return nil, status.Error(codes.NotFound, "gone")
		})
		shop.handlers["GetProduct"] = func(ctx context.Context, b []byte) (proto.Message, error) {
			req := &orderv1.GetProductRequest{}
			proto.Unmarshal(b, req)
			switch req.Id {
			case "a":
				return waitA(ctx, b) // still running when "b" fails
			case "b":
				return gone(ctx, b)
			case "c", "d", "e":
				return waitForCancel(ctx, b)
			}
			return getProduct(ctx, b)
		}
		spec := orderSpec(shop)
		spec.Steps[1].Optional, spec.Steps[2].Optional = false, false
		agg, err := NewAggregate(spec)
		if err != nil {
			t.Fatal(err)
		}
		base := runtime.NumGoroutine()
		_, _, err = call(t, agg, "kb")
		settleGoroutines(t, base)
		if st := status.Convert(err); st.Code() != codes.NotFound || st.Message() != "step suggestions: item 1: gone" {
			t.Errorf("error %v, want NOT_FOUND from item 1 of step suggestions", err)
		}
		if shop.count(shop.canceled, "GetProduct") == 0 {
			t.Error("the other item in flight was not cancelled")
		}
	})

	t.Run("fan-out bound", func(t *testing.T) {
		shop := newFakeShop()
		shop.handlers["Charge"] = shop.handlers["Release"]
		spec := orderSpec(shop)
		spec.Steps[2].MaxItems = 4
		agg, err := NewAggregate(spec)
		if err != nil {
			t.Fatal(err)
		}
		out, _, err := call(t, agg, "kb")
		if err != nil {
			t.Fatal(err)
		}
		if got := out.GetFields()[failedStepsKey].GetListValue().GetValues(); len(got) != 1 || got[0].GetStringValue() != "suggestions" {
			t.Errorf("failed steps %v, want [suggestions] (5 items over a bound of 4)", got)
		}
	})
}

// fakeStream is a Stream holding the client's messages and collecting what
// the handler sends.
type fakeStream struct {
	in     [][]byte
	header metadata.MD
	sent   [][]byte
}

func (s *fakeStream) Recv() ([]byte, error) {
	if len(s.in) == 0 {
		return nil, io.EOF
	}
	m := s.in[0]
	s.in = s.in[1:]
	return m, nil
}

func (s *fakeStream) SetHeader(md metadata.MD) error {
	s.header = md
	return nil
}

func (s *fakeStream) Send(msg []byte) error {
	s.sent = append(s.sent, msg)
	return nil
}

// TestAggregateStream serves the aggregate to a stream ingress (WebSocket):
// it reads one message, answers with one, and refuses a missing or
// undecodable message.
func TestAggregateStream(t *testing.T) {
	shop := newFakeShop()
	shop.handlers["Charge"] = shop.handlers["Release"]
	shop.handlers["ListRelated"] = func(context.Context, []byte) (proto.Message, error) {
		return nil, status.Error(codes.Unavailable, "down")
	}
	agg, err := NewAggregate(orderSpec(shop))
	if err != nil {
		t.Fatal(err)
	}
	in, _ := proto.Marshal(&orderv1.CreateOrderRequest{OrderId: "o-1", ProductId: "kb", Quantity: 1})
	s := &fakeStream{in: [][]byte{in, in}}
	c := &Call{Stream: s}
	if err := agg.Handle(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	if len(s.sent) != 1 || len(s.in) != 1 || c.Reply != nil {
		t.Fatalf("sent %d messages and left %d unread (reply %v), want 1 sent, 1 unread and no Reply", len(s.sent), len(s.in), c.Reply)
	}
	out := &structpb.Struct{}
	if err := proto.Unmarshal(s.sent[0], out); err != nil {
		t.Fatalf("answer is not a Struct: %v", err)
	}
	if got := out.GetFields()["reservationId"].GetStringValue(); got != "r-kb" {
		t.Errorf("reservationId %q, want r-kb", got)
	}
	if got := s.header.Get(PartialHeader); len(got) != 1 || got[0] != "related,suggestions" {
		t.Errorf("header %v, want %s: related,suggestions", s.header, PartialHeader)
	}

	total := func() (n int) {
		for name := range shop.calls {
			n += shop.count(shop.calls, name)
		}
		return n
	}
	for _, tc := range []struct {
		name string
		in   [][]byte
		want string
	}{
		{"no message", nil, "the client sent no request message"},
		{"undecodable message", [][]byte{{0xff}}, "the request is not a valid example.order.v1.CreateOrderRequest"},
	} {
		calls := total()
		s := &fakeStream{in: tc.in}
		err := agg.Handle(context.Background(), &Call{Stream: s})
		if st := status.Convert(err); st.Code() != codes.InvalidArgument || !strings.Contains(st.Message(), tc.want) {
			t.Errorf("%s: error %v, want INVALID_ARGUMENT: %s", tc.name, err, tc.want)
		}
		if len(s.sent) != 0 || total() != calls {
			t.Errorf("%s: %d messages sent, %d upstream calls made; want none", tc.name, len(s.sent), total()-calls)
		}
	}
}

func TestNewAggregateErrors(t *testing.T) {
	shop := newFakeShop()
	for _, tc := range []struct {
		name   string
		modify func(*AggregateSpec)
		want   string
	}{
		{"cycle", func(s *AggregateSpec) { s.Steps[0].After = []string{"charge"} }, "cycle: product → charge → product"},
		{"unknown step", func(s *AggregateSpec) { s.Steps[0].After = []string{"nothing"} }, `unknown step "nothing"`},
		{"unknown source field", func(s *AggregateSpec) { s.Steps[0].Fields["id"] = "input.sku" }, `has no field "sku"`},
		{"unknown target field", func(s *AggregateSpec) { s.Steps[0].Fields["sku"] = "input.product_id" }, `request field "sku"`},
		{"type mismatch", func(s *AggregateSpec) { s.Steps[3].Fields["quantity"] = "product.price_cents" }, `is int32 but source "product.price_cents" is int64`},
		{"list into scalar", func(s *AggregateSpec) { s.Steps[0].Fields["id"] = "related.product_ids" }, "is string but source"},
		{"item outside fan-out", func(s *AggregateSpec) { s.Steps[0].Fields["id"] = "item" }, "only defined in a step with for_each"},
		{"for_each over a scalar", func(s *AggregateSpec) { s.Steps[2].ForEach = "input.product_id" }, "not a repeated field"},
		{"key collision", func(s *AggregateSpec) { s.Merge = []string{"charge", "product"}; s.Respond["id"] = "product.id" }, `answer key "id"`},
		{"reserved key", func(s *AggregateSpec) { s.Respond["partial"] = "product.id" }, `answer key "partial"`},
		{"required after optional", func(s *AggregateSpec) { s.Steps[3].After = []string{"related"} }, `required step "reserve" depends on optional step "related"`},
		{"compensation reads later step", func(s *AggregateSpec) { s.Steps[4].Fields["reservation_id"] = "charge.charge_id" }, "need not have run"},
		{"claim into a message", func(s *AggregateSpec) { s.Steps[3].Fields["*"] = "claims.order" }, "a claim can only set"},
		{"claim in the answer", func(s *AggregateSpec) { s.Respond["who"] = "identity.subject" }, "can only set request fields"},
		{"message type mismatch", func(s *AggregateSpec) {
			s.Steps[0].Request = libraryv1.File_example_library_v1_library_proto.Messages().ByName("CreateBookRequest")
			s.Steps[0].Fields = map[string]string{"book": "input"}
		}, `request field "book" is message example.library.v1.Book but source "input" is message example.order.v1.CreateOrderRequest`},
		{"http path field unknown", func(s *AggregateSpec) { s.Steps[5].JSON, s.Steps[5].Target = true, "POST /v1/{order}" }, `has no field "order"`},
		{"http GET with a message field", func(s *AggregateSpec) {
			s.Steps[0].JSON, s.Steps[0].Target = true, "GET /x"
			s.Steps[0].Request = libraryv1.File_example_library_v1_library_proto.Messages().ByName("CreateBookRequest")
			s.Steps[0].Fields = nil
		}, "field book is not a scalar for the query"},
		{"compensation referenced", func(s *AggregateSpec) { s.Respond["r"] = "release" }, "runs only as the compensation"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spec := orderSpec(shop)
			tc.modify(&spec)
			_, err := NewAggregate(spec)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// BenchmarkAggregateHandle is the aggregation engine's own cost for a
// composed call of three parallel steps against upstreams that answer at
// once: decoding the input, building three requests, three responses, and
// the JSON answer.
func BenchmarkAggregateHandle(b *testing.B) {
	shop := newFakeShop()
	spec := AggregateSpec{
		Input: msg("CreateOrderRequest"),
		Steps: []StepSpec{
			shop.step("product", "GetProduct", "GetProductRequest", "Product", map[string]string{"id": "input.product_id"}),
			shop.step("related", "ListRelated", "ListRelatedRequest", "ListRelatedResponse", map[string]string{"product_id": "input.product_id"}),
			shop.step("reserve", "Reserve", "ReserveRequest", "Reservation", map[string]string{"product_id": "input.product_id", "quantity": "input.quantity"}),
		},
	}
	agg, err := NewAggregate(spec)
	if err != nil {
		b.Fatal(err)
	}
	in, _ := proto.Marshal(&orderv1.CreateOrderRequest{ProductId: "kb-1", Quantity: 2})
	b.ReportAllocs()
	for b.Loop() {
		c := &Call{Decode: func() ([]byte, error) { return in, nil }}
		if err := agg.Handle(context.Background(), c); err != nil {
			b.Fatal(err)
		}
	}
}
