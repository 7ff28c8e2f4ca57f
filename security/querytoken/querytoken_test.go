package querytoken_test

import (
	"context"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/rosettagw/rosetta/router"
	"github.com/rosettagw/rosetta/security"
	"github.com/rosettagw/rosetta/security/querytoken"
)

func TestStep(t *testing.T) {
	var seen metadata.MD
	final := router.HandlerFunc(func(_ context.Context, c *router.Call) error { seen = c.Incoming; return nil })
	tests := []struct {
		name          string
		allow         bool
		proto         router.Protocol
		query, header string
		code          codes.Code
		auth          string // the authorization the policies see
	}{
		{"refused by default", false, router.WebSocket, "access_token=t", "", codes.InvalidArgument, ""},
		{"allowed", true, router.WebSocket, "access_token=t", "", codes.OK, "Bearer t"},
		{"header and query token: two credentials", true, router.WebSocket, "access_token=t", "Bearer h", codes.InvalidArgument, ""},
		{"two query tokens", true, router.WebSocket, "access_token=t&access_token=u", "", codes.InvalidArgument, ""},
		{"no token", false, router.WebSocket, "x=1", "", codes.OK, ""},
		{"other protocols untouched", false, router.HTTP, "access_token=t", "", codes.OK, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			seen = nil
			c := &router.Call{Protocol: tt.proto, RawQuery: tt.query, Incoming: metadata.MD{}, Metadata: metadata.MD{}}
			if tt.header != "" {
				c.Incoming["authorization"] = []string{tt.header}
			}
			err := querytoken.Step(tt.allow, true)(final).Handle(context.Background(), c)
			if status.Code(err) != tt.code {
				t.Fatalf("code %v, want %v", status.Code(err), tt.code)
			}
			if err == nil {
				if got := seen.Get("authorization"); (len(got) == 0 && tt.auth != "") || (len(got) > 0 && got[0] != tt.auth) {
					t.Errorf("authorization %v, want %q", got, tt.auth)
				}
				if tt.auth != "" && len(seen[security.ForwardAuthorization]) == 0 {
					t.Error("the token is not marked for the jwt policy to forward once verified")
				}
			}
		})
	}
}
