package test

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/rosettagw/rosetta/examples/library"
	libraryv1 "github.com/rosettagw/rosetta/proto/example/library/v1"
)

// observedUpstream is the example LibraryService served in the test process,
// behind an interceptor that records the metadata of each call, sends
// response metadata of its own and can hold a call until released. The
// library-server binary neither echoes nor sets metadata, so forwarding can
// only be observed this way.
type observedUpstream struct {
	addr string

	mu    sync.Mutex
	calls map[string][]metadata.MD   // by full method
	reqs  map[string][]proto.Message // the request of each call, by full method

	// entered receives the method of each call the interceptor holds;
	// release lets held calls go on.
	hold    string
	entered chan string
	release chan struct{}
}

func startObservedUpstream(t testing.TB, hold string) *observedUpstream {
	t.Helper()
	u := &observedUpstream{calls: map[string][]metadata.MD{}, reqs: map[string][]proto.Message{}, hold: hold, entered: make(chan string, 4), release: make(chan struct{})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u.addr = ln.Addr().String()
	srv := grpc.NewServer(grpc.UnaryInterceptor(u.intercept))
	library.Register(srv)
	go srv.Serve(ln)
	t.Cleanup(srv.Stop)
	return u
}

func (u *observedUpstream) intercept(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	u.mu.Lock()
	u.calls[info.FullMethod] = append(u.calls[info.FullMethod], md.Copy())
	if m, ok := req.(proto.Message); ok {
		u.reqs[info.FullMethod] = append(u.reqs[info.FullMethod], proto.Clone(m))
	}
	u.mu.Unlock()
	// Sent at once, so that the header reaches the gateway even when the
	// call then fails.
	_ = grpc.SendHeader(ctx, metadata.Pairs("x-upstream-header", "h1"))
	_ = grpc.SetTrailer(ctx, metadata.Pairs("x-upstream-trailer", "t1"))
	if r, ok := req.(*libraryv1.GetShelfRequest); ok && r.GetName() == "shelves/teapot" {
		st, err := status.New(codes.FailedPrecondition, "shelf is a teapot").WithDetails(
			&errdetails.ErrorInfo{Reason: "TEAPOT", Domain: "library.example", Metadata: map[string]string{"shelf": "teapot"}},
			&libraryv1.Shelf{Name: "shelves/teapot", Theme: "kitchen"})
		if err != nil {
			return nil, err
		}
		return nil, st.Err()
	}
	if info.FullMethod == u.hold {
		u.entered <- info.FullMethod
		select {
		case <-u.release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return handler(ctx, req)
}

// last returns the metadata of the latest call of method.
func (u *observedUpstream) last(t testing.TB, method string) metadata.MD {
	t.Helper()
	u.mu.Lock()
	defer u.mu.Unlock()
	calls := u.calls[method]
	if len(calls) == 0 {
		t.Fatalf("the upstream saw no call of %s", method)
	}
	return calls[len(calls)-1]
}

// lastRequest returns the request message of the latest call of method.
func (u *observedUpstream) lastRequest(t testing.TB, method string) proto.Message {
	t.Helper()
	u.mu.Lock()
	defer u.mu.Unlock()
	reqs := u.reqs[method]
	if len(reqs) == 0 {
		t.Fatalf("the upstream saw no call of %s", method)
	}
	return reqs[len(reqs)-1]
}

// TestMetadata checks what the gateway forwards upstream as gRPC metadata
// and what it returns of the upstream's response metadata.
func TestMetadata(t *testing.T) {
	t.Parallel()
	up := startObservedUpstream(t, "")
	gw := startRosetta(t, libraryConfig(descriptorSetSchema(), up.addr, "", ""))
	const getShelf = "/example.library.v1.LibraryService/GetShelf"
	host := gw.base[len("http://"):]

	r := do(t, gw.base, request{method: "GET", path: "/v1/shelves/1", header: map[string]string{
		"Grpc-Metadata-Foo": "bar",
		"X-Request-Id":      "req-42",
		"Authorization":     "Bearer token",
		"Traceparent":       "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
		"X-Secret":          "not forwarded",
		"X-Forwarded-For":   "203.0.113.9",
	}})
	wantJSON(t, r, `{"name":"shelves/1","theme":"fiction","bookCount":4}`)
	md := up.last(t, getShelf)
	for k, want := range map[string][]string{
		"foo":              {"bar"},
		"x-request-id":     {"req-42"},
		"authorization":    nil, // no policy verified it: never forwarded (issue 14)
		"traceparent":      {"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
		"x-forwarded-for":  {"203.0.113.9, 127.0.0.1"},
		"x-forwarded-host": {host},
	} {
		if got := md.Get(k); !reflect.DeepEqual(got, want) {
			t.Errorf("upstream metadata %q = %q, want %q", k, got, want)
		}
	}
	for _, k := range []string{"x-secret", "grpc-metadata-foo"} {
		if got := md.Get(k); len(got) > 0 {
			t.Errorf("upstream metadata %q = %q, want it not forwarded", k, got)
		}
	}
	if got := r.header.Get("Grpc-Metadata-X-Upstream-Header"); got != "h1" {
		t.Errorf("response header Grpc-Metadata-X-Upstream-Header %q, want %q (the upstream's header metadata)", got, "h1")
	}
	if got := r.header.Get("Grpc-Metadata-X-Upstream-Trailer"); got != "t1" {
		t.Errorf("response header Grpc-Metadata-X-Upstream-Trailer %q, want %q (the upstream's trailer metadata)", got, "t1")
	}

	t.Run("on error", func(t *testing.T) {
		// grpc-gateway returns the upstream's header metadata with an error
		// answer too; so should Rosetta.
		r := do(t, gw.base, request{method: "GET", path: "/v1/shelves/404", header: map[string]string{"X-Request-Id": "req-43"}})
		wantStatus(t, r, http.StatusNotFound, codeNotFound, "")
		if got := up.last(t, getShelf).Get("x-request-id"); !reflect.DeepEqual(got, []string{"req-43"}) {
			t.Errorf("upstream metadata x-request-id = %q, want [req-43]", got)
		}
		if got := r.header.Get("Grpc-Metadata-X-Upstream-Header"); got != "h1" {
			t.Errorf("error answer: Grpc-Metadata-X-Upstream-Header %q, want %q", got, "h1")
		}
	})

	t.Run("error details", func(t *testing.T) {
		// The upstream's google.rpc.Status details reach the client, as
		// JSON with their @type: a standard error detail and a type of the
		// loaded schema.
		r := get(t, gw.base, "/v1/shelves/teapot")
		wantStatus(t, r, http.StatusBadRequest, 9, "")
		got := decodeJSON(t, "error", r.body)
		want := decodeJSON(t, "expected", []byte(`{"code": 9, "message": "shelf is a teapot", "details": [
			{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "TEAPOT", "domain": "library.example", "metadata": {"shelf": "teapot"}},
			{"@type": "type.googleapis.com/example.library.v1.Shelf", "name": "shelves/teapot", "theme": "kitchen"}]}`))
		if !reflect.DeepEqual(got, want) {
			t.Errorf("error body\n got: %s\nwant: %s", pretty(got), pretty(want))
		}
	})

	t.Run("forward_headers", func(t *testing.T) {
		gw := startRosetta(t, libraryConfig(descriptorSetSchema(), up.addr, "", "http: {forward_headers: [X-Tenant]}\n"))
		r := do(t, gw.base, request{method: "GET", path: "/v1/shelves/2", header: map[string]string{
			"X-Tenant": "acme", "X-Request-Id": "req-44", "Grpc-Metadata-Foo": "baz",
		}})
		wantJSON(t, r, `{"name":"shelves/2","theme":"science","bookCount":4}`)
		md := up.last(t, getShelf)
		if got := md.Get("x-tenant"); !reflect.DeepEqual(got, []string{"acme"}) {
			t.Errorf("x-tenant = %q, want [acme]", got)
		}
		if got := md.Get("foo"); !reflect.DeepEqual(got, []string{"baz"}) {
			t.Errorf("foo (from Grpc-Metadata-Foo) = %q, want [baz]", got)
		}
		if got := md.Get("x-request-id"); len(got) > 0 {
			t.Errorf("x-request-id = %q: forward_headers replaces the default list, so it should not be forwarded", got)
		}
	})
}

// TestGracefulShutdown sends SIGTERM while a call is in flight: the gateway
// stops accepting connections, lets the call finish and exits with status 0.
func TestGracefulShutdown(t *testing.T) {
	t.Parallel()
	const ping = "/example.library.v1.LibraryService/Ping"
	up := startObservedUpstream(t, ping)
	gw := startRosetta(t, libraryConfig(descriptorSetSchema(), up.addr, "    auto_mapping: true\n", "shutdown_timeout: 10s\n"))

	type result struct {
		r   *response
		err error
	}
	done := make(chan result, 1)
	go func() {
		req, _ := http.NewRequest("POST", gw.base+"/example.library.v1.LibraryService/Ping", strings.NewReader(`{"message":"draining"}`))
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			done <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b := make([]byte, 0, 256)
		buf := make([]byte, 256)
		for {
			n, err := resp.Body.Read(buf)
			b = append(b, buf[:n]...)
			if err != nil {
				break
			}
		}
		done <- result{r: &response{status: resp.StatusCode, header: resp.Header, body: b}}
	}()
	select {
	case <-up.entered:
	case <-time.After(startTimeout):
		t.Fatal("the call did not reach the upstream")
	}
	gw.stopping = true
	if err := gw.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// New connections are refused once the listener is closed.
	waitFor(t, "the gateway to refuse connections after SIGTERM", func() bool {
		c, err := net.DialTimeout("tcp", gw.base[len("http://"):], time.Second)
		if err != nil {
			return true
		}
		c.Close()
		return false
	})
	if gw.exited() {
		t.Fatal("the gateway exited with a call in flight")
	}
	close(up.release)
	select {
	case res := <-done:
		if res.err != nil {
			t.Fatalf("in-flight call failed: %v", res.err)
		}
		wantJSON(t, res.r, `{"message":"draining"}`, "time")
	case <-time.After(requestTimeout):
		t.Fatal("the in-flight call did not finish")
	}
	if code := gw.stop(t); code != 0 {
		t.Errorf("rosetta exited with status %d, want 0\nstderr:\n%s", code, gw.stderr)
	}
}

// TestMetadataGRPCFamily checks that native gRPC, gRPC-Web and Connect pass
// the caller's metadata upstream whatever its name (the REST allow-list,
// here forward_headers: [X-Tenant], does not apply to them), less the keys
// of the hop, and return the upstream's header and trailer metadata, on
// success and on error. REST keeps its allow-list.
func TestMetadataGRPCFamily(t *testing.T) {
	t.Parallel()
	up := startObservedUpstream(t, "")
	gw := startRosetta(t, libraryConfig(descriptorSetSchema(), up.addr, "", "http: {forward_headers: [X-Tenant]}\n"))
	const getShelf = "/example.library.v1.LibraryService/GetShelf"
	host := gw.base[len("http://"):]
	// wantForwarded asserts what the upstream saw of the latest call.
	wantForwarded := func(t *testing.T) {
		t.Helper()
		md := up.last(t, getShelf)
		for k, want := range map[string][]string{
			"x-something":      {"value"},
			"x-multi":          {"a", "b"},
			"authorization":    nil, // no policy verified it: never forwarded (issue 14)
			"x-forwarded-for":  {"127.0.0.1"},
			"x-forwarded-host": {host},
		} {
			if got := md.Get(k); !reflect.DeepEqual(got, want) {
				t.Errorf("upstream metadata %q = %q, want %q", k, got, want)
			}
		}
		// What the upstream sees of these is the gateway's own call.
		for k, hop := range map[string]string{"grpc-timeout": "", "x-grpc-web": "1", "connect-protocol-version": "1", "connect-timeout-ms": "5000", "user-agent": "test-client"} {
			for _, v := range md.Get(k) {
				if hop != "" && strings.Contains(v, hop) {
					t.Errorf("upstream metadata %q = %q: the client's own went upstream", k, md.Get(k))
				}
			}
		}
	}

	t.Run("gRPC", func(t *testing.T) {
		conn, err := grpc.NewClient(host, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithUserAgent("test-client"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		client := libraryv1.NewLibraryServiceClient(conn)
		ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
		defer cancel()
		ctx = metadata.AppendToOutgoingContext(ctx, "x-something", "value", "x-multi", "a", "x-multi", "b", "authorization", "Bearer t")
		var header, trailer metadata.MD
		shelf, err := client.GetShelf(ctx, &libraryv1.GetShelfRequest{Name: "shelves/1"}, grpc.Header(&header), grpc.Trailer(&trailer))
		if err != nil || shelf.GetTheme() != "fiction" {
			t.Fatalf("GetShelf: %v, %v", shelf, err)
		}
		wantForwarded(t)
		if got := header.Get("x-upstream-header"); !reflect.DeepEqual(got, []string{"h1"}) {
			t.Errorf("response header x-upstream-header %q, want [h1]", got)
		}
		if got := trailer.Get("x-upstream-trailer"); !reflect.DeepEqual(got, []string{"t1"}) {
			t.Errorf("response trailer x-upstream-trailer %q, want [t1]", got)
		}

		header, trailer = nil, nil
		_, err = client.GetShelf(ctx, &libraryv1.GetShelfRequest{Name: "shelves/teapot"}, grpc.Header(&header), grpc.Trailer(&trailer))
		if status.Code(err) != codes.FailedPrecondition {
			t.Fatalf("GetShelf teapot: %v, want FailedPrecondition", err)
		}
		if got := header.Get("x-upstream-header"); !reflect.DeepEqual(got, []string{"h1"}) {
			t.Errorf("error: response header x-upstream-header %q, want [h1]", got)
		}
		if got := trailer.Get("x-upstream-trailer"); !reflect.DeepEqual(got, []string{"t1"}) {
			t.Errorf("error: response trailer x-upstream-trailer %q, want [t1]", got)
		}
	})

	// The client's headers of the gRPC-Web and Connect calls; X-Multi is
	// sent twice by hand below.
	clientHeaders := func(h map[string]string) map[string]string {
		for k, v := range map[string]string{"X-Something": "value", "Authorization": "Bearer t", "User-Agent": "test-client"} {
			h[k] = v
		}
		return h
	}
	send := func(t *testing.T, path string, body []byte, h map[string]string) *response {
		t.Helper()
		req, err := http.NewRequest("POST", gw.base+path, strings.NewReader(string(body)))
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range clientHeaders(h) {
			req.Header.Set(k, v)
		}
		req.Header.Add("X-Multi", "a")
		req.Header.Add("X-Multi", "b")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return &response{status: resp.StatusCode, header: resp.Header, body: b}
	}

	t.Run("gRPC-Web", func(t *testing.T) {
		for _, name := range []string{"shelves/1", "shelves/teapot"} {
			msg, _ := proto.Marshal(&libraryv1.GetShelfRequest{Name: name})
			r := send(t, "/example.library.v1.LibraryService/GetShelf", append(envelope(msg), msg...),
				map[string]string{"Content-Type": "application/grpc-web+proto", "X-Grpc-Web": "1", "Grpc-Timeout": "5S"})
			if r.status != 200 {
				t.Fatalf("%s: status %d: %s", name, r.status, r.body)
			}
			wantForwarded(t)
			if got := r.header.Get("X-Upstream-Header"); got != "h1" {
				t.Errorf("%s: response header X-Upstream-Header %q, want h1", name, got)
			}
			flags, payloads := frames(t, r.body)
			if last := string(payloads[len(payloads)-1]); flags[len(flags)-1]&0x80 == 0 || !strings.Contains(last, "x-upstream-trailer: t1\r\n") {
				t.Errorf("%s: trailer frame %q, want x-upstream-trailer: t1", name, last)
			}
		}
	})

	t.Run("Connect", func(t *testing.T) {
		h := map[string]string{"Content-Type": "application/json", "Connect-Protocol-Version": "1", "Connect-Timeout-Ms": "5000"}
		r := send(t, "/example.library.v1.LibraryService/GetShelf", []byte(`{"name":"shelves/1"}`), h)
		wantJSON(t, r, `{"name":"shelves/1","theme":"fiction","bookCount":4}`)
		wantForwarded(t)
		if got := r.header.Get("X-Upstream-Header"); got != "h1" {
			t.Errorf("response header X-Upstream-Header %q, want h1", got)
		}
		if got := r.header.Get("Trailer-X-Upstream-Trailer"); got != "t1" {
			t.Errorf("response header Trailer-X-Upstream-Trailer %q, want t1", got)
		}

		// A Connect unary error carries the upstream's headers too.
		r = send(t, "/example.library.v1.LibraryService/GetShelf", []byte(`{"name":"shelves/teapot"}`), h)
		var e struct{ Code string }
		if err := json.Unmarshal(r.body, &e); err != nil || r.status != 400 || e.Code != "failed_precondition" {
			t.Fatalf("teapot: %d %s, want 400 failed_precondition (Connect's mapping)", r.status, r.body)
		}
		if got := r.header.Get("X-Upstream-Header"); got != "h1" {
			t.Errorf("error: response header X-Upstream-Header %q, want h1", got)
		}
		if got := r.header.Get("Trailer-X-Upstream-Trailer"); got != "t1" {
			t.Errorf("error: response header Trailer-X-Upstream-Trailer %q, want t1", got)
		}
	})

	t.Run("REST keeps its allow-list", func(t *testing.T) {
		r := do(t, gw.base, request{method: "GET", path: "/v1/shelves/1", header: map[string]string{"X-Something": "value", "X-Tenant": "acme"}})
		wantJSON(t, r, `{"name":"shelves/1","theme":"fiction","bookCount":4}`)
		md := up.last(t, getShelf)
		if got := md.Get("x-something"); len(got) > 0 {
			t.Errorf("REST forwarded x-something %q: not on its allow-list", got)
		}
		if got := md.Get("x-tenant"); !reflect.DeepEqual(got, []string{"acme"}) {
			t.Errorf("REST x-tenant = %q, want [acme]", got)
		}
	})
}
