package mqtt

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/rosettagw/rosetta/internal/testwait"
	iotv1 "github.com/rosettagw/rosetta/proto/example/iot/v1"
	"github.com/rosettagw/rosetta/router"
	"github.com/rosettagw/rosetta/security/owner"
)

// fakeBroker records what is published and delivers it to the
// subscriptions whose filter matches.
type fakeBroker struct {
	mu        sync.Mutex
	published []*Message
	subs      map[int]fakeSub
	next      int
	// answer, when set, is called (in its own goroutine) for each message
	// published.
	answer func(*Message)
}

type fakeSub struct {
	filter string
	fn     func(*Message)
}

func (b *fakeBroker) Publish(_ context.Context, m *Message) error {
	b.mu.Lock()
	b.published = append(b.published, m)
	var fns []func(*Message)
	for _, s := range b.subs {
		if MatchFilter(s.filter, m.Topic) {
			fns = append(fns, s.fn)
		}
	}
	answer := b.answer
	b.mu.Unlock()
	for _, fn := range fns {
		fn(m)
	}
	if answer != nil {
		go answer(m)
	}
	return nil
}

func (b *fakeBroker) Subscribe(_ context.Context, filter string, fn func(*Message)) (func(), error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.subs == nil {
		b.subs = map[int]fakeSub{}
	}
	b.next++
	id := b.next
	b.subs[id] = fakeSub{filter, fn}
	return func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		delete(b.subs, id)
	}, nil
}

func (b *fakeBroker) Close() error { return nil }

// on returns the messages published on topic.
func (b *fakeBroker) on(topic string) []*Message {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []*Message
	for _, m := range b.published {
		if m.Topic == topic {
			out = append(out, m)
		}
	}
	return out
}

// upstream is an Invoker that fails with the errors given, then answers;
// it records the calls' metadata.
type upstream struct {
	mu    sync.Mutex
	errs  []error
	calls []metadata.MD
}

func (u *upstream) Invoke(_ context.Context, _ string, req []byte, md metadata.MD) (*router.Reply, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.calls = append(u.calls, md)
	if len(u.errs) > 0 {
		err := u.errs[0]
		u.errs = u.errs[1:]
		return nil, err
	}
	out, _ := proto.Marshal(&iotv1.RecordResponse{DeviceId: "d1", Count: int64(len(u.calls))})
	return &router.Reply{Message: out}, nil
}

// newTestBridge serves one rule onto up, with a chain of the owner step,
// a step that records each call, and any policies given.
func newTestBridge(t *testing.T, up *upstream, cfg RuleConfig, policies ...router.Middleware) (*Bridge, *fakeBroker, *[]*router.Call) {
	t.Helper()
	cfg.Retry = Retry{Attempts: 3, Backoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond}
	r := mustRule(t, cfg)
	var seen []*router.Call
	record := func(next router.Handler) router.Handler {
		return router.HandlerFunc(func(ctx context.Context, c *router.Call) error {
			seen = append(seen, c)
			return next.Handle(ctx, c)
		})
	}
	chain := append([]router.Middleware{owner.Step, record}, policies...)
	r.Route = &router.Route{Target: "/example.iot.v1.DeviceService/Record", Invoker: up, Handler: router.Chain(router.Dispatch, chain...)}
	br := &fakeBroker{}
	rules := &Rules{List: []*Rule{r}}
	return NewBridge(func() (*Rules, func()) { return rules, func() {} }, br, BridgeOptions{DeadLetter: "dead/no-rule"}), br, &seen
}

func TestBridgeUplink(t *testing.T) {
	unavailable := status.Error(codes.Unavailable, "down")
	cfg := RuleConfig{Filter: "devices/{device_id}/telemetry", Reply: "devices/{device_id}/reply", DeadLetter: "dead/{device_id}", Owner: "device_id"}
	sender := &Sender{ClientID: "c1", Username: "d1", Password: []byte("secret")}
	msg := func(qos byte) *Message {
		return &Message{Topic: "devices/d1/telemetry", QoS: qos, Payload: []byte(`{"id":"m"}`), Sender: sender,
			UserProperties: []UserProperty{{"Trace", "t1"}}}
	}

	t.Run("QoS 1 retried until accepted", func(t *testing.T) {
		up := &upstream{errs: []error{unavailable, unavailable}}
		b, br, seen := newTestBridge(t, up, cfg)
		if err := b.Uplink(context.Background(), msg(1)); err != nil {
			t.Fatal(err)
		}
		if len(up.calls) != 3 || len(*seen) != 1 {
			t.Fatalf("%d upstream attempts and %d runs of the chain, want 3 and 1 (retries wrap the dispatch only)", len(up.calls), len(*seen))
		}
		c := (*seen)[0]
		if c.Attempts != 3 || c.Protocol != router.MQTT || c.Credentials.Username != "d1" || string(c.Credentials.Password) != "secret" || c.Incoming.Get("trace")[0] != "t1" || c.Metadata.Get("x-mqtt-topic")[0] != "devices/d1/telemetry" {
			t.Errorf("call %+v", c)
		}
		replies := br.on("devices/d1/reply")
		if len(replies) != 1 || !strings.Contains(string(replies[0].Payload), `"count":"3"`) {
			t.Errorf("replies %v", replies)
		}
	})
	t.Run("QoS 1 dead-lettered after the attempts", func(t *testing.T) {
		up := &upstream{errs: []error{unavailable, unavailable, unavailable}}
		b, br, _ := newTestBridge(t, up, cfg)
		err := b.Uplink(context.Background(), msg(1))
		if status.Code(err) != codes.Unavailable || reasonCode(err).Code != packets.ErrUnspecifiedError.Code {
			t.Errorf("error %v", err)
		}
		dead := br.on("dead/d1")
		if len(dead) != 1 {
			t.Fatalf("dead letters %v", dead)
		}
		var rec deadLetterRecord
		if err := json.Unmarshal(dead[0].Payload, &rec); err != nil || rec.Attempts != 3 || string(rec.Payload) != `{"id":"m"}` || !strings.Contains(string(rec.Error), `"code":14`) {
			t.Errorf("dead letter %s (%v)", dead[0].Payload, err)
		}
	})
	t.Run("QoS 0 tried once", func(t *testing.T) {
		up := &upstream{errs: []error{unavailable}}
		b, _, _ := newTestBridge(t, up, cfg)
		if err := b.Uplink(context.Background(), msg(0)); err == nil || len(up.calls) != 1 {
			t.Errorf("error %v after %d calls", err, len(up.calls))
		}
	})
	t.Run("not transient", func(t *testing.T) {
		up := &upstream{errs: []error{status.Error(codes.InvalidArgument, "no")}}
		b, br, _ := newTestBridge(t, up, cfg)
		err := b.Uplink(context.Background(), msg(1))
		if reasonCode(err).Code != packets.ErrPayloadFormatInvalid.Code || len(up.calls) != 1 {
			t.Errorf("error %v after %d calls", err, len(up.calls))
		}
		if r := br.on("devices/d1/reply"); len(r) != 1 || !strings.Contains(string(r[0].Payload), `"code":3`) {
			t.Errorf("error reply %v", r)
		}
	})
	t.Run("response topic and correlation data", func(t *testing.T) {
		b, br, _ := newTestBridge(t, &upstream{}, cfg)
		m := msg(1)
		m.ResponseTopic, m.CorrelationData = "resp/1", []byte("c1")
		if err := b.Uplink(context.Background(), m); err != nil {
			t.Fatal(err)
		}
		r := br.on("resp/1")
		if len(r) != 1 || string(r[0].CorrelationData) != "c1" || len(br.on("devices/d1/reply")) != 0 {
			t.Errorf("published %v", br.published)
		}
	})
	t.Run("other device", func(t *testing.T) {
		up := &upstream{}
		b, _, _ := newTestBridge(t, up, cfg)
		m := msg(1)
		m.Sender = &Sender{Username: "d2"}
		if err := b.Uplink(context.Background(), m); reasonCode(err).Code != packets.ErrNotAuthorized.Code || len(up.calls) != 0 {
			t.Errorf("error %v after %d calls", err, len(up.calls))
		}
	})
	t.Run("no rule", func(t *testing.T) {
		b, br, _ := newTestBridge(t, &upstream{}, cfg)
		err := b.Uplink(context.Background(), &Message{Topic: "x/y", QoS: 1})
		if reasonCode(err).Code != packets.ErrNotAuthorized.Code || len(br.on("dead/no-rule")) != 1 {
			t.Errorf("error %v, published %v", err, br.published)
		}
	})
	t.Run("policy refusal is not retried", func(t *testing.T) {
		up := &upstream{}
		limit := func(router.Handler) router.Handler {
			return router.HandlerFunc(func(context.Context, *router.Call) error {
				return status.Error(codes.ResourceExhausted, "rate limited")
			})
		}
		b, _, seen := newTestBridge(t, up, cfg, limit)
		if err := b.Uplink(context.Background(), msg(1)); reasonCode(err).Code != packets.ErrQuotaExceeded.Code {
			t.Errorf("error %v", err)
		}
		if len(*seen) != 1 || len(up.calls) != 0 {
			t.Errorf("the chain ran %d times and the upstream saw %d calls, want 1 and 0", len(*seen), len(up.calls))
		}
	})
	t.Run("upstream's RESOURCE_EXHAUSTED is retried", func(t *testing.T) {
		up := &upstream{errs: []error{status.Error(codes.ResourceExhausted, "busy")}}
		b, _, _ := newTestBridge(t, up, cfg)
		if err := b.Uplink(context.Background(), msg(1)); err != nil || len(up.calls) != 2 {
			t.Errorf("error %v after %d attempts, want success after 2", err, len(up.calls))
		}
	})
}

func TestPublisher(t *testing.T) {
	br := &fakeBroker{}
	p, err := NewPublisher(br, PublishConfig{Topic: "devices/{device_id}/commands", QoS: 1, Wait: 0, MaxPending: 1})
	if err != nil {
		t.Fatal(err)
	}
	reply, err := p.Invoke(context.Background(), "devices/d%201/commands?retain=true&qos=0", []byte(`{"a":1}`), nil)
	if err != nil || reply.HTTPStatus != http.StatusAccepted {
		t.Fatalf("%v %v", reply, err)
	}
	if m := br.on("devices/d 1/commands"); len(m) != 1 || !m[0].Retain || m[0].QoS != 0 || m[0].ContentType != "application/json" {
		t.Errorf("published %+v", br.published)
	}
	for _, target := range []string{"devices/a+b/commands", "devices/a%2Fb/commands", "devices//commands", "devices/d1/commands?qos=2", "devices/d1/commands?wait=2h", "devices/d1/commands?x=1"} {
		if _, err := p.Invoke(context.Background(), target, nil, nil); status.Code(err) != codes.InvalidArgument {
			t.Errorf("%s: %v, want INVALID_ARGUMENT", target, err)
		}
	}

	// Request and response: the device answers on the response topic with
	// the correlation data; a retained message and another call's answer
	// are ignored.
	br.answer = func(m *Message) {
		if m.ResponseTopic == "" {
			return
		}
		br.Publish(context.Background(), &Message{Topic: m.ResponseTopic, Payload: []byte("old"), Retain: true})
		br.Publish(context.Background(), &Message{Topic: m.ResponseTopic, Payload: []byte("other"), CorrelationData: []byte("x")})
		br.Publish(context.Background(), &Message{Topic: m.ResponseTopic, Payload: []byte(`{"ok":1}`), CorrelationData: m.CorrelationData})
	}
	reply, err = p.Invoke(context.Background(), "devices/d1/commands?wait=5s", []byte(`{}`), nil)
	if err != nil || string(reply.Message) != `{"ok":1}` || reply.ContentType != "application/json" {
		t.Errorf("reply %v %v", reply, err)
	}
	if p.ReplyFilter() != "rosetta/replies/+" {
		t.Errorf("reply filter %s", p.ReplyFilter())
	}

	// Nobody answers: DEADLINE_EXCEEDED after the wait.
	br.answer = nil
	if _, err := p.Invoke(context.Background(), "devices/d1/commands?wait=50ms", nil, nil); status.Code(err) != codes.DeadlineExceeded {
		t.Errorf("unanswered call: %v, want DEADLINE_EXCEEDED", err)
	}

	// While a call waits (for longer than the test takes: its caller ends
	// it), the pending bound (1) refuses another.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	waiting := make(chan error, 1)
	go func() {
		_, err := p.Invoke(ctx, "devices/d1/commands?wait=1m", nil, nil)
		waiting <- err
	}()
	testwait.For(t, "the first call to wait", func() bool { return len(p.pending) > 0 })
	if _, busy := p.Invoke(context.Background(), "devices/d1/commands?wait=1s", nil, nil); status.Code(busy) != codes.ResourceExhausted {
		t.Errorf("second waiting call: %v, want RESOURCE_EXHAUSTED", busy)
	}
	cancel()
	if err := <-waiting; !errors.Is(err, context.Canceled) {
		t.Errorf("waiting call whose caller gave up: %v, want context.Canceled", err)
	}
	// Its place is free again.
	if _, err := p.Invoke(context.Background(), "devices/d1/commands?wait=1ms", nil, nil); status.Code(err) != codes.DeadlineExceeded {
		t.Errorf("call after the waiting one ended: %v, want DEADLINE_EXCEEDED", err)
	}
}

func TestStateReader(t *testing.T) {
	s := NewState(2, nil)
	r, err := NewStateReader(s, "devices/{device_id}/telemetry", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.Filter() != "devices/+/telemetry" {
		t.Errorf("filter %s", r.Filter())
	}
	if _, err := r.Invoke(context.Background(), "devices/d1/telemetry", nil, nil); status.Code(err) != codes.NotFound {
		t.Errorf("no state yet: %v", err)
	}
	s.Observe(&Message{Topic: "devices/d1/telemetry", Payload: []byte("1")})
	s.Observe(&Message{Topic: "devices/d1/telemetry", Payload: []byte("2"), Retain: true})
	s.Observe(&Message{Topic: "devices/d2/telemetry", Payload: []byte("x")})
	s.Observe(&Message{Topic: "devices/d3/telemetry", Payload: []byte("y")}) // beyond the bound of 2 topics
	reply, err := r.Invoke(context.Background(), "devices/d1/telemetry", nil, nil)
	if err != nil || string(reply.Message) != "2" || reply.Header.Get("mqtt-retain")[0] != "true" {
		t.Errorf("state %v %v", reply, err)
	}
	if _, err := r.Invoke(context.Background(), "devices/d3/telemetry", nil, nil); status.Code(err) != codes.NotFound {
		t.Errorf("a topic beyond the bound: %v", err)
	}
	if _, err := r.Invoke(context.Background(), "devices/d1/telemetry?x", nil, nil); status.Code(err) != codes.InvalidArgument {
		t.Errorf("query: %v", err)
	}
}

func TestWatch(t *testing.T) {
	md, err := WatchMethod([]string{"device_id"})
	if err != nil {
		t.Fatal(err)
	}
	if !md.IsStreamingServer() || md.Input().Fields().ByName("device_id") == nil || md.Output().Fields().ByName("json") == nil {
		t.Fatalf("method %v", md)
	}
	br := &fakeBroker{}
	w := NewWatcher(br, "devices/{device_id}/#", md)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	open := func(id string) *watch {
		s, _ := w.NewStream(ctx, "", md, nil)
		req := dynamicpb.NewMessage(md.Input())
		req.Set(md.Input().Fields().ByName("device_id"), protoreflect.ValueOfString(id))
		wire, _ := proto.Marshal(req)
		s.Send(wire)
		return s.(*watch)
	}
	if _, err := open("a+b").Recv(); status.Code(err) != codes.InvalidArgument {
		t.Errorf("bad level: %v", err)
	}
	s := open("d1")
	br.Publish(ctx, &Message{Topic: "devices/d1/x", Payload: []byte(`{"a":1}`), QoS: 1})
	br.Publish(ctx, &Message{Topic: "devices/d2/x", Payload: []byte(`{}`)})
	wire, err := s.Recv()
	out := dynamicpb.NewMessage(md.Output())
	if err != nil || proto.Unmarshal(wire, out) != nil || out.Get(md.Output().Fields().ByName("topic")).String() != "devices/d1/x" {
		t.Fatalf("first message %v %v", out, err)
	}
	// A client that does not read: beyond WatchBuffer the watch ends.
	for range WatchBuffer + 1 {
		br.Publish(ctx, &Message{Topic: "devices/d1/x"})
	}
	for i := 0; ; i++ {
		if _, err := s.Recv(); err != nil {
			if status.Code(err) != codes.ResourceExhausted {
				t.Errorf("overflow: %v", err)
			}
			break
		}
		if i > WatchBuffer {
			t.Fatal("the overflow was never reported")
		}
	}
}

// TestPublisherPassesTheTrace checks that a downlink publish carries the
// call's trace context (set in the metadata by the upstream attempt) as
// user properties, and nothing else of the metadata.
func TestPublisherPassesTheTrace(t *testing.T) {
	br := &fakeBroker{}
	p, err := NewPublisher(br, PublishConfig{Topic: "devices/{device_id}/commands", QoS: 1})
	if err != nil {
		t.Fatal(err)
	}
	const tp = "00-0102030405060708090a0b0c0d0e0f10-0102030405060708-01"
	md := metadata.Pairs("traceparent", tp, "baggage", "tenant=t1", "authorization", "Bearer secret")
	if _, err := p.Invoke(context.Background(), "devices/d1/commands", []byte(`{}`), md); err != nil {
		t.Fatal(err)
	}
	m := br.on("devices/d1/commands")
	if len(m) != 1 {
		t.Fatalf("published %+v", br.published)
	}
	want := []UserProperty{{"traceparent", tp}, {"baggage", "tenant=t1"}}
	if !reflect.DeepEqual(m[0].UserProperties, want) {
		t.Errorf("user properties %v, want %v", m[0].UserProperties, want)
	}
}

// answering is an Invoker that answers every call with the same reply.
type answering struct{ reply *router.Reply }

func (a answering) Invoke(context.Context, string, []byte, metadata.MD) (*router.Reply, error) {
	return a.reply, nil
}

// BenchmarkBridgeUplink measures the bridge's own work on one QoS 1
// message of the bench's shape (bench/run.sh mqtt): rule lookup, the call,
// the owner step and the JSON decoding, with an upstream that answers at
// once and no reply topic.
func BenchmarkBridgeUplink(b *testing.B) {
	r, err := NewRule(RuleConfig{Filter: "bench/{device_id}/telemetry", Method: method("Record")})
	if err != nil {
		b.Fatal(err)
	}
	r.Route = &router.Route{Target: "/example.iot.v1.DeviceService/Record", Invoker: answering{&router.Reply{}},
		Handler: router.Chain(router.Dispatch, owner.Step)}
	rules := &Rules{List: []*Rule{r}}
	br := NewBridge(func() (*Rules, func()) { return rules, func() {} }, &fakeBroker{}, BridgeOptions{})
	m := &Message{Topic: "bench/r1-d7/telemetry", QoS: 1, Payload: []byte(`{"id":"1234","reading":{"temperature":20.5,"humidity":40}}`),
		Sender: &Sender{ClientID: "bench-r1-d7"}}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if err := br.Uplink(ctx, m); err != nil {
			b.Fatal(err)
		}
	}
}
