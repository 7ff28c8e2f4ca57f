package ingress

import (
	"net/http/httptest"
	"reflect"
	"testing"
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
