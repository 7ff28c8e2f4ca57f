package ingress

import (
	"net/http"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// FuzzForwarding sends one header of any name and value (beside an
// ordinary request) through each way a call's metadata is made: the REST
// and WebSocket allow-list (with Authorization and the header itself
// listed), the gRPC family's pass-through and MQTT user properties. A
// request is either refused with INVALID_ARGUMENT (every ingress answers
// it with 400 or gRPC status 3: never a 5xx) or forwarded with nothing
// reserved, no credential, no key the gateway sets, and only what gRPC
// metadata can carry (so the upstream call cannot fail on it).
func FuzzForwarding(f *testing.F) {
	f.Fuzz(func(t *testing.T, name, value string) {
		h := http.Header{"X-Request-Id": {"r1"}}
		h[http.CanonicalHeaderKey(name)] = append(h[http.CanonicalHeaderKey(name)], value)
		r := &http.Request{Header: h, RemoteAddr: "10.0.0.1:5", Host: "gw.example"}
		fw := NewForwarder(append(append([]string(nil), DefaultForwardHeaders...), name))

		md, err := fw.Metadata(r)
		check(t, "allow-list", md, err)
		in := Incoming(r)
		md, err = PassThrough(in, r.RemoteAddr, r.Host)
		check(t, "pass-through", md, err)
		check(t, "user properties", fw.Properties(h), nil)
	})
}

func check(t *testing.T, way string, md metadata.MD, err error) {
	t.Helper()
	if err != nil {
		if status.Code(err) != codes.InvalidArgument {
			t.Fatalf("%s: refused with %v, want INVALID_ARGUMENT", way, err)
		}
		return
	}
	for k, vs := range md {
		if k == "x-forwarded-for" || k == "x-forwarded-host" { // set by the gateway itself
			if len(vs) != 1 || !ValidValues(k, vs) {
				t.Fatalf("%s: %s = %q", way, k, vs)
			}
			continue
		}
		if !Forwardable(k) {
			t.Fatalf("%s: forwarded %q = %q, which is reserved, a credential, the gateway's own or no metadata key", way, k, vs)
		}
		if Reserved(k) || strings.HasPrefix(k, "x-mqtt-") || k == "forwarded" || k == "authorization" || k == "x-api-key" || k == "connection" {
			t.Fatalf("%s: forwarded %q", way, k)
		}
		if !ValidValues(k, vs) {
			t.Fatalf("%s: forwarded %q = %q, which gRPC metadata cannot carry", way, k, vs)
		}
	}
}
