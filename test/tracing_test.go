package test

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	ws "github.com/coder/websocket"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	libraryv1 "github.com/rosettagw/rosetta/proto/example/library/v1"
)

// otlpReceiver is an OpenTelemetry collector's trace service, served over
// gRPC on a loopback port: it keeps every span the gateway exports.
type otlpReceiver struct {
	coltracepb.UnimplementedTraceServiceServer
	addr string

	mu    sync.Mutex
	spans []*tracepb.Span
}

func startOTLPReceiver(t testing.TB) *otlpReceiver {
	t.Helper()
	r := &otlpReceiver{}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r.addr = ln.Addr().String()
	srv := grpc.NewServer()
	coltracepb.RegisterTraceServiceServer(srv, r)
	go srv.Serve(ln)
	t.Cleanup(srv.Stop)
	return r
}

// startOTLPReceiverHTTP is startOTLPReceiver for OTLP over HTTP
// (protobuf bodies POSTed to /v1/traces).
func startOTLPReceiverHTTP(t testing.TB) *otlpReceiver {
	t.Helper()
	r := &otlpReceiver{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, err := io.ReadAll(req.Body)
		var export coltracepb.ExportTraceServiceRequest
		if err == nil {
			err = proto.Unmarshal(body, &export)
		}
		if req.URL.Path != "/v1/traces" || err != nil {
			http.Error(w, fmt.Sprint(req.URL.Path, err), http.StatusBadRequest)
			return
		}
		resp, _ := r.Export(req.Context(), &export)
		b, _ := proto.Marshal(resp)
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.Write(b)
	}))
	t.Cleanup(srv.Close)
	r.addr = strings.TrimPrefix(srv.URL, "http://")
	return r
}

func (r *otlpReceiver) Export(_ context.Context, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rs := range req.GetResourceSpans() {
		for _, ss := range rs.GetScopeSpans() {
			r.spans = append(r.spans, ss.GetSpans()...)
		}
	}
	return &coltracepb.ExportTraceServiceResponse{}, nil
}

// trace waits until the spans of trace id include one of each kind in
// kinds, and returns them all.
func (r *otlpReceiver) trace(t testing.TB, id []byte, kinds ...tracepb.Span_SpanKind) []*tracepb.Span {
	t.Helper()
	var out []*tracepb.Span
	waitFor(t, fmt.Sprintf("spans %v of trace %x", kinds, id), func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		out = out[:0]
		for _, s := range r.spans {
			if bytes.Equal(s.GetTraceId(), id) {
				out = append(out, s)
			}
		}
		for _, k := range kinds {
			if spanOf(out, k) == nil {
				return false
			}
		}
		return true
	})
	return out
}

// spanOf returns the first span of kind k.
func spanOf(spans []*tracepb.Span, k tracepb.Span_SpanKind) *tracepb.Span {
	for _, s := range spans {
		if s.GetKind() == k {
			return s
		}
	}
	return nil
}

func attr(s *tracepb.Span, key string) string {
	for _, a := range s.GetAttributes() {
		if a.GetKey() == key {
			return a.GetValue().GetStringValue()
		}
	}
	return ""
}

// newTraceparent returns a W3C traceparent of a fresh trace (named by n)
// with its trace id and parent span id.
func newTraceparent(n byte) (string, []byte, []byte) {
	id := bytes.Repeat([]byte{0x5a, n}, 8)
	parent := bytes.Repeat([]byte{n}, 8)
	return fmt.Sprintf("00-%x-%x-01", id, parent), id, parent
}

// wantTraced asserts the shape of one traced call: a server span (protocol
// as given) whose parent is the client's span, an upstream attempt span
// whose parent is the server span, and an upstream that received a
// traceparent naming the attempt span.
func wantTraced(t *testing.T, rcv *otlpReceiver, id, parent []byte, protocol string, upstreamTraceparent func() string) *tracepb.Span {
	t.Helper()
	spans := rcv.trace(t, id, tracepb.Span_SPAN_KIND_SERVER, tracepb.Span_SPAN_KIND_CLIENT)
	server, attempt := spanOf(spans, tracepb.Span_SPAN_KIND_SERVER), spanOf(spans, tracepb.Span_SPAN_KIND_CLIENT)
	if !bytes.Equal(server.GetParentSpanId(), parent) {
		t.Errorf("server span's parent %x, want the client's %x", server.GetParentSpanId(), parent)
	}
	if got := attr(server, "rosetta.protocol"); got != protocol {
		t.Errorf("server span protocol %q, want %q", got, protocol)
	}
	if got := attr(server, "rpc.grpc.status_code"); got != "OK" {
		t.Errorf("server span status %q, want OK", got)
	}
	if !bytes.Equal(attempt.GetParentSpanId(), server.GetSpanId()) {
		t.Errorf("attempt span's parent %x, want the server span %x", attempt.GetParentSpanId(), server.GetSpanId())
	}
	if upstreamTraceparent != nil {
		want := fmt.Sprintf("00-%x-%x-01", id, attempt.GetSpanId())
		if got := upstreamTraceparent(); got != want {
			t.Errorf("the upstream received traceparent %q, want %q (the attempt span's)", got, want)
		}
	}
	return server
}

// TestTracing checks, per protocol, the spans the gateway exports to an
// OTLP collector and the trace context it passes upstream.
func TestTracing(t *testing.T) {
	t.Parallel()
	rcv := startOTLPReceiver(t)
	up := startObservedUpstream(t, "")
	tracingSection := fmt.Sprintf("tracing: {otlp: {endpoint: %q, protocol: grpc, insecure: true}}\n", rcv.addr)
	gw := startRosetta(t, libraryConfig(descriptorSetSchema(), up.addr, "", tracingSection))
	const getShelf = "/example.library.v1.LibraryService/GetShelf"
	upstreamSaw := func() string {
		v := up.last(t, getShelf).Get("traceparent")
		if len(v) != 1 {
			return fmt.Sprint(v)
		}
		return v[0]
	}

	t.Run("REST", func(t *testing.T) {
		tp, id, parent := newTraceparent(1)
		r := do(t, gw.base, request{method: "GET", path: "/v1/shelves/1", header: map[string]string{"Traceparent": tp, "Baggage": "tenant=t1"}})
		if r.status != http.StatusOK {
			t.Fatalf("GET: %d %s", r.status, r.body)
		}
		server := wantTraced(t, rcv, id, parent, "http", upstreamSaw)
		if got := up.last(t, getShelf).Get("baggage"); len(got) != 1 || got[0] != "tenant=t1" {
			t.Errorf("the upstream received baggage %q, want tenant=t1", got)
		}
		if got := attr(server, "rosetta.route"); got != "GET /v1/{name=shelves/*}" {
			t.Errorf("server span route %q", got)
		}
		// The access-log line names the trace and the span.
		waitFor(t, "the access-log line of the traced call", func() bool {
			return strings.Contains(gw.stderr.String(), fmt.Sprintf(`"trace_id":"%x","span_id":"%x"`, id, server.GetSpanId()))
		})
	})

	t.Run("gRPC", func(t *testing.T) {
		tp, id, parent := newTraceparent(2)
		conn := gw.grpcConn(t)
		ctx, cancel := context.WithTimeout(metadata.AppendToOutgoingContext(context.Background(), "traceparent", tp), requestTimeout)
		defer cancel()
		if _, err := libraryv1.NewLibraryServiceClient(conn).GetShelf(ctx, &libraryv1.GetShelfRequest{Name: "shelves/1"}); err != nil {
			t.Fatal(err)
		}
		wantTraced(t, rcv, id, parent, "grpc", upstreamSaw)
	})

	t.Run("Connect", func(t *testing.T) {
		tp, id, parent := newTraceparent(3)
		r := do(t, gw.base, request{method: "POST", path: getShelf, body: `{"name":"shelves/1"}`,
			header: map[string]string{"Content-Type": "application/json", "Connect-Protocol-Version": "1", "Traceparent": tp}})
		if r.status != http.StatusOK {
			t.Fatalf("POST: %d %s", r.status, r.body)
		}
		wantTraced(t, rcv, id, parent, "grpc-web", upstreamSaw)
	})

	t.Run("WebSocket", func(t *testing.T) {
		tp, id, parent := newTraceparent(4)
		c := dialWS(t, gw, "GetShelf", &ws.DialOptions{Subprotocols: []string{"rosetta.json"}, HTTPHeader: http.Header{"Traceparent": {tp}}})
		c.send(`{"name":"shelves/1"}`)
		c.recv()
		wantTraced(t, rcv, id, parent, "websocket", upstreamSaw)
	})

	t.Run("new trace", func(t *testing.T) {
		if r := get(t, gw.base, "/v1/shelves/2"); r.status != http.StatusOK {
			t.Fatalf("GET: %d %s", r.status, r.body)
		}
		tp := upstreamSaw()
		parts := strings.Split(tp, "-")
		if len(parts) != 4 {
			t.Fatalf("the upstream received traceparent %q", tp)
		}
		id, _ := hex.DecodeString(parts[1])
		spans := rcv.trace(t, id, tracepb.Span_SPAN_KIND_SERVER, tracepb.Span_SPAN_KIND_CLIENT)
		if p := spanOf(spans, tracepb.Span_SPAN_KIND_SERVER).GetParentSpanId(); len(p) != 0 {
			t.Errorf("a call without traceparent has a server span with parent %x, want a root", p)
		}
	})
}

// TestTracingMQTT checks that a device's traceparent (an MQTT 5 user
// property) parents the message's server span; the spans go by OTLP over
// HTTP.
func TestTracingMQTT(t *testing.T) {
	t.Parallel()
	rcv := startOTLPReceiverHTTP(t)
	up := startIoTUpstream(t)
	broker := freePort(t)
	startRosettaListen(t, "mqtt: "+broker, iotConfig(up.addr, anonymous, uplinkRoutes)+
		fmt.Sprintf("tracing: {otlp: {endpoint: %q, protocol: http, insecure: true}}\n", rcv.addr))
	tp, id, parent := newTraceparent(5)
	if out, code := publish(t, broker, "mqttv5", "-u", "d1", "-q", "1", "-t", "devices/d1/telemetry", "-m", `{"id":"t1","reading":{"temperature":20}}`,
		"-D", "PUBLISH", "user-property", "traceparent", tp); code != 0 {
		t.Fatalf("mosquitto_pub: %d\n%s", code, out)
	}
	wantTraced(t, rcv, id, parent, "mqtt", func() string { return strings.Join(up.lastMetadata().Get("traceparent"), ",") })
}
