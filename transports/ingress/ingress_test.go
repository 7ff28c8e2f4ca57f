package ingress

import (
	"net/http/httptest"
	"reflect"
	"testing"

	"google.golang.org/grpc/metadata"
)

func TestForwarderMetadata(t *testing.T) {
	r := httptest.NewRequest("GET", "http://gw.example/x", nil)
	r.RemoteAddr = "10.0.0.2:5555"
	r.Header.Set("Authorization", "Bearer t")
	r.Header.Set("Cookie", "secret")
	r.Header.Set("Grpc-Metadata-Tenant", "acme")
	r.Header.Set("X-Forwarded-For", "1.2.3.4")
	md := NewForwarder(nil).Metadata(r)
	want := map[string][]string{
		"authorization":    {"Bearer t"},
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
	}
	md := PassThrough(in, "10.0.0.2:5555", "gw.example")
	want := metadata.MD{
		"x-something":      {"value"},
		"authorization":    {"Bearer t"},
		"cookie":           {"session=1"},
		"x-multi":          {"a", "b"},
		"grpc-trace-bin":   {"AAE"},
		"x-forwarded-for":  {"1.2.3.4, 10.0.0.2"},
		"x-forwarded-host": {"gw.example"},
	}
	if !reflect.DeepEqual(md, want) {
		t.Errorf("metadata %v\nwant %v", map[string][]string(md), map[string][]string(want))
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
