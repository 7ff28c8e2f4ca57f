package ingress

import (
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

func TestForwarderMetadata(t *testing.T) {
	r := httptest.NewRequest("GET", "http://gw.example/x", nil)
	r.RemoteAddr = "10.0.0.2:5555"
	r.Header.Set("Authorization", "Bearer t")
	r.Header.Set("Cookie", "secret")
	r.Header.Set("Grpc-Metadata-Tenant", "acme")
	r.Header.Set("X-Forwarded-For", "1.2.3.4")
	r.Header.Set("X-Request-Id", "r1")
	// Nothing the gateway sets, nothing of the hop, no credential.
	for _, h := range []string{"Grpc-Metadata-X-Mqtt-Client-Id", "Grpc-Metadata-X-Mqtt-Topic", "Grpc-Metadata-X-Forwarded-For",
		"Grpc-Metadata-Forwarded", "Grpc-Metadata-X-Forwarded-Host", "Grpc-Metadata-Connection", "Grpc-Metadata-Upgrade",
		"Grpc-Metadata-Transfer-Encoding", "Grpc-Metadata-Keep-Alive", "Grpc-Metadata-Te", "Grpc-Metadata-X-Api-Key",
		"Grpc-Metadata-Proxy-Authorization", "Grpc-Metadata-Grpc-Timeout", "Grpc-Metadata-Bad!key"} {
		r.Header.Set(h, "spoofed")
	}
	md, err := NewForwarder(nil).Metadata(r)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{
		"x-request-id":     {"r1"},
		"tenant":           {"acme"},
		"x-forwarded-for":  {"1.2.3.4, 10.0.0.2"},
		"x-forwarded-host": {"gw.example"},
	}
	if !reflect.DeepEqual(map[string][]string(md), want) {
		t.Errorf("metadata %v, want %v", md, want)
	}
	if NewForwarder([]string{"x-custom"}).Forwards("Authorization") {
		t.Error("a configured list still forwards Authorization")
	}
	if in := NewForwarder(nil).Incoming(r); len(in[ForwardAuthorization]) == 0 {
		t.Error("the default list does not mark Authorization for the jwt policy")
	}
	if in := NewForwarder([]string{"x-custom"}).Incoming(r); len(in[ForwardAuthorization]) != 0 {
		t.Error("a list without Authorization marks it")
	}
}

func TestForwarderRefuses(t *testing.T) {
	for _, tt := range []struct {
		name   string
		header map[string][]string
		field  string
	}{
		{"two Authorization", map[string][]string{"Authorization": {"Bearer a", "Bearer b"}}, "authorization"},
		{"Authorization and its Grpc-Metadata copy", map[string][]string{"Authorization": {"Bearer a"}, "Grpc-Metadata-Authorization": {"Bearer b"}}, "authorization"},
		{"two API keys", map[string][]string{"X-Api-Key": {"a"}, "Grpc-Metadata-X-Api-Key": {"b"}}, "x-api-key"},
		{"non-ASCII X-Request-Id", map[string][]string{"X-Request-Id": {"é"}}, "x-request-id"},
		{"control character in traceparent", map[string][]string{"Traceparent": {"00-\x01"}}, "traceparent"},
		{"non-ASCII Grpc-Metadata", map[string][]string{"Grpc-Metadata-Tenant": {"\xff"}}, "grpc-metadata-tenant"},
	} {
		r := httptest.NewRequest("GET", "http://gw.example/x", nil)
		for k, vs := range tt.header {
			for _, v := range vs {
				r.Header.Add(k, v)
			}
		}
		md, err := NewForwarder(nil).Metadata(r)
		st := status.Convert(err)
		if err == nil || st.Code() != codes.InvalidArgument {
			t.Errorf("%s: metadata %v, error %v; want INVALID_ARGUMENT", tt.name, md, err)
			continue
		}
		br, _ := st.Details()[0].(*errdetails.BadRequest)
		if br == nil || br.FieldViolations[0].Field != tt.field {
			t.Errorf("%s: details %v, want a BadRequest naming %s", tt.name, st.Details(), tt.field)
		}
	}
	// MQTT user properties: dropped, never refused.
	md := NewForwarder(nil).Properties(http.Header{"X-Request-Id": {"é"}, "Grpc-Metadata-X-Mqtt-Topic": {"t"}, "Traceparent": {"00-ok"}})
	if want := (metadata.MD{"traceparent": {"00-ok"}}); !reflect.DeepEqual(md, want) {
		t.Errorf("properties %v, want %v", md, want)
	}
}

func TestIncomingAndPeer(t *testing.T) {
	r := httptest.NewRequest("GET", "http://gw.example:8080/", nil)
	r.Header.Set("X-Api-Key", "k")
	md := Incoming(r)
	if md["x-api-key"][0] != "k" || md["host"][0] != "gw.example:8080" {
		t.Errorf("incoming %v", md)
	}
	r.RemoteAddr = "[::1]:80"
	if p := Peer(r); p.String() != "[::1]:80" {
		t.Errorf("peer %v", p)
	}
}

func TestPassThrough(t *testing.T) {
	in := metadata.MD{
		"x-something":      {"value"},
		"authorization":    {"Bearer t"},
		"cookie":           {"session=1"},
		"x-multi":          {"a", "b"},
		"grpc-trace-bin":   {"AAE"},
		"x-forwarded-for":  {"1.2.3.4"},
		"x-forwarded-host": {"spoofed.example"},
		// Every one of these belongs to the hop, not to the call.
		":authority": {"gw:1"}, ":path": {"/x"}, "content-type": {"application/grpc"}, "content-length": {"5"},
		"te": {"trailers"}, "host": {"gw"}, "connection": {"keep-alive"}, "keep-alive": {"300"},
		"transfer-encoding": {"chunked"}, "upgrade": {"h2c"}, "user-agent": {"grpc-go/1"},
		"grpc-timeout": {"1S"}, "grpc-encoding": {"gzip"}, "grpc-accept-encoding": {"gzip"},
		"grpc-status": {"0"}, "grpc-message": {"x"}, "grpc-previous-rpc-attempts": {"1"},
		"grpc-metadata-foo": {"the grpc- prefix is gRPC's own"},
		"content-encoding":  {"gzip"}, "accept-encoding": {"gzip"}, "accept": {"application/grpc-web-text"},
		"x-grpc-web": {"1"}, "x-user-agent": {"grpc-web-javascript/0.1"},
		"connect-protocol-version": {"1"}, "connect-timeout-ms": {"100"},
		// Keys the gateway sets, and credentials.
		"forwarded": {"for=1.1.1.1"}, "x-forwarded-proto": {"https"}, "x-mqtt-client-id": {"dev1"}, "x-mqtt-topic": {"t"},
		"x-api-key": {"k"}, "proxy-authorization": {"Basic x"},
	}
	md, err := PassThrough(in, "10.0.0.2:5555", "gw.example")
	if err != nil {
		t.Fatal(err)
	}
	want := metadata.MD{
		"x-something":      {"value"},
		"cookie":           {"session=1"},
		"x-multi":          {"a", "b"},
		"grpc-trace-bin":   {"AAE"},
		"x-forwarded-for":  {"1.2.3.4, 10.0.0.2"},
		"x-forwarded-host": {"gw.example"},
	}
	if !reflect.DeepEqual(md, want) {
		t.Errorf("metadata %v\nwant %v", map[string][]string(md), map[string][]string(want))
	}
	if len(in[ForwardAuthorization]) == 0 {
		t.Error("the gRPC family's call is not marked for a verified Authorization")
	}
	if _, err := PassThrough(metadata.MD{"authorization": {"Bearer a", "Bearer b"}}, "", ""); status.Code(err) != codes.InvalidArgument {
		t.Errorf("two authorization values: %v", err)
	}
	if _, err := PassThrough(metadata.MD{"x-request-id": {"é"}}, "", ""); status.Code(err) != codes.InvalidArgument {
		t.Errorf("a non-ASCII value: %v", err)
	}
	if _, err := PassThrough(metadata.MD{"x-trace-bin": {"\xff\x00"}}, "", ""); err != nil {
		t.Errorf("a binary value: %v", err)
	}
	md["x-multi"][0] = "changed"
	if in["x-multi"][0] != "a" {
		t.Error("PassThrough shares the caller's value slices")
	}
}

func TestWithoutReserved(t *testing.T) {
	md := metadata.MD{"x-upstream": {"h"}, "grpc-accept-encoding": {"gzip,zstd"}, "content-type": {"application/grpc"}, "grpc-trace-bin": {"AA"}}
	want := metadata.MD{"x-upstream": {"h"}, "grpc-trace-bin": {"AA"}}
	if got := WithoutReserved(md); !reflect.DeepEqual(got, want) {
		t.Errorf("%v, want %v", got, want)
	}
	clean := metadata.MD{"x-a": {"1"}}
	if got := WithoutReserved(clean); !reflect.DeepEqual(got, clean) {
		t.Errorf("%v, want it unchanged", got)
	}
	if WithoutReserved(nil) != nil {
		t.Error("nil in, not nil out")
	}
}
