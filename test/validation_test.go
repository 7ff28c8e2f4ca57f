package test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"

	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	libraryv1 "github.com/rosettagw/rosetta/proto/example/library/v1"
)

// validationCase is a CreateBook request breaking one class of the example
// schema's buf.validate rules, with the violations the gateway must list.
type validationCase struct {
	name string
	// book is the book as JSON; "" leaves the request without one.
	book string
	// want lists every violation as "field reason" (the rule id), sorted.
	want []string
}

// validBook is a book that keeps every rule.
const validBook = `{"title":"Valid","isbn":"978-0441172719","genre":"GENRE_SCIENCE","tags":["sf"],"pageCount":412,"priceCents":"999","reviews":[{"reader":"ann","stars":5}]}`

// validationCases are the classes of violation: pattern, range, required,
// CEL, enum defined_only and repeated items.
var validationCases = []validationCase{
	{"pattern", `{"title":"T","isbn":"0441172719"}`, []string{"book.isbn string.pattern"}},
	{"range", `{"title":"T","pageCount":100001,"priceCents":"-1","reviews":[{"stars":5},{"stars":0}]}`,
		[]string{"book.page_count int32.gte_lte", "book.price_cents int64.gte", "book.reviews[1].stars int32.gte_lte"}},
	{"required", "", []string{"book required"}},
	{"CEL", `{"isbn":"978-0441172719"}`, []string{"book book.title_required"}},
	{"enum defined_only", `{"title":"T","genre":99}`, []string{"book.genre enum.defined_only"}},
	{"repeated items", `{"title":"T","tags":["ok","","` + strings.Repeat("x", 41) + `"]}`,
		[]string{"book.tags[1] string.min_len", "book.tags[2] string.max_len"}},
	{"repeated max_items", `{"title":"T","tags":[` + strings.Repeat(`"t",`, 20) + `"t"]}`, []string{"book.tags repeated.max_items"}},
	{"several at once", `{"isbn":"1","reviews":[{"stars":6}]}`,
		[]string{"book book.title_required", "book.isbn string.pattern", "book.reviews[0].stars int32.gte_lte"}},
}

// createBookRequest is the CreateBook request of a case, in binary form.
func (c validationCase) request(t testing.TB, bookID string) *libraryv1.CreateBookRequest {
	t.Helper()
	req := &libraryv1.CreateBookRequest{Parent: "shelves/1", BookId: bookID}
	if c.book != "" {
		req.Book = &libraryv1.Book{}
		if err := protojson.Unmarshal([]byte(c.book), req.Book); err != nil {
			t.Fatalf("case %s: %v", c.name, err)
		}
	}
	return req
}

// requestJSON is the CreateBook request of a case as JSON.
func (c validationCase) requestJSON(bookID string) string {
	if c.book == "" {
		return fmt.Sprintf(`{"parent":"shelves/1","bookId":%q}`, bookID)
	}
	return fmt.Sprintf(`{"parent":"shelves/1","bookId":%q,"book":%s}`, bookID, c.book)
}

// violations lists the field violations of the google.rpc.BadRequest
// details of a JSON google.rpc.Status as "field reason", sorted; each must
// have a description.
func violations(t testing.TB, st rpcStatus) []string {
	t.Helper()
	var out []string
	for _, d := range st.Details {
		var br struct {
			Type            string `json:"@type"`
			FieldViolations []struct {
				Field, Description, Reason string
			} `json:"fieldViolations"`
		}
		if json.Unmarshal(d, &br) != nil || br.Type != "type.googleapis.com/google.rpc.BadRequest" {
			continue
		}
		for _, v := range br.FieldViolations {
			if v.Description == "" {
				t.Errorf("violation of %s has no description", v.Field)
			}
			out = append(out, v.Field+" "+v.Reason)
		}
	}
	slices.Sort(out)
	return out
}

// wantViolations asserts an INVALID_ARGUMENT google.rpc.Status (JSON) with
// exactly the violations want.
func wantViolations(t testing.TB, st rpcStatus, want []string) {
	t.Helper()
	if st.Code != codeInvalidArgument {
		t.Errorf("code %d, want INVALID_ARGUMENT (%s)", st.Code, st.Message)
	}
	if got := violations(t, st); !reflect.DeepEqual(got, want) {
		t.Errorf("violations\n got: %q\nwant: %q\n(message %q)", got, want, st.Message)
	}
}

// wantUnchanged asserts that the upstream saw no call since before.
func wantUnchanged(t testing.TB, up *observedUpstream, before int) {
	t.Helper()
	if n := up.callCount(); n != before {
		t.Errorf("the upstream saw %d calls, want %d: a refused request reached it", n, before)
	}
}

// TestValidationREST sends valid and invalid requests over REST: each
// invalid one is refused with 400 INVALID_ARGUMENT listing exactly its
// violations, and the upstream never sees it.
func TestValidationREST(t *testing.T) {
	t.Parallel()
	up := startObservedUpstream(t, "")
	// The annotated route's body is the book, which it therefore always
	// sets; a route taking the whole request can leave it out.
	gw := startRosetta(t, libraryConfig(descriptorSetSchema(), up.addr, "", `routes:
  - post: /v1/books:create
    call: example.library.v1.LibraryService/CreateBook
    body: "*"
`))

	t.Run("valid", func(t *testing.T) {
		before := up.callCount()
		r := do(t, gw.base, request{method: "POST", path: "/v1/shelves/1/books?bookId=rest-ok", body: validBook})
		obj := wantJSON(t, r, validBook, "name", "updateTime")
		if obj["name"] != "shelves/1/books/rest-ok" {
			t.Errorf("created %v, want shelves/1/books/rest-ok", obj["name"])
		}
		if n := up.callCount(); n != before+1 {
			t.Errorf("the upstream saw %d calls, want %d", n, before+1)
		}
		wantJSON(t, get(t, gw.base, "/v1/shelves/1/books?pageSize=100"), `{}`, "books", "nextPageToken", "totalSize")
	})
	for _, c := range validationCases {
		t.Run(c.name, func(t *testing.T) {
			before := up.callCount()
			req := request{method: "POST", path: "/v1/shelves/1/books?bookId=rest-bad", body: c.book}
			if c.book == "" {
				req = request{method: "POST", path: "/v1/books:create", body: c.requestJSON("rest-bad")}
			}
			r := do(t, gw.base, req)
			wantViolations(t, *wantStatus(t, r, http.StatusBadRequest, codeInvalidArgument, ""), c.want)
			wantUnchanged(t, up, before)
		})
	}
	t.Run("query parameter", func(t *testing.T) {
		before := up.callCount()
		r := get(t, gw.base, "/v1/shelves/1/books?pageSize=101")
		wantViolations(t, *wantStatus(t, r, http.StatusBadRequest, codeInvalidArgument, ""), []string{"page_size int32.gte_lte"})
		wantUnchanged(t, up, before)
	})
	t.Run("nothing created", func(t *testing.T) {
		wantStatus(t, get(t, gw.base, "/v1/shelves/1/books/rest-bad"), http.StatusNotFound, codeNotFound, "")
	})
}

// TestValidationWebSocket checks each message of a WebSocket call: an
// invalid one ends the call with the final status INVALID_ARGUMENT listing
// its violations and close code 4003, and never reaches the upstream.
func TestValidationWebSocket(t *testing.T) {
	t.Parallel()
	up := startObservedUpstream(t, "")
	gw := startRosetta(t, libraryConfig(descriptorSetSchema(), up.addr, "", ""))

	t.Run("valid", func(t *testing.T) {
		before := up.callCount()
		c := dialWS(t, gw, "CreateBook", nil)
		c.send(validationCase{book: validBook}.requestJSON("ws-ok"))
		c.closeSend()
		if r := result(t, c.recv()); r["name"] != "shelves/1/books/ws-ok" {
			t.Errorf("CreateBook = %v", r)
		}
		c.finish(codes.OK)
		if n := up.callCount(); n != before+1 {
			t.Errorf("the upstream saw %d calls, want %d", n, before+1)
		}
	})
	for _, vc := range validationCases {
		t.Run(vc.name, func(t *testing.T) {
			before := up.callCount()
			c := dialWS(t, gw, "CreateBook", nil)
			c.send(vc.requestJSON("ws-bad"))
			wantViolations(t, jsonStatus(t, c.finish(codes.InvalidArgument)), vc.want)
			wantUnchanged(t, up, before)
		})
	}
	t.Run("per message of a stream", func(t *testing.T) {
		// ImportBooks streams CreateBook requests: the valid first one is
		// forwarded (the upstream creates it as it arrives), the invalid
		// second one ends the call and is not. The second is sent only once
		// the first book exists: ending the call cancels the upstream
		// stream, and a first message still on its way would be lost with
		// it (nothing promises the upstream reads it before the cancel).
		c := dialWS(t, gw, "ImportBooks", nil)
		c.send(validationCase{book: validBook}.requestJSON("ws-first"))
		waitFor(t, "the first book", func() bool {
			return do(t, gw.base, request{method: "GET", path: "/v1/shelves/1/books/ws-first"}).status == http.StatusOK
		})
		c.send(validationCases[0].requestJSON("ws-second"))
		wantViolations(t, jsonStatus(t, c.finish(codes.InvalidArgument)), validationCases[0].want)
		wantStatus(t, get(t, gw.base, "/v1/shelves/1/books/ws-second"), http.StatusNotFound, codeNotFound, "")
	})
}

// jsonStatus converts a decoded JSON google.rpc.Status.
func jsonStatus(t testing.TB, st map[string]any) rpcStatus {
	t.Helper()
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	return statusOf(t, string(b))
}

// TestValidationGRPCWeb sends binary gRPC-Web calls: an invalid request
// ends with grpc-status 3 in the trailer frame and the violations in its
// grpc-status-details-bin, and never reaches the upstream.
func TestValidationGRPCWeb(t *testing.T) {
	t.Parallel()
	up := startObservedUpstream(t, "")
	gw := startRosetta(t, libraryConfig(descriptorSetSchema(), up.addr, "", ""))
	call := func(t *testing.T, req proto.Message) (flags []byte, payloads [][]byte) {
		t.Helper()
		msg, _ := proto.Marshal(req)
		r := post(t, gw, "CreateBook", append(envelope(msg), msg...), map[string]string{"Content-Type": "application/grpc-web+proto", "X-Grpc-Web": "1"})
		if r.status != http.StatusOK {
			t.Fatalf("status %d: %s", r.status, r.body)
		}
		return frames(t, r.body)
	}

	t.Run("valid", func(t *testing.T) {
		before := up.callCount()
		flags, payloads := call(t, validationCase{name: "valid", book: validBook}.request(t, "web-ok"))
		if len(flags) != 2 || flags[0] != 0 || flags[1] != 0x80 {
			t.Fatalf("frames %x, want a message and the trailer", flags)
		}
		var b libraryv1.Book
		if err := proto.Unmarshal(payloads[0], &b); err != nil || b.GetName() != "shelves/1/books/web-ok" {
			t.Errorf("book %v, %v", &b, err)
		}
		if !strings.Contains(string(payloads[1]), "grpc-status: 0\r\n") {
			t.Errorf("trailer %q, want grpc-status 0", payloads[1])
		}
		if n := up.callCount(); n != before+1 {
			t.Errorf("the upstream saw %d calls, want %d", n, before+1)
		}
	})
	for _, vc := range validationCases {
		t.Run(vc.name, func(t *testing.T) {
			before := up.callCount()
			flags, payloads := call(t, vc.request(t, "web-bad"))
			if len(flags) != 1 || flags[0] != 0x80 {
				t.Fatalf("frames %x, want the trailer alone", flags)
			}
			wantViolations(t, trailerStatus(t, string(payloads[0])), vc.want)
			wantUnchanged(t, up, before)
		})
	}
}

// TestValidationGRPC sends the invalid requests over native gRPC (status
// INVALID_ARGUMENT with the google.rpc.BadRequest detail) and Connect (400
// invalid_argument): the upstream never sees them.
func TestValidationGRPC(t *testing.T) {
	t.Parallel()
	up := startObservedUpstream(t, "")
	gw := startRosetta(t, libraryConfig(descriptorSetSchema(), up.addr, "", ""))
	conn := gw.grpcConn(t)
	lib := libraryv1.NewLibraryServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()

	before := up.callCount()
	if b, err := lib.CreateBook(ctx, validationCase{name: "valid", book: validBook}.request(t, "grpc-ok")); err != nil || b.GetName() != "shelves/1/books/grpc-ok" {
		t.Fatalf("CreateBook = %v, %v", b, err)
	}
	if n := up.callCount(); n != before+1 {
		t.Errorf("the upstream saw %d calls, want %d", n, before+1)
	}
	for _, vc := range validationCases {
		t.Run("gRPC/"+vc.name, func(t *testing.T) {
			before := up.callCount()
			_, err := lib.CreateBook(ctx, vc.request(t, "grpc-bad"))
			b, _ := protojson.Marshal(status.Convert(err).Proto())
			wantViolations(t, statusOf(t, string(b)), vc.want)
			wantUnchanged(t, up, before)
		})
	}
	t.Run("Connect", func(t *testing.T) {
		before := up.callCount()
		r := post(t, gw, "CreateBook", []byte(validationCases[0].requestJSON("connect-bad")), map[string]string{"Content-Type": "application/json", "Connect-Protocol-Version": "1"})
		var e struct{ Code string }
		if err := json.Unmarshal(r.body, &e); err != nil || r.status != http.StatusBadRequest || e.Code != "invalid_argument" {
			t.Errorf("%d %s, want 400 invalid_argument", r.status, r.body)
		}
		wantUnchanged(t, up, before)
	})
}

// trailerStatus decodes the status of a gRPC-Web trailer frame from its
// grpc-status and grpc-status-details-bin, as JSON.
func trailerStatus(t testing.TB, trailer string) rpcStatus {
	t.Helper()
	var st spb.Status
	code := ""
	for _, line := range strings.Split(trailer, "\r\n") {
		k, v, _ := strings.Cut(line, ": ")
		switch k {
		case "grpc-status":
			code = v
		case "grpc-status-details-bin":
			b, err := base64.RawStdEncoding.DecodeString(v)
			if err != nil {
				t.Fatalf("grpc-status-details-bin: %v", err)
			}
			if err := proto.Unmarshal(b, &st); err != nil {
				t.Fatalf("grpc-status-details-bin: %v", err)
			}
		}
	}
	if code != fmt.Sprint(st.GetCode()) {
		t.Errorf("grpc-status %q, details carry code %d\n%q", code, st.GetCode(), trailer)
	}
	b, err := protojson.Marshal(&st)
	if err != nil {
		t.Fatal(err)
	}
	return statusOf(t, string(b))
}

// TestValidationMQTT publishes CreateBook requests on an uplink rule of the
// embedded broker. A valid one is answered with the book. An invalid one
// never reaches the upstream: an MQTT 5 device gets PUBACK reason code
// 0x99 (payload format invalid, the bridge's answer to INVALID_ARGUMENT);
// an MQTT 3.1.1 device, which has no negative PUBACK, finds the message
// dead-lettered with the violations. Both get the violations as the reply.
func TestValidationMQTT(t *testing.T) {
	t.Parallel()
	up := startObservedUpstream(t, "")
	broker := freePort(t)
	startRosettaListen(t, fmt.Sprintf("mqtt: %q", broker), libraryConfig(descriptorSetSchema(), up.addr, "", anonymous+`
routes:
  - mqtt: library/{book_id}/new
    call: example.library.v1.LibraryService/CreateBook
    reply: library/{book_id}/reply
    dead_letter: library/{book_id}/dead
`))
	waitFor(t, "the embedded broker", func() bool {
		c, err := net.Dial("tcp", broker)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	for _, v := range mqttVersions {
		t.Run(v, func(t *testing.T) {
			id := strings.TrimPrefix(v, "mqtt")
			replies := subscribe(t, broker, v, "library/+/reply")
			dead := subscribe(t, broker, v, "library/+/dead")

			before := up.callCount()
			okID := "mqtt-" + id + "-ok"
			if out, code := publish(t, broker, v, "-q", "1", "-t", "library/"+okID+"/new", "-m", validationCase{book: validBook}.requestJSON("")); code != 0 {
				t.Fatalf("mosquitto_pub: status %d\n%s", code, out)
			}
			var book map[string]any
			if err := json.Unmarshal([]byte(replies.next(t, 1)), &book); err != nil || book["name"] != "shelves/1/books/"+okID {
				t.Fatalf("reply %v (%v), want the book shelves/1/books/%s", book, err, okID)
			}
			if n := up.callCount(); n != before+1 {
				t.Errorf("the upstream saw %d calls, want %d", n, before+1)
			}

			for i, vc := range validationCases {
				t.Run(vc.name, func(t *testing.T) {
					before := up.callCount()
					badID := fmt.Sprintf("mqtt-%s-bad%d", id, i)
					topic := "library/" + badID + "/new"
					payload := vc.requestJSON("")
					out, _ := publish(t, broker, v, "-q", "1", "-t", topic, "-m", payload)
					if v == "mqttv5" && !strings.Contains(out, "received PUBACK (Mid: 1, RC:153)") {
						t.Errorf("PUBACK: want reason code 153 (0x99)\n%s", out)
					}
					var rec struct {
						Topic   string
						Payload []byte
						Error   rpcStatus
					}
					if err := json.Unmarshal([]byte(dead.next(t, i+1)), &rec); err != nil {
						t.Fatal(err)
					}
					if rec.Topic != topic || string(rec.Payload) != payload {
						t.Errorf("dead letter of %s %q, want %s %q", rec.Topic, rec.Payload, topic, payload)
					}
					wantViolations(t, rec.Error, vc.want)
					wantViolations(t, statusOf(t, replies.next(t, i+2)), vc.want)
					wantUnchanged(t, up, before)
				})
			}
		})
	}
}

// TestValidationSwitches turns request validation off for a service and
// for one route: the invalid request then reaches the upstream.
func TestValidationSwitches(t *testing.T) {
	t.Parallel()
	up := startObservedUpstream(t, "")

	t.Run("service off", func(t *testing.T) {
		gw := startRosetta(t, libraryConfig(descriptorSetSchema(), up.addr, "    validation: {requests: false}\n", ""))
		before := up.callCount()
		get(t, gw.base, "/v1/shelves/1/books?pageSize=101")
		if n := up.callCount(); n != before+1 {
			t.Errorf("the upstream saw %d calls, want %d: validation is off for the service", n, before+1)
		}
	})
	t.Run("route off", func(t *testing.T) {
		gw := startRosetta(t, libraryConfig(descriptorSetSchema(), up.addr, "", `routes:
  - get: /v1/unchecked/{parent=shelves/*}/books
    call: example.library.v1.LibraryService/ListBooks
    validation: {requests: false}
`))
		before := up.callCount()
		get(t, gw.base, "/v1/unchecked/shelves/1/books?pageSize=101")
		if n := up.callCount(); n != before+1 {
			t.Errorf("the upstream saw %d calls, want %d: validation is off for the route", n, before+1)
		}
		// A method has one chain: the switch is the method's, on its
		// annotated route too.
		before = up.callCount()
		get(t, gw.base, "/v1/shelves/1/books?pageSize=101")
		if n := up.callCount(); n != before+1 {
			t.Errorf("the upstream saw %d calls, want %d: validation is off for the method", n, before+1)
		}
		// Another method keeps its service's default.
		before = up.callCount()
		r := do(t, gw.base, request{method: "POST", path: "/v1/shelves/1/books", body: `{"title":"t","isbn":"12-34"}`})
		wantStatus(t, r, http.StatusBadRequest, codeInvalidArgument, "")
		wantUnchanged(t, up, before)
	})
	t.Run("service and route disagree", func(t *testing.T) {
		path := writeConfig(t, libraryConfig(descriptorSetSchema(), up.addr, "    validation: {requests: true}\n", `routes:
  - get: /v1/unchecked/{parent=shelves/*}/books
    call: example.library.v1.LibraryService/ListBooks
    validation: {requests: false}
`))
		code, _, stderr := runRosetta(t, "check", "-config", path)
		if code != 1 || !strings.Contains(stderr, "ListBooks") || !strings.Contains(stderr, "validation") {
			t.Errorf("check: exit %d, want 1 naming ListBooks and its validation\n%s", code, stderr)
		}
	})
}

// badBookUpstream is a LibraryService whose GetBook answers a book that
// breaks the schema's rules.
type badBookUpstream struct {
	libraryv1.UnimplementedLibraryServiceServer
}

func (badBookUpstream) GetBook(_ context.Context, req *libraryv1.GetBookRequest) (*libraryv1.Book, error) {
	return &libraryv1.Book{Name: req.GetName(), Title: "Bad", Isbn: "123", Reviews: []*libraryv1.Review{{Stars: 9}}}, nil
}

// TestValidationResponses checks upstream answers against their own rules:
// mode fail answers 500 INTERNAL instead, mode log passes them through;
// both log the violation.
func TestValidationResponses(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	libraryv1.RegisterLibraryServiceServer(srv, badBookUpstream{})
	go srv.Serve(ln)
	t.Cleanup(srv.Stop)

	for _, mode := range []string{"fail", "log"} {
		t.Run(mode, func(t *testing.T) {
			gw := startRosetta(t, libraryConfig(descriptorSetSchema(), ln.Addr().String(), "    validation: {responses: "+mode+"}\n", ""))
			r := get(t, gw.base, "/v1/shelves/1/books/bad")
			if mode == "fail" {
				wantStatus(t, r, http.StatusInternalServerError, int(codes.Internal), "")
			} else {
				wantJSON(t, r, `{"name":"shelves/1/books/bad","title":"Bad","isbn":"123","reviews":[{"stars":9}]}`)
			}
			waitFor(t, "the violation in the log", func() bool {
				return strings.Contains(gw.stderr.String(), "upstream response breaks its schema's rules")
			})
		})
	}
	t.Run("off", func(t *testing.T) {
		gw := startRosetta(t, libraryConfig(descriptorSetSchema(), ln.Addr().String(), "", ""))
		wantJSON(t, get(t, gw.base, "/v1/shelves/1/books/bad"), `{"name":"shelves/1/books/bad","title":"Bad","isbn":"123","reviews":[{"stars":9}]}`)
	})
}
