package test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	ws "github.com/coder/websocket"
	gojwt "github.com/golang-jwt/jwt/v5"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/emptypb"

	libraryv1 "github.com/rosettagw/rosetta/proto/example/library/v1"
)

// The attack suite of issue 14: what a client sends is forwarded only when
// the gateway verified or set it, and no client input gives a 5xx, on every
// protocol, through the real binary and a counting upstream.

const libSvc = "/example.library.v1.LibraryService/"

// attackTarget is a method and how each protocol calls it.
type attackTarget struct {
	method string // the method name
	rest   request
	json   string        // the request, for Connect and WebSocket
	msg    proto.Message // the request, for gRPC and gRPC-Web
}

var (
	// GetShelf has no policy at all.
	openTarget = attackTarget{"GetShelf", request{method: "GET", path: "/v1/shelves/1"}, `{"name":"shelves/1"}`, &libraryv1.GetShelfRequest{Name: "shelves/1"}}
	// ListBooks needs a bearer token (jwt), on every way.
	jwtTarget = attackTarget{"ListBooks", request{method: "GET", path: "/v1/shelves/1/books"}, `{"parent":"shelves/1"}`, &libraryv1.ListBooksRequest{Parent: "shelves/1"}}
	// Ping needs an API key, on every way.
	keyTarget = attackTarget{"Ping", request{method: "POST", path: "/v1/keyed/ping", body: `{"message":"hi"}`}, `{"message":"hi"}`, &libraryv1.PingRequest{Message: "hi"}}
)

// outcome is a call's answer: its gRPC code, the HTTP status where the
// protocol has one, and what was said (to find the header it names).
type outcome struct {
	code   codes.Code
	status int
	answer string
}

// attackWay is one protocol.
type attackWay struct {
	name string
	call func(t *testing.T, gw *rosetta, tg attackTarget, h http.Header) outcome
}

// sendHTTP sends a request with headers of several values.
func sendHTTP(t *testing.T, gw *rosetta, method, path string, body []byte, h http.Header) *response {
	t.Helper()
	hr, err := http.NewRequest(method, gw.base+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range h {
		hr.Header[k] = append(hr.Header[k], vs...)
	}
	resp, err := client.Do(hr)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return &response{status: resp.StatusCode, header: resp.Header, body: b}
}

// connectCodes are the Connect error codes the suite meets.
var connectCodes = map[string]codes.Code{"invalid_argument": codes.InvalidArgument, "unauthenticated": codes.Unauthenticated,
	"permission_denied": codes.PermissionDenied, "internal": codes.Internal, "unknown": codes.Unknown, "unavailable": codes.Unavailable}

// httpStatusCode maps the refusals of a WebSocket upgrade to codes.
var httpStatusCode = map[int]codes.Code{400: codes.InvalidArgument, 401: codes.Unauthenticated, 403: codes.PermissionDenied}

func withHeader(h http.Header, kv ...string) http.Header {
	out := http.Header{}
	for k, vs := range h {
		out[k] = append([]string(nil), vs...)
	}
	for i := 0; i+1 < len(kv); i += 2 {
		out.Add(kv[i], kv[i+1])
	}
	return out
}

var attackWays = []attackWay{
	{"REST", func(t *testing.T, gw *rosetta, tg attackTarget, h http.Header) outcome {
		if tg.rest.body != "" {
			h = withHeader(h, "Content-Type", "application/json")
		}
		r := sendHTTP(t, gw, tg.rest.method, tg.rest.path, []byte(tg.rest.body), h)
		o := outcome{code: codes.OK, status: r.status, answer: string(r.body)}
		if r.status != http.StatusOK {
			var st struct{ Code int }
			json.Unmarshal(r.body, &st)
			o.code = codes.Code(st.Code)
		}
		return o
	}},
	{"Connect", func(t *testing.T, gw *rosetta, tg attackTarget, h http.Header) outcome {
		r := sendHTTP(t, gw, "POST", libSvc+tg.method, []byte(tg.json), withHeader(h, "Content-Type", "application/json", "Connect-Protocol-Version", "1"))
		o := outcome{code: codes.OK, status: r.status, answer: string(r.body)}
		if r.status != http.StatusOK {
			var st struct{ Code string }
			json.Unmarshal(r.body, &st)
			c, ok := connectCodes[st.Code]
			if !ok {
				c = codes.Unknown
			}
			o.code = c
		}
		return o
	}},
	{"gRPC-Web", func(t *testing.T, gw *rosetta, tg attackTarget, h http.Header) outcome {
		msg, _ := proto.Marshal(tg.msg)
		r := sendHTTP(t, gw, "POST", libSvc+tg.method, append(envelope(msg), msg...), withHeader(h, "Content-Type", "application/grpc-web+proto", "X-Grpc-Web", "1"))
		return grpcWebOutcome(t, r)
	}},
	{"WebSocket", func(t *testing.T, gw *rosetta, tg attackTarget, h http.Header) outcome {
		ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
		defer cancel()
		conn, resp, err := ws.Dial(ctx, wsURL(gw, tg.method), &ws.DialOptions{Subprotocols: []string{"rosetta.json"}, HTTPHeader: h})
		if err != nil {
			if resp == nil {
				t.Fatalf("WebSocket: %v", err)
			}
			b, _ := io.ReadAll(resp.Body)
			c, ok := httpStatusCode[resp.StatusCode]
			if !ok {
				c = codes.Unknown
			}
			return outcome{code: c, status: resp.StatusCode, answer: string(b)}
		}
		defer conn.CloseNow()
		if err := conn.Write(ctx, ws.MessageText, []byte(tg.json)); err != nil {
			t.Fatalf("WebSocket write: %v", err)
		}
		var frames []string
		for {
			_, data, err := conn.Read(ctx)
			if err != nil {
				if ws.CloseStatus(err) == ws.StatusNormalClosure {
					return outcome{code: codes.OK, status: 101, answer: strings.Join(frames, " ")}
				}
				return outcome{code: codes.Unknown, status: 101, answer: strings.Join(frames, " ") + " " + err.Error()}
			}
			frames = append(frames, string(data))
		}
	}},
	{"gRPC", func(t *testing.T, gw *rosetta, tg attackTarget, h http.Header) outcome {
		conn := gw.grpcConn(t)
		ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
		defer cancel()
		// gRPC has no Grpc-Metadata- prefix: its metadata is the key itself.
		for k, vs := range h {
			key := strings.TrimPrefix(strings.ToLower(k), "grpc-metadata-")
			for _, v := range vs {
				ctx = metadata.AppendToOutgoingContext(ctx, key, v)
			}
		}
		err := conn.Invoke(ctx, libSvc+tg.method, tg.msg, &emptypb.Empty{}) // only the status matters: any reply parses as Empty
		return outcome{code: status.Code(err), answer: status.Convert(err).Message()}
	}},
}

// grpcWebOutcome reads the grpc-status of a gRPC-Web answer, from its
// headers or its trailer frame.
func grpcWebOutcome(t *testing.T, r *response) outcome {
	t.Helper()
	code, msg := r.header.Get("Grpc-Status"), r.header.Get("Grpc-Message")
	if r.status == http.StatusOK && code == "" {
		flags, payloads := frames(t, r.body)
		for i, f := range flags {
			if f&0x80 != 0 {
				if m := regexp.MustCompile(`(?i)grpc-status:\s*(\d+)`).FindSubmatch(payloads[i]); m != nil {
					code = string(m[1])
				}
				if m := regexp.MustCompile(`(?i)grpc-message:\s*([^\r\n]*)`).FindSubmatch(payloads[i]); m != nil {
					msg = string(m[1])
				}
			}
		}
	}
	n, err := strconv.Atoi(code)
	if err != nil || r.status != http.StatusOK {
		return outcome{code: codes.Unknown, status: r.status, answer: fmt.Sprintf("HTTP %d %s", r.status, r.body)}
	}
	return outcome{code: codes.Code(n), status: r.status, answer: msg}
}

// lastCall is the metadata of the upstream's last call of method.
func (u *observedUpstream) lastCall(method string) metadata.MD {
	u.mu.Lock()
	defer u.mu.Unlock()
	calls := u.calls[libSvc[1:]+method]
	if len(calls) == 0 {
		calls = u.calls[libSvc+method]
	}
	if len(calls) == 0 {
		return nil
	}
	return calls[len(calls)-1]
}

// attackGateway serves the library behind a counting upstream: GetShelf
// open, ListBooks behind the jwt policy, Ping behind an API key, two MQTT
// rules for devices of a password file, identity headers.
type attackGateway struct {
	gw       *rosetta
	up       *observedUpstream
	is       *issuer
	broker   string
	apiKey   string
	devPass  string
	good     string // a valid token
	secrets  []string
	mqttUser string
}

func startAttackGateway(t *testing.T) *attackGateway {
	t.Helper()
	needTool(t, "mosquitto_passwd")
	a := &attackGateway{is: startIssuer(t), up: startObservedUpstream(t, ""), broker: freePort(t),
		apiKey: "attack-api-key-0451", devPass: "device-password-0451", mqttUser: "dev-1"}
	pwFile := filepath.Join(t.TempDir(), "devices.passwd")
	if out, err := exec.Command("mosquitto_passwd", "-b", "-c", pwFile, a.mqttUser, a.devPass).CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_passwd: %v\n%s", err, out)
	}
	a.good = signToken(t, gojwt.SigningMethodES256, a.is.ec, "e1", claims(nil))
	a.secrets = []string{a.apiKey, a.devPass, a.good}
	a.gw = startRosettaListen(t, fmt.Sprintf("mqtt: %q", a.broker), libraryConfig(descriptorSetSchema(), a.up.addr, "", fmt.Sprintf(`mqtt: {password_file: %q}
routes:
  - get: /v1/jwt/{parent=shelves/*}/books
    call: example.library.v1.LibraryService/ListBooks
    policies: [bearer]
  - post: /v1/keyed/ping
    call: example.library.v1.LibraryService/Ping
    policies: [keys]
  - mqtt: attack/{min_price_cents}/list
    call: example.library.v1.LibraryService/ListBooks
  - mqtt: attack/shelf
    call: example.library.v1.LibraryService/GetShelf
policies:
  bearer:
    jwt: {issuer: %q, audience: [rosetta], algorithms: [RS256, ES256], jwks_url: %q}
  keys: {api_key: {keys: [{sha256: %s, identity: reader, scopes: [read]}]}}
security:
  identity_headers: {x-user-id: subject, x-user-email: "claim:email"}
`, pwFile, testIssuer, a.is.url, sha256Hex(a.apiKey))))
	waitFor(t, "the embedded broker", func() bool {
		c, err := net.Dial("tcp", a.broker)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return a
}

// secret records a secret the suite sends, for the log check.
func (a *attackGateway) secret(s string) string {
	a.secrets = append(a.secrets, s)
	return s
}

// TestAttackSuite runs issue 14's attacks over REST, Connect, gRPC-Web,
// WebSocket, gRPC and MQTT against one gateway, then checks its whole log
// for every secret the attacks used.
func TestAttackSuite(t *testing.T) {
	t.Parallel()
	a := startAttackGateway(t)
	forged := a.secret(signToken(t, gojwt.SigningMethodES256, a.is.ec, "e1", claims(map[string]any{"aud": "someone-else"})))
	a.secrets = append(a.secrets, forged)
	otherKey := a.secret("other-api-key-0451")
	evil := a.secret(signToken(t, gojwt.SigningMethodES256, a.is.ec, "e1", claims(map[string]any{"sub": "Zoë\r\nX-Admin: true", "email": "é@example.com"})))

	type tcase struct {
		name   string
		target attackTarget
		header http.Header
		noGRPC bool       // grpc-go cannot send it (hop-by-hop keys, non-ASCII)
		want   codes.Code // OK: passed
		// except holds the ways whose outcome differs (the gRPC family
		// drops Grpc-Metadata-* headers: they are REST's convention).
		except map[string]codes.Code
		field  string // the header a refusal names
		// upstream checks what the upstream received (want OK).
		upstream func(t *testing.T, md metadata.MD)
	}
	absent := func(keys ...string) func(t *testing.T, md metadata.MD) {
		return func(t *testing.T, md metadata.MD) {
			t.Helper()
			for _, k := range keys {
				if v := md.Get(k); len(v) > 0 {
					t.Errorf("the upstream received %s = %q", k, v)
				}
			}
		}
	}
	auth := func(want ...string) func(t *testing.T, md metadata.MD) {
		return func(t *testing.T, md metadata.MD) {
			t.Helper()
			if got := md.Get("authorization"); strings.Join(got, "|") != strings.Join(want, "|") {
				t.Errorf("the upstream received authorization %q, want %q", got, want)
			}
			if got := md.Get("x-api-key"); len(got) > 0 {
				t.Errorf("the upstream received x-api-key %q", got)
			}
		}
	}
	cases := []tcase{
		// Two credentials of a kind.
		{name: "two Authorization headers", target: jwtTarget, header: http.Header{"Authorization": {"Bearer " + a.good, "Bearer " + forged}}, want: codes.InvalidArgument, field: "authorization"},
		{name: "Authorization and Grpc-Metadata-Authorization", target: jwtTarget, header: http.Header{"Authorization": {"Bearer " + a.good}, "Grpc-Metadata-Authorization": {"Bearer " + forged}}, want: codes.InvalidArgument, field: "authorization"},
		{name: "X-Api-Key and Grpc-Metadata-X-Api-Key", target: keyTarget, header: http.Header{"X-Api-Key": {a.apiKey}, "Grpc-Metadata-X-Api-Key": {otherKey}}, want: codes.InvalidArgument, field: "x-api-key"},
		// What the upstream receives after each kind of authentication.
		{name: "jwt: the verified token only", target: jwtTarget, header: http.Header{"Authorization": {"Bearer " + a.good}}, want: codes.OK,
			upstream: func(t *testing.T, md metadata.MD) {
				auth("Bearer "+a.good)(t, md)
				if got := md.Get("x-user-id"); len(got) != 1 || got[0] != "alice" {
					t.Errorf("x-user-id %q, want alice", got)
				}
			}},
		{name: "api_key beside a forged Grpc-Metadata-Authorization", target: keyTarget, header: http.Header{"X-Api-Key": {a.apiKey}, "Grpc-Metadata-Authorization": {"Bearer " + forged}}, want: codes.OK,
			upstream: func(t *testing.T, md metadata.MD) {
				auth()(t, md)
				if got := md.Get("x-user-id"); len(got) != 1 || got[0] != "reader" {
					t.Errorf("x-user-id %q, want reader", got)
				}
			}},
		{name: "no authentication: a forged token is not forwarded", target: openTarget, header: http.Header{"Authorization": {"Bearer " + forged}, "X-Api-Key": {otherKey}}, want: codes.OK, upstream: auth()},
		// Keys the gateway sets, sent by the client.
		{name: "keys the gateway sets", target: openTarget, header: http.Header{
			"Grpc-Metadata-X-Mqtt-Client-Id": {"spoofed-device"}, "Grpc-Metadata-X-Mqtt-Topic": {"devices/spoofed"},
			"Grpc-Metadata-Forwarded": {"for=6.6.6.6"}, "Forwarded": {"for=6.6.6.6"}, "Grpc-Metadata-X-Forwarded-Host": {"evil.example"},
			"Grpc-Metadata-X-Forwarded-Proto": {"gopher"}, "X-User-Id": {"mallory"}, "Grpc-Metadata-X-User-Email": {"mallory@evil.example"},
		}, want: codes.OK, upstream: func(t *testing.T, md metadata.MD) {
			absent("x-mqtt-client-id", "x-mqtt-topic", "forwarded", "x-forwarded-proto", "x-user-id", "x-user-email")(t, md)
			if got := md.Get("x-forwarded-host"); len(got) != 1 || strings.Contains(got[0], "evil") {
				t.Errorf("x-forwarded-host %q, want the gateway's", got)
			}
		}},
		{name: "Grpc-Metadata-X-Forwarded-For", target: openTarget, noGRPC: true, header: http.Header{"Grpc-Metadata-X-Forwarded-For": {"6.6.6.6"}}, want: codes.OK,
			upstream: func(t *testing.T, md metadata.MD) {
				if got := md.Get("x-forwarded-for"); len(got) != 1 || got[0] != "127.0.0.1" {
					t.Errorf("x-forwarded-for %q, want the peer alone", got)
				}
			}},
		{name: "connection-specific headers as Grpc-Metadata", target: openTarget, noGRPC: true, header: http.Header{
			"Grpc-Metadata-Connection": {"close"}, "Grpc-Metadata-Upgrade": {"h2c"}, "Grpc-Metadata-Transfer-Encoding": {"chunked"},
			"Grpc-Metadata-Keep-Alive": {"300"}, "Grpc-Metadata-Te": {"trailers"}, "Grpc-Metadata-Proxy-Connection": {"close"},
		}, want: codes.OK, upstream: absent("connection", "upgrade", "transfer-encoding", "keep-alive", "proxy-connection")},
		// Values gRPC metadata cannot carry.
		{name: "non-ASCII X-Request-Id", target: openTarget, noGRPC: true, header: http.Header{"X-Request-Id": {"é"}}, want: codes.InvalidArgument, field: "x-request-id"},
		{name: "non-ASCII traceparent", target: openTarget, noGRPC: true, header: http.Header{"Traceparent": {"00-é"}}, want: codes.InvalidArgument, field: "traceparent"},
		{name: "non-ASCII Grpc-Metadata", target: openTarget, noGRPC: true, header: http.Header{"Grpc-Metadata-Tenant": {"café"}}, want: codes.InvalidArgument, field: "tenant",
			except: map[string]codes.Code{"Connect": codes.OK, "gRPC-Web": codes.OK}, upstream: absent("tenant", "grpc-metadata-tenant")},
		// A signed token with CR/LF and non-ASCII in its claims.
		{name: "identity with CR/LF and non-ASCII", target: jwtTarget, header: http.Header{"Authorization": {"Bearer " + evil}}, want: codes.OK,
			upstream: func(t *testing.T, md metadata.MD) {
				if got := md.Get("x-user-id"); len(got) != 1 || got[0] != "Zo%C3%AB%0D%0AX-Admin: true" {
					t.Errorf("x-user-id %q, want it percent-encoded", got)
				}
				if got := md.Get("x-user-email"); len(got) != 1 || got[0] != "%C3%A9@example.com" {
					t.Errorf("x-user-email %q, want it percent-encoded", got)
				}
				absent("x-admin")(t, md)
			}},
	}
	for _, tc := range cases {
		for _, w := range attackWays {
			if w.name == "gRPC" && tc.noGRPC {
				continue
			}
			t.Run(tc.name+"/"+w.name, func(t *testing.T) {
				before := a.up.callCount()
				o := w.call(t, a.gw, tc.target, tc.header)
				if o.status >= 500 {
					t.Fatalf("HTTP %d: %s", o.status, o.answer)
				}
				want := tc.want
				if c, ok := tc.except[w.name]; ok {
					want = c
				}
				if o.code != want {
					t.Fatalf("code %v (HTTP %d: %s), want %v", o.code, o.status, o.answer, want)
				}
				after := a.up.callCount()
				if want != codes.OK {
					if after != before {
						t.Errorf("the upstream saw %d calls of a refused request", after-before)
					}
					if !strings.Contains(strings.ToLower(o.answer), tc.field) {
						t.Errorf("the refusal does not name %s: %s", tc.field, o.answer)
					}
					return
				}
				if after != before+1 {
					t.Fatalf("the upstream saw %d calls, want 1", after-before)
				}
				if tc.upstream != nil {
					tc.upstream(t, a.up.lastCall(tc.target.method))
				}
			})
		}
	}

	// The forged-token corpus, on every way: refused, never forwarded.
	for _, at := range a.is.attacks(t) {
		a.secret(at.token)
		for _, w := range attackWays {
			t.Run("forged token "+at.name+"/"+w.name, func(t *testing.T) {
				before := a.up.callCount()
				if o := w.call(t, a.gw, jwtTarget, http.Header{"Authorization": {"Bearer " + at.token}}); o.code != codes.Unauthenticated {
					t.Errorf("code %v (HTTP %d: %.200s), want Unauthenticated", o.code, o.status, o.answer)
				}
				if n := a.up.callCount(); n != before {
					t.Errorf("the upstream saw %d calls", n-before)
				}
			})
		}
	}

	t.Run("WebSocket subprotocol token, verified", func(t *testing.T) {
		before := a.up.callCount()
		ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
		defer cancel()
		conn, _, err := ws.Dial(ctx, wsURL(a.gw, "ListBooks"), &ws.DialOptions{Subprotocols: []string{"rosetta.json", "rosetta.bearer." + a.good}})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.CloseNow()
		if err := conn.Write(ctx, ws.MessageText, []byte(jwtTarget.json)); err != nil {
			t.Fatal(err)
		}
		for {
			if _, _, err := conn.Read(ctx); err != nil {
				if ws.CloseStatus(err) != ws.StatusNormalClosure {
					t.Fatalf("call: %v", err)
				}
				break
			}
		}
		if a.up.callCount() != before+1 {
			t.Fatalf("the upstream saw %d calls, want 1", a.up.callCount()-before)
		}
		auth("Bearer "+a.good)(t, a.up.lastCall("ListBooks"))
	})

	t.Run("WebSocket subprotocol token beside an Authorization header", func(t *testing.T) {
		before := a.up.callCount()
		ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
		defer cancel()
		_, resp, err := ws.Dial(ctx, wsURL(a.gw, "ListBooks"), &ws.DialOptions{Subprotocols: []string{"rosetta.json", "rosetta.bearer." + forged},
			HTTPHeader: http.Header{"Authorization": {"Bearer " + a.good}}})
		if err == nil || resp == nil || resp.StatusCode != http.StatusBadRequest {
			t.Errorf("upgrade: %v %v, want 400", resp, err)
		}
		if a.up.callCount() != before {
			t.Error("the upstream saw the call")
		}
	})

	t.Run("client input", func(t *testing.T) {
		token := http.Header{"Authorization": {"Bearer " + a.good}}
		before := a.up.callCount()
		for _, c := range []struct {
			path, field string
			h           http.Header
		}{
			{"/v1/shelves/%ff", "name", nil},
			{"/v1/shelves/%c3%28", "name", nil},
			{"/v1/shelves/1/books?page_token=%ff", "page_token", token},
			{"/v1/shelves/1/books?labels[%ff]=v", "labels", token},
			{"/v1/shelves/1/books?labels[k]=%fe", "labels[k]", token},
		} {
			r := sendHTTP(t, a.gw, "GET", c.path, nil, c.h)
			wantStatus(t, r, http.StatusBadRequest, int(codes.InvalidArgument), "")
			if !strings.Contains(string(r.body), c.field) {
				t.Errorf("GET %s: the error does not name %s: %s", c.path, c.field, r.body)
			}
		}
		// Malformed protobuf: refused at the edge, Connect and gRPC-Web.
		junk := []byte{0xff, 0xff, 0xff, 0xff}
		r := sendHTTP(t, a.gw, "POST", libSvc+"GetShelf", junk, http.Header{"Content-Type": {"application/proto"}, "Connect-Protocol-Version": {"1"}})
		if r.status != http.StatusBadRequest || !strings.Contains(string(r.body), "invalid_argument") {
			t.Errorf("Connect application/proto junk: HTTP %d %s, want 400 invalid_argument", r.status, r.body)
		}
		r = sendHTTP(t, a.gw, "POST", libSvc+"GetShelf", append(envelope(junk), junk...), http.Header{"Content-Type": {"application/grpc-web+proto"}})
		if o := grpcWebOutcome(t, r); o.code != codes.InvalidArgument {
			t.Errorf("gRPC-Web junk: %v %s, want INVALID_ARGUMENT", o.code, o.answer)
		}
		if n := a.up.callCount(); n != before {
			t.Errorf("the upstream saw %d calls of bad input", n-before)
		}
	})

	t.Run("MQTT", func(t *testing.T) {
		base := []string{"-u", a.mqttUser, "-P", a.devPass, "-q", "1"}
		// A device of the password file offering a token as a user
		// property is not that token's subject: ListBooks needs a token.
		before := a.up.callCount()
		payload := a.secret(`{"parent":"shelves/1","filter":{"title":"payload-secret-1"}}`)
		out, _ := publish(t, a.broker, "mqttv5", append(base, "-i", "attacker-1", "-t", "attack/0/list", "-m", payload,
			"-D", "PUBLISH", "user-property", "authorization", "Bearer "+a.good)...)
		if !strings.Contains(out, "RC:135") {
			t.Errorf("a token user property authenticated the message:\n%s", out)
		}
		if n := a.up.callCount(); n != before {
			t.Errorf("the upstream saw %d calls", n-before)
		}
		// The keys the gateway sets, as user properties: the upstream gets
		// the gateway's own.
		prop := a.secret("user-property-secret-0451")
		out, _ = publish(t, a.broker, "mqttv5", append(base, "-i", "device-7", "-t", "attack/shelf", "-m", `{"name":"shelves/1"}`,
			"-D", "PUBLISH", "user-property", "x-mqtt-client-id", "spoofed",
			"-D", "PUBLISH", "user-property", "grpc-metadata-x-mqtt-client-id", "spoofed",
			"-D", "PUBLISH", "user-property", "grpc-metadata-x-mqtt-topic", "spoofed",
			"-D", "PUBLISH", "user-property", "grpc-metadata-x-forwarded-for", "6.6.6.6",
			"-D", "PUBLISH", "user-property", "authorization", "Bearer "+forged,
			"-D", "PUBLISH", "user-property", "x-request-id", prop)...)
		m := regexp.MustCompile(`PUBACK \(Mid: \d+, RC:(\d+)`).FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("no PUBACK:\n%s", out)
		}
		if rc, _ := strconv.Atoi(m[1]); rc >= 0x80 {
			t.Fatalf("publish to the open rule: want a PUBACK under 0x80\n%s", out)
		}
		md := a.up.lastCall("GetShelf")
		if got := md.Get("x-mqtt-client-id"); len(got) != 1 || got[0] != "device-7" {
			t.Errorf("x-mqtt-client-id %q, want device-7", got)
		}
		if got := md.Get("x-mqtt-topic"); len(got) != 1 || got[0] != "attack/shelf" {
			t.Errorf("x-mqtt-topic %q, want attack/shelf", got)
		}
		absent("authorization", "x-forwarded-for")(t, md)
	})

	t.Run("broker packets", func(t *testing.T) {
		// A second CONNECT on an open connection, and a PUBLISH the broker
		// refuses: mochi logs the whole packet.
		second := a.secret("second-connect-password-0451")
		c := mqttConnect(t, a.broker, "raw-1", a.mqttUser, a.devPass)
		c.SetReadDeadline(time.Now().Add(requestTimeout)) // a bound, not an assertion
		c.Write(connectPacket("raw-1", a.mqttUser, second))
		io.Copy(io.Discard, c) // the broker closes it
		c.Close()
		c = mqttConnect(t, a.broker, "raw-2", a.mqttUser, a.devPass)
		c.SetReadDeadline(time.Now().Add(requestTimeout))
		c.Write(publishPacket("attack/#", "authorization", a.secret("Bearer raw-user-property-0451"), a.secret("raw-payload-secret-0451")))
		io.Copy(io.Discard, c)
		c.Close()
		waitFor(t, "the broker's log of the refused packets", func() bool {
			return strings.Count(a.gw.stderr.String(), "error processing packet") >= 2
		})
	})

	// Nothing the attacks sent in secret is in the gateway's log: not as
	// text, nor in part (a token's signature), nor as a logged []byte
	// (decimal bytes), hex or base64.
	log := a.gw.stderr.String() + a.gw.stdout.String()
	for _, s := range a.secrets {
		b := []byte(s)
		forms := []string{s, s[len(s)/2:], strings.Trim(fmt.Sprint(b), "[]"), hex.EncodeToString(b), base64.StdEncoding.EncodeToString(b)}
		for _, form := range forms {
			if len(form) >= 8 && strings.Contains(log, form) {
				t.Errorf("the gateway log holds a secret (%.12s…) as %.24s…", s, form)
			}
		}
	}
}

// mqttConnect opens an MQTT 5 connection and reads its CONNACK.
func mqttConnect(t *testing.T, broker, clientID, user, pass string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", broker)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := c.Write(connectPacket(clientID, user, pass)); err != nil {
		t.Fatal(err)
	}
	hdr := make([]byte, 2)
	if _, err := io.ReadFull(c, hdr); err != nil || hdr[0] != 0x20 {
		t.Fatalf("no CONNACK: %x %v", hdr, err)
	}
	if _, err := io.ReadFull(c, make([]byte, hdr[1])); err != nil {
		t.Fatal(err)
	}
	return c
}

func mqttString(b []byte, s string) []byte {
	return append(binary.BigEndian.AppendUint16(b, uint16(len(s))), s...)
}

func mqttPacket(typ byte, body []byte) []byte {
	out := []byte{typ}
	n := len(body)
	for {
		d := byte(n % 128)
		n /= 128
		if n > 0 {
			d |= 0x80
		}
		out = append(out, d)
		if n == 0 {
			break
		}
	}
	return append(out, body...)
}

// connectPacket is an MQTT 5 CONNECT with a username and password.
func connectPacket(clientID, user, pass string) []byte {
	b := mqttString(nil, "MQTT")
	b = append(b, 5, 0xC2, 0, 60, 0) // version, flags (user, password, clean start), keep-alive, no properties
	b = mqttString(b, clientID)
	b = mqttString(b, user)
	b = mqttString(b, pass)
	return mqttPacket(0x10, b)
}

// publishPacket is an MQTT 5 QoS 0 PUBLISH with one user property.
func publishPacket(topic, key, value, payload string) []byte {
	b := mqttString(nil, topic)
	props := mqttString(mqttString([]byte{0x26}, key), value)
	b = append(b, byte(len(props)))
	b = append(b, props...)
	b = append(b, payload...)
	return mqttPacket(0x30, b)
}

// TestAttackClientIP: behind a trusted proxy the client address is the
// right-most untrusted hop of the one header the configuration names; the
// other header is ignored, so a client cannot pass an IP rule with a
// Forwarded its proxy does not touch. Every HTTP protocol and gRPC.
func TestAttackClientIP(t *testing.T) {
	t.Parallel()
	up := startObservedUpstream(t, "")
	gateway := func(header string) *rosetta {
		return startRosetta(t, libraryConfig(descriptorSetSchema(), up.addr, "", `policies:
  office: {ip_filter: {deny: [198.51.100.0/24]}}
security:
  policies: [office]
  trusted_proxies: [127.0.0.0/8, "::1/128"]
`+header))
	}
	xff, fwd := gateway(""), gateway("  client_ip_header: Forwarded\n")
	denied := "198.51.100.7"
	cases := []struct {
		name string
		gw   *rosetta
		h    http.Header
		want codes.Code
	}{
		{"XFF: denied client", xff, http.Header{"X-Forwarded-For": {denied}}, codes.PermissionDenied},
		{"XFF: a Forwarded the proxy did not write is ignored", xff, http.Header{"X-Forwarded-For": {denied}, "Forwarded": {"for=192.0.2.1"}}, codes.PermissionDenied},
		{"XFF: right-most untrusted hop", xff, http.Header{"X-Forwarded-For": {"192.0.2.1, " + denied}}, codes.PermissionDenied},
		{"XFF: spoofed left-most hop", xff, http.Header{"X-Forwarded-For": {denied + ", 192.0.2.1"}}, codes.OK},
		{"Forwarded: denied client", fwd, http.Header{"Forwarded": {"for=" + denied}}, codes.PermissionDenied},
		{"Forwarded: an X-Forwarded-For is ignored", fwd, http.Header{"Forwarded": {"for=" + denied}, "X-Forwarded-For": {"192.0.2.1"}}, codes.PermissionDenied},
		{"Forwarded: X-Forwarded-For alone is ignored", fwd, http.Header{"X-Forwarded-For": {denied}}, codes.OK},
	}
	for _, c := range cases {
		for _, w := range attackWays {
			t.Run(c.name+"/"+w.name, func(t *testing.T) {
				before := up.callCount()
				o := w.call(t, c.gw, openTarget, c.h)
				if o.code != c.want {
					t.Fatalf("code %v (HTTP %d: %s), want %v", o.code, o.status, o.answer, c.want)
				}
				if n := up.callCount() - before; (c.want == codes.OK) != (n == 1) {
					t.Errorf("the upstream saw %d calls", n)
				}
			})
		}
	}
	path := writeConfig(t, libraryConfig(descriptorSetSchema(), up.addr, "", "security: {client_ip_header: X-Real-Ip}\n"))
	if code, _, stderr := runRosetta(t, "check", "-config", path); code == 0 || !strings.Contains(stderr, "security.client_ip_header") {
		t.Errorf("check accepted client_ip_header X-Real-Ip (exit %d):\n%s", code, stderr)
	}
}

// served measures normal calls while an attack runs: each must succeed;
// their latencies are logged (for RELIABILITY.md), never asserted.
type served struct {
	t     *testing.T
	lat   []time.Duration
	first chan struct{} // closed once a normal call has completed
	stop  chan struct{}
	done  chan struct{}
}

// serveNormally calls call in a loop until the returned served is ended.
func serveNormally(t *testing.T, call func() error) *served {
	s := &served{t: t, first: make(chan struct{}), stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		for {
			select {
			case <-s.stop:
				return
			default:
			}
			start := time.Now()
			if err := call(); err != nil {
				t.Errorf("a normal call failed during the attack: %v", err)
				return
			}
			s.lat = append(s.lat, time.Since(start))
			if len(s.lat) == 1 {
				close(s.first)
			}
		}
	}()
	return s
}

// end waits for a normal call to have completed, then stops them and logs
// their latencies.
func (s *served) end(what string) {
	select {
	case <-s.first:
	case <-s.done: // a call failed
	}
	close(s.stop)
	<-s.done
	if len(s.lat) == 0 {
		s.t.Fatalf("no normal call completed during %s", what)
	}
	slices.Sort(s.lat)
	s.t.Logf("%s: %d normal calls served, latency p50 %v, p99 %v, max %v", what, len(s.lat),
		s.lat[len(s.lat)/2], s.lat[len(s.lat)*99/100], s.lat[len(s.lat)-1])
}

// TestAttackHostileClients: slowloris, huge headers, ten thousand query
// parameters, and MQTT devices that never read or never acknowledge. Each
// is cut by a bound the client can see (a closed connection, 431, 414, a
// warning in the log), and normal clients keep being served throughout.
func TestAttackHostileClients(t *testing.T) {
	t.Parallel()
	lib := startLibrary(t)
	gw := startRosetta(t, libraryConfig(descriptorSetSchema(), lib, "", ""))
	addr := strings.TrimPrefix(gw.base, "http://")
	getBook := func() error {
		r, err := client.Get(gw.base + "/v1/shelves/1/books/dune")
		if err != nil {
			return err
		}
		defer r.Body.Close()
		io.Copy(io.Discard, r.Body)
		if r.StatusCode != http.StatusOK {
			return fmt.Errorf("status %d", r.StatusCode)
		}
		return nil
	}

	t.Run("slowloris", func(t *testing.T) {
		// Hundreds of connections each send a header that never ends, a
		// byte at a time; the server's read-header timeout (10s) closes
		// them, and a normal client is served meanwhile.
		const conns = 300
		closed := make(chan struct{}, conns)
		stop := make(chan struct{})
		defer close(stop)
		for range conns {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			go func() { // the server's close shows as the end of the reads
				io.Copy(io.Discard, c)
				closed <- struct{}{}
			}()
			go func() {
				c.Write([]byte("GET /v1/shelves/1/books/dune HTTP/1.1\r\nHost: x\r\nX-Slow: "))
				tick := time.NewTicker(200 * time.Millisecond)
				defer tick.Stop()
				for {
					select {
					case <-stop:
						return
					case <-tick.C:
						if _, err := c.Write([]byte("a")); err != nil {
							return
						}
					}
				}
			}()
		}
		s := serveNormally(t, getBook)
		deadline := time.After(time.Minute)
		for i := range conns {
			select {
			case <-closed:
			case <-deadline:
				t.Fatalf("%d of %d slow connections still open after a minute", conns-i, conns)
			}
		}
		s.end("slowloris")
	})

	t.Run("huge headers", func(t *testing.T) {
		s := serveNormally(t, getBook)
		req, _ := http.NewRequest("GET", gw.base+"/v1/shelves/1/books/dune", nil)
		for i := range 100 {
			req.Header.Set(fmt.Sprintf("X-Big-%d", i), strings.Repeat("h", 1<<10))
		}
		r, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
		if r.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Errorf("100 KiB of headers: %d, want 431", r.StatusCode)
		}
		s.end("huge headers")
	})

	t.Run("ten thousand query parameters", func(t *testing.T) {
		s := serveNormally(t, getBook)
		q := strings.Repeat("page_size=1&", 10000)
		r := get(t, gw.base, "/v1/shelves/1/books?"+q)
		if r.status != http.StatusRequestURITooLong && r.status != http.StatusBadRequest {
			t.Errorf("10,000 query parameters: %d %s, want 414 or 400", r.status, r.body)
		}
		// Under the URL bound, many parameters that set nothing are
		// ignored (http.strict_query is off by default).
		r = get(t, gw.base, "/v1/shelves/1/books?"+strings.Repeat("a=1&", 1500))
		if r.status != http.StatusOK {
			t.Errorf("1,500 unknown query parameters: %d %s, want 200", r.status, r.body)
		}
		s.end("10,000 query parameters")
	})
}

// TestAttackMQTTSlowDevices: a device that never acknowledges its QoS 1
// messages, and one that never reads (nor, then, acknowledges), are
// bounded by the broker: 1,024 QoS 1 messages in flight each, then further
// ones are dropped for it with a warning; other devices and REST keep
// being served.
func TestAttackMQTTSlowDevices(t *testing.T) {
	t.Parallel()
	up := startIoTUpstream(t)
	broker := freePort(t)
	admin := freePort(t)
	gw := startRosettaListen(t, fmt.Sprintf("mqtt: %q, admin: %q", broker, admin), iotConfig(up.addr, anonymous, uplinkRoutes+downlinkRoutes))
	waitFor(t, "the embedded broker", func() bool {
		c, err := net.Dial("tcp", broker)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	device := func(name string, read bool) {
		c := mqttConnect(t, broker, name, name, "x")
		sub := binary.BigEndian.AppendUint16(nil, 1)
		sub = append(sub, 0)
		sub = mqttString(sub, "devices/"+name+"/commands")
		sub = append(sub, 1)
		if _, err := c.Write(mqttPacket(0x82, sub)); err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(requestTimeout))
		if typ := readMQTTPacket(t, c); typ>>4 != 9 {
			t.Fatalf("packet type %d, want SUBACK", typ>>4)
		}
		c.SetReadDeadline(time.Time{})
		if read {
			go io.Copy(io.Discard, c) // reads every PUBLISH, acknowledges none
		}
	}
	device("never-acks", true)
	device("never-reads", false)
	h2c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8}, Timeout: requestTimeout}
	command := func(dev string) error {
		r, err := h2c.Post(gw.base+"/v1/devices/"+dev+"/commands", "application/json", strings.NewReader(`{"led":"`+strings.Repeat("x", 512)+`"}`))
		if err != nil {
			return err
		}
		io.Copy(io.Discard, r.Body)
		r.Body.Close()
		if r.StatusCode != http.StatusAccepted {
			return fmt.Errorf("command to %s: %d", dev, r.StatusCode)
		}
		return nil
	}
	s := serveNormally(t, func() error { return command("someone-else") })
	for i := range 1200 {
		for _, dev := range []string{"never-acks", "never-reads"} {
			if err := command(dev); err != nil {
				t.Fatalf("command %d: %v", i, err)
			}
		}
	}
	for _, dev := range []string{"never-acks", "never-reads"} {
		warned := regexp.MustCompile(`client store quota reached.*"client":"` + dev + `".*"dropped":1\b`)
		waitFor(t, "a warning in the log that "+dev+"'s messages in flight hit their bound", func() bool {
			return warned.MatchString(gw.stderr.String())
		})
	}
	// Every drop is counted; the log has a device's 1st, 2nd, 4th... only.
	waitFor(t, "the drops counted", func() bool {
		return metricSum(t, admin, "rosetta_mqtt_messages_dropped_total") >= 2
	})
	if n := strings.Count(gw.stderr.String(), "client store quota reached"); n > 2*11 {
		t.Errorf("%d warnings for dropped messages; want at most 11 a device (1, 2, 4, ... 1024)", n)
	}
	// A normal device still gets its commands.
	got := subscribe(t, broker, "mqttv5", "devices/fine/commands")
	if err := command("fine"); err != nil {
		t.Fatal(err)
	}
	got.next(t, 1)
	s.end("MQTT devices that never read or never acknowledge")
	t.Logf("gateway RSS %d KiB", rssKiB(t, gw))
}
