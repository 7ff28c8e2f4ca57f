package test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	ws "github.com/coder/websocket"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	libraryv1 "github.com/rosettagw/rosetta/proto/example/library/v1"
)

// chainRoutes reach ListBooks (and Ping) every way there is: a policy named
// on the two guarded routes must guard the methods on all of them.
const chainRoutes = `mqtt: {allow_anonymous: true}
routes:
  - get: /v1/guarded/{parent=shelves/*}/books
    call: example.library.v1.LibraryService/ListBooks
    policies: [%[1]s]
  - post: /v1/guarded/ping
    call: example.library.v1.LibraryService/Ping
    policies: [%[1]s]
  - mqtt: library/{min_price_cents}/list
    call: example.library.v1.LibraryService/ListBooks
    reply: library/{min_price_cents}/reply
  - post: /v1/aggregate/books
    aggregate:
      input: example.library.v1.ListBooksRequest
      steps:
        - name: list
          call: example.library.v1.LibraryService/ListBooks
          upstream: library
          request: {parent: input.parent, page_size: input.page_size}
      respond: {fields: {books: list.books}}
`

// way is one way of reaching the guarded methods; it reports whether the
// call was answered with success, and what the answer was.
type way struct {
	name string
	call func(t *testing.T, gw *rosetta, broker string, h map[string]string, pageSize int) (ok bool, answer string)
}

// httpWay is a way over plain HTTP: success is a 2xx.
func httpWay(name, method, path, body string, extra map[string]string) way {
	return way{name, func(t *testing.T, gw *rosetta, _ string, h map[string]string, pageSize int) (bool, string) {
		hdr := map[string]string{}
		for k, v := range h {
			hdr[k] = v
		}
		for k, v := range extra {
			hdr[k] = v
		}
		p, b := path, body
		if strings.Contains(p, "?") || method == "GET" {
			p += fmt.Sprintf("%spage_size=%d", map[bool]string{true: "&", false: "?"}[strings.Contains(p, "?")], pageSize)
		}
		b = strings.ReplaceAll(b, "PAGE_SIZE", strconv.Itoa(pageSize))
		r := do(t, gw.base, request{method: method, path: p, body: b, header: hdr})
		return r.status/100 == 2, fmt.Sprintf("HTTP %d %s", r.status, r.body)
	}}
}

// grpcWay is native gRPC to the gateway's address addr returns (its shared
// listener, or listen.grpc).
func grpcWay(name string, addr func(gw *rosetta) string) way {
	return way{name, func(t *testing.T, gw *rosetta, _ string, h map[string]string, pageSize int) (bool, string) {
		conn, err := grpc.NewClient(addr(gw), grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
		defer cancel()
		for k, v := range h {
			ctx = metadata.AppendToOutgoingContext(ctx, strings.ToLower(k), v)
		}
		var resp libraryv1.ListBooksResponse
		err = conn.Invoke(ctx, "/example.library.v1.LibraryService/ListBooks", &libraryv1.ListBooksRequest{Parent: "shelves/1", PageSize: int32(pageSize)}, &resp)
		return err == nil, fmt.Sprint(status.Convert(err).Code(), " ", err)
	}}
}

// chainWays are the ways to the guarded methods: each REST binding, the
// auto-mapped POST, gRPC (on both listeners), gRPC-Web, Connect,
// WebSocket, MQTT and an aggregate step.
var chainWays = []way{
	httpWay("REST annotation binding", "GET", "/v1/shelves/1/books", "", nil),
	httpWay("REST route naming the policy", "GET", "/v1/guarded/shelves/1/books", "", nil),
	httpWay("auto-mapped POST (Ping)", "POST", "/example.library.v1.LibraryService/Ping", `{"message":"hi"}`, nil),
	httpWay("Connect", "POST", "/example.library.v1.LibraryService/ListBooks", `{"parent":"shelves/1","pageSize":PAGE_SIZE}`,
		map[string]string{"Connect-Protocol-Version": "1"}),
	httpWay("aggregate step", "POST", "/v1/aggregate/books", `{"parent":"shelves/1","pageSize":PAGE_SIZE}`, nil),
	grpcWay("gRPC", func(gw *rosetta) string { return strings.TrimPrefix(gw.base, "http://") }),
	grpcWay("gRPC on listen.grpc", func(gw *rosetta) string { return gw.grpc }),
	{"gRPC-Web", func(t *testing.T, gw *rosetta, _ string, h map[string]string, pageSize int) (bool, string) {
		msg, _ := proto.Marshal(&libraryv1.ListBooksRequest{Parent: "shelves/1", PageSize: int32(pageSize)})
		hdr := map[string]string{"Content-Type": "application/grpc-web+proto", "X-Grpc-Web": "1"}
		for k, v := range h {
			hdr[k] = v
		}
		o := grpcWebOutcome(t, post(t, gw, "ListBooks", append(envelope(msg), msg...), hdr))
		return o.code == codes.OK, fmt.Sprintf("%v %s", o.code, o.answer)
	}},
	{"WebSocket", func(t *testing.T, gw *rosetta, _ string, h map[string]string, pageSize int) (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
		defer cancel()
		hdr := http.Header{}
		for k, v := range h {
			hdr.Set(k, v)
		}
		conn, resp, err := ws.Dial(ctx, wsURL(gw, "ListBooks"), &ws.DialOptions{Subprotocols: []string{"rosetta.json"}, HTTPHeader: hdr})
		if err != nil {
			code := 0
			if resp != nil {
				code = resp.StatusCode
			}
			return false, fmt.Sprintf("upgrade refused: HTTP %d", code)
		}
		defer conn.CloseNow()
		if err := conn.Write(ctx, ws.MessageText, fmt.Appendf(nil, `{"parent":"shelves/1","pageSize":%d}`, pageSize)); err != nil {
			return false, err.Error()
		}
		var frames []string
		for {
			_, data, err := conn.Read(ctx)
			if err != nil {
				return ws.CloseStatus(err) == ws.StatusNormalClosure, strings.Join(frames, " ") + " " + err.Error()
			}
			frames = append(frames, string(data))
		}
	}},
	{"MQTT", func(t *testing.T, gw *rosetta, broker string, h map[string]string, pageSize int) (bool, string) {
		args := []string{"-q", "1", "-i", "chain-device", "-t", "library/0/list", "-m", fmt.Sprintf(`{"parent":"shelves/1","pageSize":%d}`, pageSize)}
		for k, v := range h {
			args = append(args, "-D", "PUBLISH", "user-property", strings.ToLower(k), v)
		}
		out, _ := publish(t, broker, "mqttv5", args...)
		m := regexp.MustCompile(`PUBACK \(Mid: \d+, RC:(\d+)`).FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("mosquitto_pub shows no PUBACK:\n%s", out)
		}
		rc, _ := strconv.Atoi(m[1])
		return rc < 0x80, "PUBACK reason code " + m[1]
	}},
}

// TestPolicyGuardsEveryWay names one policy of each kind on two routes only
// (a REST route to ListBooks and one to Ping) and reaches the methods every
// other way: each way is refused, and the upstream sees no call. Without
// the policy every way succeeds, so a refusal is the policy's doing.
func TestPolicyGuardsEveryWay(t *testing.T) {
	t.Parallel()
	needTool(t, "mosquitto_pub")
	dir := t.TempDir()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	pubFile := filepath.Join(dir, "jwt.pem")
	if err := os.WriteFile(pubFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	apiKey := "reader-key-1"
	sum := sha256.Sum256([]byte(apiKey))
	keys := fmt.Sprintf("{api_key: {keys: [{sha256: %s, identity: reader, scopes: [read]}]}}", hex.EncodeToString(sum[:]))

	kinds := []struct {
		name     string
		guard    string            // the policies the guarded routes name
		policies string            // the policies section
		header   map[string]string // sent every way
		pageSize int               // of ListBooks requests
		warm     bool              // one call is let through first (a rate limit's burst)
		ok       bool              // every way succeeds
	}{
		{name: "none", guard: "", policies: "{}", pageSize: 2, ok: true},
		{name: "ip_filter", guard: "guard", policies: `{guard: {ip_filter: {deny: [127.0.0.0/8, "::1"]}}}`, pageSize: 2},
		{name: "jwt", guard: "guard", policies: fmt.Sprintf("{guard: {jwt: {issuer: https://id.test, audience: [rosetta], algorithms: [ES256], key_files: [%q]}}}", pubFile), pageSize: 2},
		{name: "api_key", guard: "guard", policies: "{guard: " + keys + "}", pageSize: 2},
		{name: "mtls", guard: "guard", policies: "{guard: {mtls: {}}}", pageSize: 2},
		{name: "authorize", guard: "key, admins", policies: "{key: " + keys + ", admins: {authorize: {scopes: [admin]}}}", header: map[string]string{"X-Api-Key": apiKey}, pageSize: 2},
		{name: "rate_limit", guard: "guard", policies: "{guard: {rate_limit: {rate: 1/h, burst: 1, key: global}}}", pageSize: 2, warm: true},
		{name: "cors", guard: "guard", policies: `{guard: {cors: {allowed_origins: ["https://app.example"]}}}`, header: map[string]string{"Origin": "https://evil.example"}, pageSize: 2},
		{name: "validation", guard: "", policies: "{}", pageSize: 1000},
	}
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			t.Parallel()
			up := startObservedUpstream(t, "")
			broker := freePort(t)
			routes := fmt.Sprintf(chainRoutes, k.guard)
			gw := startRosettaGRPC(t, fmt.Sprintf("mqtt: %q", broker), libraryConfig(descriptorSetSchema(), up.addr, "    auto_mapping: true\n", routes+"policies: "+k.policies+"\n"))
			waitFor(t, "the embedded broker", func() bool {
				c, err := net.Dial("tcp", broker)
				if err == nil {
					c.Close()
				}
				return err == nil
			})
			if k.warm {
				if r := get(t, gw.base, "/v1/guarded/shelves/1/books"); r.status != http.StatusOK {
					t.Fatalf("the first call, within the burst: %d %s", r.status, r.body)
				}
			}
			before := up.callCount()
			for _, w := range chainWays {
				if k.name == "validation" && strings.Contains(w.name, "Ping") {
					continue // Ping's request has no rule
				}
				ok, answer := w.call(t, gw, broker, k.header, k.pageSize)
				if ok != k.ok {
					t.Errorf("%s: success = %v, want %v (%s)", w.name, ok, k.ok, answer)
				}
			}
			after := up.callCount()
			if k.ok && after == before {
				t.Errorf("the upstream saw no call, want one per way")
			}
			if !k.ok && after != before {
				t.Errorf("the upstream saw %d calls, want none", after-before)
			}
		})
	}
}

// TestCORSPolicyOnEveryBrowserProtocol names a cors policy on one route to
// ListBooks: a preflight for the method's other ways (its annotation
// binding, gRPC-Web and Connect at the method's path) is answered from that
// policy, custom request headers included, and a WebSocket from an allowed
// origin opens while one from another origin does not.
func TestCORSPolicyOnEveryBrowserProtocol(t *testing.T) {
	t.Parallel()
	up := startObservedUpstream(t, "")
	broker := freePort(t)
	routes := fmt.Sprintf(chainRoutes, "browser")
	gw := startRosettaListen(t, fmt.Sprintf("mqtt: %q", broker), libraryConfig(descriptorSetSchema(), up.addr, "", routes+
		`policies: {browser: {cors: {allowed_origins: ["http://localhost:*"], allowed_headers: [x-tenant-id], exposed_headers: [x-request-id]}}}`+"\n"))
	for _, p := range []struct{ method, path string }{
		{"GET", "/v1/shelves/1/books"},
		{"POST", "/example.library.v1.LibraryService/ListBooks"},
	} {
		r := do(t, gw.base, request{method: "OPTIONS", path: p.path, header: map[string]string{
			"Origin": "http://localhost:5173", "Access-Control-Request-Method": p.method,
			"Access-Control-Request-Headers": "x-tenant-id, x-grpc-web, connect-protocol-version, content-type",
		}})
		if r.status != http.StatusNoContent || r.header.Get("Access-Control-Allow-Origin") != "http://localhost:5173" ||
			!strings.Contains(r.header.Get("Access-Control-Allow-Headers"), "x-tenant-id") {
			t.Errorf("preflight %s %s: %d %v %s", p.method, p.path, r.status, r.header, r.body)
		}
		r = do(t, gw.base, request{method: "OPTIONS", path: p.path, header: map[string]string{
			"Origin": "https://evil.example", "Access-Control-Request-Method": p.method,
		}})
		if r.status != http.StatusForbidden || r.header.Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("preflight from another origin %s %s: %d %v", p.method, p.path, r.status, r.header)
		}
	}
	for origin, want := range map[string]bool{"http://localhost:5173": true, "https://evil.example": false} {
		ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
		conn, resp, err := ws.Dial(ctx, wsURL(gw, "ListBooks"), &ws.DialOptions{Subprotocols: []string{"rosetta.json"}, HTTPHeader: http.Header{"Origin": {origin}}})
		cancel()
		if (err == nil) != want {
			code := 0
			if resp != nil {
				code = resp.StatusCode
			}
			t.Errorf("WebSocket from %s: opened = %v, want %v (HTTP %d)", origin, err == nil, want, code)
		}
		if conn != nil {
			conn.CloseNow()
		}
	}
}

// TestHiddenMethods: which methods a service serves is one decision per
// method: a method hidden by hide_methods (or left out of methods) is
// reached on no protocol, and a route may not call it; auto_mapping decides
// a REST path only.
func TestHiddenMethods(t *testing.T) {
	t.Parallel()
	up := startObservedUpstream(t, "")
	gw := startRosetta(t, libraryConfig(descriptorSetSchema(), up.addr, "    hide_methods: [GetShelf, Ping]\n", ""))
	if r := get(t, gw.base, "/v1/shelves/1"); r.status != http.StatusNotFound {
		t.Errorf("REST: %d %s, want 404", r.status, r.body)
	}
	if r := do(t, gw.base, request{method: "POST", path: "/example.library.v1.LibraryService/GetShelf", body: `{"name":"shelves/1"}`,
		header: map[string]string{"Connect-Protocol-Version": "1"}}); r.status != http.StatusNotFound {
		t.Errorf("Connect: %d %s, want 404", r.status, r.body)
	}
	conn := gw.grpcConn(t)
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()
	if _, err := libraryv1.NewLibraryServiceClient(conn).GetShelf(ctx, &libraryv1.GetShelfRequest{Name: "shelves/1"}); status.Code(err) != codes.Unimplemented {
		t.Errorf("gRPC: %v, want UNIMPLEMENTED", err)
	}
	wctx, wcancel := context.WithTimeout(context.Background(), requestTimeout)
	defer wcancel()
	if _, resp, err := ws.Dial(wctx, wsURL(gw, "GetShelf"), &ws.DialOptions{Subprotocols: []string{"rosetta.json"}}); err == nil || resp == nil || resp.StatusCode != http.StatusNotFound {
		t.Errorf("WebSocket: %v, want a 404 refusal", err)
	}
	if up.callCount() != 0 {
		t.Errorf("the upstream saw %d calls of hidden methods", up.callCount())
	}
	// The others are served; a route to a hidden method is refused.
	if r := get(t, gw.base, "/v1/shelves/1/books/dune"); r.status != http.StatusOK {
		t.Errorf("GetBook: %d %s", r.status, r.body)
	}
	path := writeConfig(t, libraryConfig(descriptorSetSchema(), up.addr, "    hide_methods: [GetShelf, Nope]\n", `routes:
  - get: /v2/{name=shelves/*}
    call: example.library.v1.LibraryService/GetShelf
`))
	code, _, stderr := runRosetta(t, "check", "-config", path)
	if code != 1 || !strings.Contains(stderr, `no method "Nope"`) || !strings.Contains(stderr, "does not serve the method") {
		t.Errorf("check: exit %d\n%s", code, stderr)
	}
}
