package test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	ws "github.com/coder/websocket"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/rosettagw/rosetta/examples/order"
	orderv1 "github.com/rosettagw/rosetta/proto/example/order/v1"
)

// startShop serves the order example's services in the test process, with
// delay applied and gate (when not nil) holding calls, and returns them with
// the example's configuration (examples/order/rosetta.yaml) pointing at them.
func startShop(t testing.TB, delay map[string]time.Duration, gate ...func(context.Context, string, proto.Message) error) (*order.Shop, string) {
	t.Helper()
	shop := order.New()
	shop.Delay = delay
	if len(gate) > 0 {
		shop.Gate = gate[0]
	}
	gl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	shop.RegisterGRPC(srv)
	go srv.Serve(gl)
	t.Cleanup(srv.Stop)
	hl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	pay := &http.Server{Handler: shop.PaymentHandler(), ReadHeaderTimeout: 10 * time.Second}
	go pay.Serve(hl)
	t.Cleanup(func() { pay.Close() })
	cfg := edit(t, string(order.Config),
		"../../proto/order.binpb", filepath.Join(repoRoot, "proto", "order.binpb"),
		"127.0.0.1:9091", gl.Addr().String(),
		"http://127.0.0.1:9300", "http://"+hl.Addr().String())
	return shop, cfg
}

// edit replaces each old string of s (given as old, new pairs) once; an old
// string that is not there fails the test.
func edit(t testing.TB, s string, pairs ...string) string {
	t.Helper()
	for i := 0; i < len(pairs); i += 2 {
		if !strings.Contains(s, pairs[i]) {
			t.Fatalf("configuration has no %q to replace", pairs[i])
		}
		s = strings.Replace(s, pairs[i], pairs[i+1], 1)
	}
	return s
}

// placeOrder posts an order to the composed route.
func placeOrder(t testing.TB, r *rosetta, body string) *response {
	t.Helper()
	return do(t, r.base, request{method: http.MethodPost, path: "/api/order/create", body: body})
}

// field walks a decoded JSON document by object keys.
func field(v any, keys ...string) any {
	for _, k := range keys {
		m, _ := v.(map[string]any)
		v = m[k]
	}
	return v
}

// wantNotCalledOrCanceled asserts that every call of method the shop
// received was cancelled by its caller. Whether the call was made at all is
// not promised: when the step's context ends before its call leaves the
// gateway, the call is never made. It waits for the calls the shop is
// serving to end (a call that is not cancelled holds far longer than the
// wait, failing the test).
func wantNotCalledOrCanceled(t *testing.T, shop *order.Shop, method string) {
	t.Helper()
	waitFor(t, "the calls of "+method+" in flight to end", func() bool { return shop.InFlight(method) == 0 })
	for _, c := range shop.CallsOf(method) {
		if !c.Canceled {
			t.Errorf("%s was called and answered (%v to %v) instead of being cancelled", method, c.Start, c.End)
		}
	}
}

// rendezvous returns a shop gate that holds the first call of each of the
// methods whose request is accepted by match until every one of them has
// arrived (or its caller gives up): calls that the gateway makes in
// parallel pass it, calls it makes one after the other never do.
func rendezvous(match map[string]func(proto.Message) bool) func(context.Context, string, proto.Message) error {
	var mu sync.Mutex
	arrived := map[string]bool{}
	all := make(chan struct{})
	return func(ctx context.Context, method string, req proto.Message) error {
		m, ok := match[method]
		if !ok || !m(req) {
			return nil
		}
		mu.Lock()
		if !arrived[method] {
			arrived[method] = true
			if len(arrived) == len(match) {
				close(all)
			}
		}
		mu.Unlock()
		select {
		case <-all:
			return nil
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		}
	}
}

// maxOverlap is the largest number of calls whose [Start, End] intervals
// overlap at one instant.
func maxOverlap(calls []order.Call) int {
	best := 0
	for _, c := range calls {
		n := 0
		for _, d := range calls {
			if !d.Start.After(c.Start) && d.End.After(c.Start) {
				n++
			}
		}
		best = max(best, n)
	}
	return best
}

func TestAggregateOrder(t *testing.T) {
	t.Parallel()
	// GetProduct(kb-1) and ListRelated wait for each other at the shop, so
	// they pass only if the gateway runs them in parallel. Each call then
	// holds 250ms, so that fanned-out calls beyond the bound would overlap.
	isKB := func(m proto.Message) bool { return m.(*orderv1.GetProductRequest).GetId() == "kb-1" }
	shop, cfg := startShop(t, map[string]time.Duration{"GetProduct": 250 * time.Millisecond, "ListRelated": 250 * time.Millisecond},
		rendezvous(map[string]func(proto.Message) bool{"GetProduct": isKB, "ListRelated": func(proto.Message) bool { return true }}))
	// No route or step timeout races the calls of a busy machine (the
	// related step's 500ms held the rendezvous and the delay: it expired
	// under load); the client's requestTimeout bounds the call.
	r := startRosetta(t, edit(t, cfg, "    timeout: 3s\n", "    timeout: 1h\n", "          timeout: 500ms\n", ""))
	resp := placeOrder(t, r, `{"orderId":"o-1","productId":"kb-1","quantity":2,"card":"4242"}`)
	if resp.status != http.StatusOK {
		t.Fatalf("status %d, want 200\n%s", resp.status, resp.body)
	}
	got := decodeJSON(t, "answer", resp.body)
	for _, c := range []struct {
		keys []string
		want any
	}{
		{[]string{"product", "name"}, "Mechanical keyboard"},
		{[]string{"reservation", "productId"}, "kb-1"},
		{[]string{"charge", "amountCents"}, "17800"}, // 8900 × 2, as proto3 JSON writes an int64
		{[]string{"partial"}, nil},
	} {
		if v := field(got, c.keys...); v != c.want {
			t.Errorf("%s = %v, want %v\n%s", strings.Join(c.keys, "."), v, c.want, resp.body)
		}
	}
	if h := resp.header.Get("Rosetta-Partial"); h != "" {
		t.Errorf("complete answer has Rosetta-Partial: %s", h)
	}

	t.Run("fan-out keeps order", func(t *testing.T) {
		list, _ := field(got, "suggestions").([]any)
		var ids []string
		for _, p := range list {
			ids = append(ids, fmt.Sprint(field(p, "id")))
		}
		if strings.Join(ids, ",") != "ms-1,pad-1,cab-1" {
			t.Errorf("suggestions %v, want ms-1, pad-1, cab-1 (ListRelated's order)", ids)
		}
	})
	t.Run("fan-out respects its bound", func(t *testing.T) {
		var fanned []order.Call
		for _, c := range shop.CallsOf("GetProduct") {
			if c.Request.(*orderv1.GetProductRequest).GetId() != "kb-1" {
				fanned = append(fanned, c)
			}
		}
		if len(fanned) != 3 {
			t.Fatalf("%d fanned-out GetProduct calls, want 3", len(fanned))
		}
		if n := maxOverlap(fanned); n > 2 {
			t.Errorf("%d fanned-out calls overlapped, more than the bound 2", n)
		}
	})
	t.Run("independent steps overlap", func(t *testing.T) {
		var product order.Call
		for _, c := range shop.CallsOf("GetProduct") {
			if c.Request.(*orderv1.GetProductRequest).GetId() == "kb-1" {
				product = c
			}
		}
		related := shop.CallsOf("ListRelated")
		if len(related) != 1 || product.Start.IsZero() {
			t.Fatalf("calls: GetProduct(kb-1) %+v, ListRelated %+v", product, related)
		}
		if !product.Start.Before(related[0].End) || !related[0].Start.Before(product.End) {
			t.Errorf("product [%v, %v] and related [%v, %v] did not overlap", product.Start, product.End, related[0].Start, related[0].End)
		}
	})
	t.Run("dependent steps see their inputs", func(t *testing.T) {
		res := shop.CallsOf("Reserve")
		ch := shop.CallsOf("Charge")
		if len(res) != 1 || len(ch) != 1 {
			t.Fatalf("%d Reserve and %d Charge calls, want 1 each", len(res), len(ch))
		}
		want := &orderv1.ReserveRequest{OrderId: "o-1", ProductId: "kb-1", Quantity: 2}
		if !proto.Equal(res[0].Request, want) {
			t.Errorf("Reserve got %v, want %v", res[0].Request, want)
		}
		wantCharge := &orderv1.ChargeRequest{OrderId: "o-1", UnitPriceCents: 8900, Quantity: 2, Card: "4242"}
		if !proto.Equal(ch[0].Request, wantCharge) {
			t.Errorf("Charge got %v, want %v", ch[0].Request, wantCharge)
		}
		if ch[0].Start.Before(res[0].End) {
			t.Error("Charge started before Reserve ended, despite after: [reserve]")
		}
	})
}

func TestAggregateFailures(t *testing.T) {
	t.Parallel()

	t.Run("declined payment is compensated once", func(t *testing.T) {
		t.Parallel()
		shop, cfg := startShop(t, nil)
		r := startRosetta(t, cfg)
		resp := placeOrder(t, r, `{"orderId":"o-2","productId":"kb-1","quantity":1,"card":"declined"}`)
		st := decodeJSON(t, "error", resp.body)
		if resp.status != http.StatusBadRequest || field(st, "code") != json.Number("9") || !strings.Contains(fmt.Sprint(field(st, "message")), "step charge: card declined") {
			t.Errorf("status %d %s, want 400 with code 9 naming step charge", resp.status, resp.body)
		}
		if n := len(shop.CallsOf("Release")); n != 1 {
			t.Errorf("Release called %d times, want exactly 1", n)
		}
		if n := shop.Reservations(); n != 0 {
			t.Errorf("%d reservations still held after the compensation", n)
		}
	})

	t.Run("failed required step cancels the rest", func(t *testing.T) {
		t.Parallel()
		// ListRelated would hold for a minute, and no timeout (route, step
		// or upstream) ends it sooner: only the product step's failure can
		// end it before the client gives up (requestTimeout), so the answer
		// arriving at all shows that it did not wait for the slow step.
		shop, cfg := startShop(t, map[string]time.Duration{"ListRelated": time.Minute})
		r := startRosetta(t, edit(t, cfg, "    timeout: 3s\n", "    timeout: 1h\n", "          timeout: 500ms\n", "", "timeout: 5s}", "timeout: 1h}"))
		resp := placeOrder(t, r, `{"orderId":"o-3","productId":"nope","quantity":1}`)
		st := decodeJSON(t, "error", resp.body)
		if resp.status != http.StatusNotFound || field(st, "code") != json.Number("5") || !strings.Contains(fmt.Sprint(field(st, "message")), "step product") {
			t.Errorf("status %d %s, want 404 with code 5 naming step product", resp.status, resp.body)
		}
		// The slow step may not have been called at all (the product step
		// can fail before its call leaves the gateway); if it was, it was
		// cancelled.
		wantNotCalledOrCanceled(t, shop, "ListRelated")
		if n := len(shop.CallsOf("Reserve")); n != 0 {
			t.Errorf("Reserve called %d times after the product step failed", n)
		}
	})

	for _, tc := range []struct {
		name  string
		edits []string
	}{
		// The step's own timeout cuts it; the route's leaves the required
		// steps all the time the client gives them.
		{"slow optional step times out", []string{"    timeout: 3s\n", "    timeout: 1h\n"}},
		// The route's timeout is the only one left shorter than the slow
		// step; it leaves the required steps seconds to finish first.
		{"route timeout cuts a slow optional step", []string{"    timeout: 3s\n", "    timeout: 4s\n", "          timeout: 500ms\n", "", "timeout: 5s}", "timeout: 1h}"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			shop, cfg := startShop(t, map[string]time.Duration{"ListRelated": time.Minute})
			r := startRosetta(t, edit(t, cfg, tc.edits...))
			resp := placeOrder(t, r, `{"orderId":"o-4","productId":"ms-1","quantity":1,"card":"4242"}`)
			if resp.status != http.StatusOK {
				t.Fatalf("status %d, want 200 (a partial answer)\n%s", resp.status, resp.body)
			}
			got := decodeJSON(t, "answer", resp.body)
			if h := resp.header.Get("Rosetta-Partial"); h != "related,suggestions" {
				t.Errorf("Rosetta-Partial %q, want related,suggestions", h)
			}
			if field(got, "partial") != true || pretty(field(got, "failedSteps")) != pretty([]any{"related", "suggestions"}) {
				t.Errorf("answer not marked partial with failedSteps [related suggestions]:\n%s", resp.body)
			}
			if field(got, "suggestions") != nil || field(got, "charge", "chargeId") == nil {
				t.Errorf("want the required steps' keys and no suggestions:\n%s", resp.body)
			}
			wantNotCalledOrCanceled(t, shop, "ListRelated")
		})
	}
}

// TestAggregatePolicies puts a composed route behind an API key policy and
// feeds the caller's identity to a step.
func TestAggregatePolicies(t *testing.T) {
	t.Parallel()
	shop, cfg := startShop(t, nil)
	r := startRosetta(t, edit(t, cfg,
		"    timeout: 3s\n", "    timeout: 3s\n    policies: [keys]\n    websocket: /ws/api/order/create\n",
		"request: {order_id: input.order_id,", "request: {order_id: identity.subject,",
	)+`policies:
  keys: {api_key: {keys: [{sha256: 6ab9f1eb8f7d3388f4f9d586f66e99fd54080df2c446f0e58668b09c08a16dd0, identity: o-alice}]}}
`)
	body := `{"orderId":"o-1","productId":"kb-1","quantity":1,"card":"4242"}`
	if resp := placeOrder(t, r, body); resp.status != http.StatusUnauthorized {
		t.Errorf("status %d without a key, want 401\n%s", resp.status, resp.body)
	}
	if n := len(shop.Calls()); n != 0 {
		t.Errorf("a call the policy refused reached the upstreams %d times", n)
	}
	resp := do(t, r.base, request{method: http.MethodPost, path: "/api/order/create", body: body, header: map[string]string{"X-Api-Key": "k1"}})
	if resp.status != http.StatusOK {
		t.Fatalf("status %d with the key, want 200\n%s", resp.status, resp.body)
	}
	if res := shop.CallsOf("Reserve"); len(res) != 1 || res[0].Request.(*orderv1.ReserveRequest).GetOrderId() != "o-alice" {
		t.Errorf("Reserve calls %+v, want one with the caller's identity o-alice as order id", res)
	}

	// The WebSocket path runs the same policies.
	before := len(shop.Calls())
	if _, code := dialOrder(t, r, "/ws/api/order/create", "rosetta.json", nil); code != http.StatusUnauthorized {
		t.Errorf("WebSocket upgrade without a key: HTTP %d, want 401", code)
	}
	if n := len(shop.Calls()); n != before {
		t.Errorf("a WebSocket call the policy refused reached the upstreams %d times", n-before)
	}
	c, _ := dialOrder(t, r, "/ws/api/order/create", "rosetta.json", http.Header{"X-Api-Key": {"k1"}})
	c.send(body)
	result(t, c.recv())
	c.finish(codes.OK)
	if res := shop.CallsOf("Reserve"); len(res) != 2 || res[1].Request.(*orderv1.ReserveRequest).GetOrderId() != "o-alice" {
		t.Errorf("Reserve calls %+v, want a second one with the WebSocket caller's identity o-alice", res)
	}
}

// dialOrder opens a WebSocket on a composed route's path with subprotocol
// and header. A refused upgrade returns its HTTP status and no call.
func dialOrder(t *testing.T, r *rosetta, path, subprotocol string, header http.Header) (*wsCall, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	t.Cleanup(cancel)
	url := "ws" + strings.TrimPrefix(r.base, "http") + path
	conn, resp, err := ws.Dial(ctx, url, &ws.DialOptions{Subprotocols: []string{subprotocol}, HTTPHeader: header})
	if err != nil {
		if resp == nil {
			t.Fatalf("dial %s: %v", url, err)
		}
		return nil, resp.StatusCode
	}
	t.Cleanup(func() { conn.CloseNow() })
	return &wsCall{t: t, conn: conn, ctx: ctx}, resp.StatusCode
}

// TestAggregateWebSocket places orders over the composed route's WebSocket
// path: one message in, the answer and the final status out.
func TestAggregateWebSocket(t *testing.T) {
	t.Parallel()
	shop, cfg := startShop(t, nil)
	r := startRosetta(t, edit(t, cfg, "  - post: /api/order/create\n", "  - post: /api/order/create\n    websocket: /ws/api/order/create\n"))

	t.Run("order", func(t *testing.T) {
		c, _ := dialOrder(t, r, "/ws/api/order/create", "rosetta.json", nil)
		c.send(`{"orderId":"o-ws","productId":"kb-1","quantity":2,"card":"4242"}`)
		got := result(t, c.recv())
		if field(got, "charge", "amountCents") != "17800" || field(got, "product", "name") != "Mechanical keyboard" {
			t.Errorf("answer %s, want the keyboard charged 17800", pretty(got))
		}
		c.finish(codes.OK)
	})

	t.Run("binary", func(t *testing.T) {
		c, _ := dialOrder(t, r, "/ws/api/order/create", "rosetta.proto", nil)
		in, _ := proto.Marshal(&orderv1.CreateOrderRequest{OrderId: "o-bin", ProductId: "kb-1", Quantity: 1, Card: "4242"})
		if err := c.conn.Write(c.ctx, ws.MessageBinary, in); err != nil {
			t.Fatal(err)
		}
		typ, data, err := c.conn.Read(c.ctx)
		answer := &structpb.Struct{}
		if err != nil || typ != ws.MessageBinary || proto.Unmarshal(data, answer) != nil {
			t.Fatalf("read %v %v: want a binary google.protobuf.Struct", typ, err)
		}
		if got := answer.GetFields()["charge"].GetStructValue().GetFields()["amountCents"].GetStringValue(); got != "8900" {
			t.Errorf("answer %v, want a charge of 8900", answer)
		}
		c.finish(codes.OK)
	})

	t.Run("declined card", func(t *testing.T) {
		held := shop.Reservations()
		c, _ := dialOrder(t, r, "/ws/api/order/create", "rosetta.json", nil)
		c.send(`{"orderId":"o-ws-2","productId":"kb-1","quantity":1,"card":"declined"}`)
		st := c.finish(codes.FailedPrecondition) // close code 4009
		if msg, _ := st["message"].(string); !strings.Contains(msg, "step charge: card declined") {
			t.Errorf("status %v, want the message of step charge", st)
		}
		if n := len(shop.CallsOf("Release")); n != 1 {
			t.Errorf("Release called %d times, want exactly 1", n)
		}
		if n := shop.Reservations(); n != held {
			t.Errorf("%d reservations held after the compensation, want %d as before", n, held)
		}
	})

	t.Run("undecodable message", func(t *testing.T) {
		before := len(shop.Calls())
		c, _ := dialOrder(t, r, "/ws/api/order/create", "rosetta.json", nil)
		c.send(`{"quantity":"many"}`)
		c.finish(codes.InvalidArgument)
		if n := len(shop.Calls()); n != before {
			t.Errorf("an undecodable order reached the upstreams %d times", n-before)
		}
	})
}

// TestAggregateMQTT places orders over an MQTT uplink rule sharing the HTTP
// route's aggregate (a YAML anchor): the topic's order id and the payload
// make the input, the answer or the error comes back on the reply topic and
// a failure is dead-lettered. The rule's WebSocket path serves it too.
func TestAggregateMQTT(t *testing.T) {
	t.Parallel()
	shop, cfg := startShop(t, nil)
	broker := freePort(t)
	r := startRosettaListen(t, fmt.Sprintf("mqtt: %q", broker), anonymous+"\n"+edit(t, cfg, "    aggregate:\n", "    aggregate: &order\n")+`  - mqtt: orders/{order_id}/create
    websocket: /ws/orders/create
    timeout: 3s
    reply: orders/{order_id}/reply
    dead_letter: orders/{order_id}/dead-letter
    aggregate: *order
`)
	waitFor(t, "the embedded broker", func() bool {
		c, err := net.Dial("tcp", broker)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	replies := subscribe(t, broker, "mqttv5", "orders/+/reply")
	dead := subscribe(t, broker, "mqttv5", "orders/+/dead-letter")

	// The topic's order id wins over the payload's.
	out, code := publish(t, broker, "mqttv5", "-q", "1", "-t", "orders/o-mqtt/create", "-m", `{"orderId":"spoofed","productId":"kb-1","quantity":2,"card":"4242"}`)
	if code != 0 {
		t.Fatalf("mosquitto_pub: status %d\n%s", code, out)
	}
	got := decodeJSON(t, "reply", []byte(replies.next(t, 1)))
	if field(got, "charge", "amountCents") != "17800" || field(got, "reservation", "productId") != "kb-1" {
		t.Errorf("reply %s, want the keyboard reserved and charged 17800", pretty(got))
	}
	if res := shop.CallsOf("Reserve"); len(res) != 1 || res[0].Request.(*orderv1.ReserveRequest).GetOrderId() != "o-mqtt" {
		t.Errorf("Reserve calls %+v, want one for the topic's order o-mqtt", res)
	}

	held := shop.Reservations()
	publish(t, broker, "mqttv5", "-q", "1", "-t", "orders/o-mqtt-2/create", "-m", `{"productId":"kb-1","quantity":1,"card":"declined"}`)
	if st := statusOf(t, replies.next(t, 2)); st.Code != 9 || !strings.Contains(st.Message, "step charge: card declined") {
		t.Errorf("error reply %+v, want FAILED_PRECONDITION from step charge", st)
	}
	rec := decodeJSON(t, "dead letter", []byte(dead.next(t, 1)))
	if field(rec, "topic") != "orders/o-mqtt-2/create" || field(rec, "error", "code") != json.Number("9") || field(rec, "attempts") != json.Number("1") {
		t.Errorf("dead letter %s, want the declined order's topic, code 9 and one attempt", pretty(rec))
	}
	if n := len(shop.CallsOf("Release")); n != 1 {
		t.Errorf("Release called %d times, want exactly 1", n)
	}
	if n := shop.Reservations(); n != held {
		t.Errorf("%d reservations held after the compensation, want %d as before", n, held)
	}

	// The rule's WebSocket path.
	c, _ := dialOrder(t, r, "/ws/orders/create", "rosetta.json", nil)
	c.send(`{"orderId":"o-mqtt-ws","productId":"kb-1","quantity":1,"card":"4242"}`)
	if got := result(t, c.recv()); field(got, "charge", "amountCents") != "8900" {
		t.Errorf("WebSocket answer %s, want a charge of 8900", pretty(got))
	}
	c.finish(codes.OK)
}

func TestAggregateCheck(t *testing.T) {
	t.Parallel()
	_, cfg := startShop(t, nil)
	for _, tc := range []struct {
		name       string
		edits      []string
		wantStderr string
	}{
		{"cycle", []string{"request: {id: input.product_id}\n", "request: {id: input.product_id}\n          after: [charge]\n"},
			"steps form a cycle: product → charge → product"},
		{"unknown field", []string{"request: {id: input.product_id}", "request: {id: input.sku}"},
			`step "product": request field "id": source "input.sku": message example.order.v1.CreateOrderRequest has no field "sku"`},
		{"unknown step", []string{"after: [reserve]", "after: [reserv]"}, `after: unknown step "reserv"`},
		{"type mismatch", []string{"quantity: input.quantity}", "quantity: product.price_cents}"},
			`request field "quantity" is int32 but source "product.price_cents" is int64`},
		{"key collision", []string{"          product: product\n", "          name: reserve.product_id\n",
			"          suggestions: suggestions\n", "          suggestions: suggestions\n        merge: [product]\n"},
			`answer key "name" is produced by respond "name" and by merge "product"`},
		{"websocket outside the prefix", []string{"  - post: /api/order/create\n", "  - post: /api/order/create\n    websocket: /api/order/create\n"},
			`websocket "/api/order/create": want a literal path under the WebSocket prefix /ws/`},
		{"http and mqtt at once", []string{"  - post: /api/order/create\n", "  - post: /api/order/create\n    mqtt: orders/{order_id}/create\n"},
			"an aggregate route is served over HTTP (get, post, put, patch, delete) or over MQTT (mqtt), not both"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path := writeConfig(t, "listen: {http: 127.0.0.1:0}\n"+edit(t, cfg, tc.edits...))
			code, stdout, stderr := runRosetta(t, "check", "-config", path)
			if code != 1 || !strings.Contains(stderr, tc.wantStderr) || !strings.Contains(stderr, "routes[0]") {
				t.Errorf("exit %d, want 1 with routes[0] and %q\nstdout:\n%s\nstderr:\n%s", code, tc.wantStderr, stdout, stderr)
			}
		})
	}
	t.Run("good", func(t *testing.T) {
		t.Parallel()
		code, stdout, stderr := runRosetta(t, "check", "-config", writeConfig(t, "listen: {http: 127.0.0.1:0}\n"+cfg))
		if code != 0 {
			t.Errorf("exit %d, want 0\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
		}
	})
}

// TestAggregateDemo runs `rosetta demo` and places the orders it suggests.
// It does not run in parallel with other tests: the demo's embedded MQTT
// broker takes 127.0.0.1:1883 when that port is free, and a test's peer
// starting there at the same moment would fail one of them.
func TestAggregateDemo(t *testing.T) {
	addr := freePort(t)
	cmd := exec.Command(rosettaBin, "demo", "-listen", addr)
	p := &process{name: "rosetta demo", cmd: cmd, stdout: &syncBuffer{}, stderr: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.stdout, p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		_ = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		if code := p.stop(t); code != 0 {
			t.Errorf("rosetta demo exited with %d after SIGTERM, want 0\nstderr:\n%s", code, p.stderr)
		}
	})
	r := &rosetta{process: p, base: "http://" + addr}
	waitReady(t, r)
	// The suggestions are printed once it serves, not before it answers.
	waitFor(t, "the demo to suggest the order route", func() bool {
		return strings.Contains(p.stdout.String(), "/api/order/create")
	})
	resp := placeOrder(t, r, `{"orderId":"o-1","productId":"kb-1","quantity":2,"card":"4242"}`)
	if got := decodeJSON(t, "answer", resp.body); resp.status != http.StatusOK || field(got, "charge", "amountCents") != "17800" {
		t.Errorf("status %d, want 200 with a charge of 17800\n%s", resp.status, resp.body)
	}
	resp = placeOrder(t, r, `{"orderId":"o-2","productId":"kb-1","quantity":1,"card":"declined"}`)
	if st := decodeJSON(t, "error", resp.body); resp.status != http.StatusBadRequest || field(st, "code") != json.Number("9") {
		t.Errorf("status %d, want 400 with code 9 for a declined card\n%s", resp.status, resp.body)
	}
}
