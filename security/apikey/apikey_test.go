package apikey_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/url"
	"reflect"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/rosettagw/rosetta/router"
	"github.com/rosettagw/rosetta/security/apikey"
)

func hash(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

func TestKeys(t *testing.T) {
	k, err := apikey.New(apikey.Config{Keys: []apikey.KeyConfig{
		{SHA256: hash("s3cret-one"), Identity: "svc-a", Scopes: []string{"books.read"}},
		{SHA256: hash("s3cret-two"), Identity: "svc-b"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		call    *router.Call
		subject string // "" when no identity
		code    codes.Code
	}{
		{"header", &router.Call{Incoming: metadata.Pairs("x-api-key", "s3cret-one")}, "svc-a", codes.OK},
		{"second key", &router.Call{Incoming: metadata.Pairs("x-api-key", "s3cret-two")}, "svc-b", codes.OK},
		{"unknown key", &router.Call{Incoming: metadata.Pairs("x-api-key", "guess")}, "", codes.Unauthenticated},
		{"hash sent as key", &router.Call{Incoming: metadata.Pairs("x-api-key", hash("s3cret-one"))}, "", codes.Unauthenticated},
		{"empty key", &router.Call{Incoming: metadata.Pairs("x-api-key", "")}, "", codes.Unauthenticated},
		{"no key", &router.Call{Incoming: metadata.MD{}}, "", codes.OK},
		{"MQTT password", &router.Call{Incoming: metadata.MD{}, Credentials: &router.Credentials{Password: []byte("s3cret-one")}}, "svc-a", codes.OK},
		{"MQTT username and password", &router.Call{Incoming: metadata.MD{}, Credentials: &router.Credentials{Username: "svc-b", Password: []byte("s3cret-two")}}, "svc-b", codes.OK},
		{"MQTT wrong username", &router.Call{Incoming: metadata.MD{}, Credentials: &router.Credentials{Username: "svc-a", Password: []byte("s3cret-two")}}, "", codes.Unauthenticated},
		{"MQTT other password", &router.Call{Incoming: metadata.MD{}, Credentials: &router.Credentials{Password: []byte("a.jwt.maybe")}}, "", codes.OK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var seen *router.Identity
			reached := false
			err := k.Wrap(router.HandlerFunc(func(_ context.Context, c *router.Call) error {
				reached, seen = true, c.Identity
				return nil
			})).Handle(context.Background(), tt.call)
			if status.Code(err) != tt.code {
				t.Fatalf("code %v (%v), want %v", status.Code(err), err, tt.code)
			}
			if reached != (tt.code == codes.OK) {
				t.Errorf("next reached = %v", reached)
			}
			if got := ""; seen != nil {
				got = seen.Subject
				if got != tt.subject || seen.Method != "api_key" {
					t.Errorf("identity %+v, want subject %q", seen, tt.subject)
				}
			} else if tt.subject != "" {
				t.Errorf("no identity, want %q", tt.subject)
			}
			if tt.code == codes.Unauthenticated && tt.call.Credentials == nil && len(tt.call.ResponseHeader.Get("www-authenticate")) != 1 {
				t.Errorf("no WWW-Authenticate challenge: %v", tt.call.ResponseHeader)
			}
		})
	}
}

func TestConfigErrors(t *testing.T) {
	for name, cfg := range map[string]apikey.Config{
		"no keys":     {},
		"bad hash":    {Keys: []apikey.KeyConfig{{SHA256: "abc", Identity: "x"}}},
		"no identity": {Keys: []apikey.KeyConfig{{SHA256: hash("k")}}},
		"duplicate":   {Keys: []apikey.KeyConfig{{SHA256: hash("k"), Identity: "a"}, {SHA256: hash("k"), Identity: "b"}}},
	} {
		if _, err := apikey.New(cfg); err == nil {
			t.Errorf("%s: New accepted it", name)
		}
	}
}

// TestQueryParam checks that a key in the query is read only when the
// configuration names the parameter, and that the header wins.
func TestQueryParam(t *testing.T) {
	keys := []apikey.KeyConfig{{SHA256: hash("s3cret-one"), Identity: "svc-a"}, {SHA256: hash("s3cret-two"), Identity: "svc-b"}}
	allowed, err := apikey.New(apikey.Config{QueryParam: "api_key", Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	refused, err := apikey.New(apikey.Config{Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	if got := allowed.CredentialParams(); !reflect.DeepEqual(got, []string{"api_key"}) {
		t.Errorf("CredentialParams %q, want [api_key]", got)
	}
	if got := refused.CredentialParams(); got != nil {
		t.Errorf("CredentialParams %q without query_param, want none", got)
	}
	tests := []struct {
		name    string
		keys    *apikey.Keys
		header  string
		query   url.Values
		subject string
		code    codes.Code
	}{
		{"allowed", allowed, "", url.Values{"api_key": {"s3cret-one"}}, "svc-a", codes.OK},
		{"allowed, unknown key", allowed, "", url.Values{"api_key": {"guess"}}, "", codes.Unauthenticated},
		{"allowed, other parameter", allowed, "", url.Values{"key": {"s3cret-one"}}, "", codes.OK},
		{"allowed, header and query: two keys", allowed, "s3cret-two", url.Values{"api_key": {"s3cret-one"}}, "", codes.InvalidArgument},
		{"allowed, two query keys", allowed, "", url.Values{"api_key": {"s3cret-one", "s3cret-two"}}, "", codes.InvalidArgument},
		{"header", refused, "s3cret-two", nil, "svc-b", codes.OK},
		{"not allowed", refused, "", url.Values{"api_key": {"s3cret-one"}}, "", codes.OK},
		{"not allowed, unknown key ignored", refused, "", url.Values{"api_key": {"guess"}}, "", codes.OK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &router.Call{Incoming: metadata.MD{}, RawQuery: tt.query.Encode()}
			if tt.header != "" {
				c.Incoming.Set("x-api-key", tt.header)
			}
			var seen *router.Identity
			err := tt.keys.Wrap(router.HandlerFunc(func(_ context.Context, c *router.Call) error {
				seen = c.Identity
				return nil
			})).Handle(context.Background(), c)
			if status.Code(err) != tt.code {
				t.Fatalf("code %v (%v), want %v", status.Code(err), err, tt.code)
			}
			got := ""
			if seen != nil {
				got = seen.Subject
			}
			if got != tt.subject {
				t.Errorf("subject %q, want %q", got, tt.subject)
			}
			if err != nil && strings.Contains(err.Error(), "guess") {
				t.Errorf("the error quotes the key: %v", err)
			}
		})
	}
}

// TestCredentialsOfACall: the key is never forwarded, whatever the
// header's name; two keys are refused; an MQTT message's key is its
// CONNECT password, never a user property.
func TestCredentialsOfACall(t *testing.T) {
	k, err := apikey.New(apikey.Config{Header: "X-Service-Key", Keys: []apikey.KeyConfig{{SHA256: hash("s3cret-one"), Identity: "svc-a"}}})
	if err != nil {
		t.Fatal(err)
	}
	run := func(c *router.Call) (*router.Identity, error) {
		var seen *router.Identity
		err := k.Wrap(router.HandlerFunc(func(_ context.Context, c *router.Call) error { seen = c.Identity; return nil })).Handle(context.Background(), c)
		return seen, err
	}
	c := &router.Call{Incoming: metadata.Pairs("x-service-key", "s3cret-one"), Metadata: metadata.Pairs("x-service-key", "s3cret-one", "x-request-id", "r1")}
	if id, err := run(c); err != nil || id == nil || id.Subject != "svc-a" {
		t.Fatalf("identity %v, error %v", id, err)
	}
	if want := metadata.Pairs("x-request-id", "r1"); !reflect.DeepEqual(c.Metadata, want) {
		t.Errorf("metadata %v, want %v: the key went upstream", c.Metadata, want)
	}
	for _, in := range []metadata.MD{
		{"x-service-key": {"s3cret-one", "guess"}},
		{"x-service-key": {"s3cret-one"}, "grpc-metadata-x-service-key": {"guess"}},
	} {
		if _, err := run(&router.Call{Incoming: in}); status.Code(err) != codes.InvalidArgument {
			t.Errorf("%v: %v, want INVALID_ARGUMENT", in, err)
		}
	}
	id, err := run(&router.Call{Protocol: router.MQTT, Incoming: metadata.Pairs("x-service-key", "s3cret-one"),
		Credentials: &router.Credentials{ClientID: "d1", Password: []byte("not-a-key")}})
	if err != nil || id != nil {
		t.Errorf("MQTT with a key user property: identity %v, error %v; want unauthenticated", id, err)
	}
}
