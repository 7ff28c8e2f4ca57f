package websocket_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	ws "github.com/coder/websocket"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	libraryv1 "github.com/rosettagw/rosetta/proto/example/library/v1"
	"github.com/rosettagw/rosetta/router"
	"github.com/rosettagw/rosetta/translate"
	"github.com/rosettagw/rosetta/transports/websocket"
)

// fuzzMethods are the methods FuzzMessages calls, one of each kind: unary,
// server-, client- and bidirectional streaming.
var fuzzMethods = []string{"GetBook", "StreamBooks", "ImportBooks", "Chat"}

// The bits of the fuzzed input's first byte.
const (
	fuzzProto     = 1 << 0 // the rosetta.proto subprotocol, else rosetta.json
	fuzzMethodBit = 1      // bits 1-2 pick the method in fuzzMethods
	fuzzWrongType = 1 << 3 // send the messages in the frame type the subprotocol does not take
	fuzzNoHalf    = 1 << 4 // end by closing the socket (1000), not by the half-close
)

// fuzzSep separates the messages in the fuzzed input after its first byte.
const fuzzSep = 0x1e

// fuzzMaxMessage is the handler's MaxMessageBytes: small, so that the
// fuzzer reaches the oversize refusal.
const fuzzMaxMessage = 64

// FuzzMessages sends any messages over a WebSocket, in either subprotocol
// and frame type, to a method of each kind, then half-closes (or closes):
// the call never panics, ends within a bound with the final status (a
// google.rpc.Status) and the close code that status promises (1000 for OK,
// 4000 + its code otherwise) unless the client closed first, and its
// goroutine ends (the handler's release runs; TestMain checks for
// goroutines left).
//
// The first input byte holds the fuzzProto, method, fuzzWrongType and
// fuzzNoHalf bits; the rest is the messages, separated by fuzzSep. An
// empty message in a text frame is the half-close.
func FuzzMessages(f *testing.F) {
	seeds := []struct {
		flags byte
		msgs  []string
	}{
		{0 << fuzzMethodBit, []string{`{"name":"shelves/1/books/dune"}`}},
		{1 << fuzzMethodBit, []string{`{"parent":"shelves/1","pageSize":3}`}},
		{2 << fuzzMethodBit, []string{`{"parent":"shelves/1","book":{"title":"Dune"}}`, `{"book":{"title":"Emma"}}`}},
		{3 << fuzzMethodBit, []string{`{"message":"a"}`, `{"message":"b"}`, `{}`}},
		{3<<fuzzMethodBit | fuzzNoHalf, []string{`{"message":"a"}`}},
		{0, []string{`{"name":`}},                                        // malformed
		{1 << fuzzMethodBit, []string{`{"pageSize":"three"}`}},           // a wrong type
		{1 << fuzzMethodBit, []string{`{"pageSize":99999999999999999}`}}, // out of range
		{3 << fuzzMethodBit, []string{`{"message":1e999}`}},
		{0, []string{`[]`}},
		{0, []string{`null`}},
		{0, []string{``}},                                        // the half-close before any message
		{0, []string{`{}`, `{}`}},                                // two messages to a unary method
		{2 << fuzzMethodBit, []string{`{}`, ``, `{}`}},           // a message after the half-close
		{3 << fuzzMethodBit, []string{strings.Repeat("x", 100)}}, // oversize
		{0 | fuzzWrongType, []string{`{"name":"x"}`}},            // JSON in a binary frame
		{0, []string{"\xff\xfe\x00"}},                            // not UTF-8
		{fuzzProto, []string{string(mustWire(&libraryv1.GetBookRequest{Name: "shelves/1/books/dune"}))}},
		{fuzzProto | 3<<fuzzMethodBit, []string{string(mustWire(&libraryv1.PingRequest{Message: "a"})), ""}},
		{fuzzProto | 2<<fuzzMethodBit, []string{"\x0a\xff\xff\xff\xff\x0f", "\x12\x80"}}, // binary garbage
		{fuzzProto | fuzzWrongType, []string{"\x0a\x01x"}},                               // proto in a text frame
		{fuzzProto | 1<<fuzzMethodBit, []string{strings.Repeat("\x0a\x01x", 30)}},        // oversize
	}
	for _, s := range seeds {
		f.Add(append([]byte{s.flags}, strings.Join(s.msgs, string(rune(fuzzSep)))...))
	}

	ended := make(chan struct{}, 1)
	routes := &router.Routes{WebSocket: map[string]*router.Route{}}
	for _, name := range fuzzMethods {
		md := libraryv1.File_example_library_v1_library_proto.Services().ByName("LibraryService").Methods().ByName(protoreflect.Name(name))
		path := "/example.library.v1.LibraryService/" + name
		b, err := translate.NewBinding(md, "POST", path, "*", "", translate.JSONOptions{}, protoregistry.GlobalTypes)
		if err != nil {
			f.Fatal(err)
		}
		routes.WebSocket[path] = &router.Route{Binding: b, Method: md, Target: path, Handler: router.HandlerFunc(upstream)}
	}
	h := websocket.New(func(context.Context) *router.Routes { return routes }, websocket.Options{
		MaxMessageBytes: fuzzMaxMessage,
		IdleTimeout:     time.Minute, // beyond the iteration's bound: a call left waiting fails the target
		Hold:            func(context.Context) func() { return func() { ended <- struct{}{} } },
	})
	srv := httptest.NewServer(h)
	defer srv.Close()
	base := "ws" + strings.TrimPrefix(srv.URL, "http") + "/ws/example.library.v1.LibraryService/"

	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) == 0 {
			return
		}
		flags, msgs := in[0], bytes.Split(in[1:], []byte{fuzzSep})
		binary := flags&fuzzProto != 0
		method := fuzzMethods[(flags>>fuzzMethodBit)%4]
		subprotocol, typ := websocket.JSONProtocol, ws.MessageText
		if binary {
			subprotocol, typ = websocket.ProtoProtocol, ws.MessageBinary
		}
		if flags&fuzzWrongType != 0 {
			typ ^= ws.MessageText ^ ws.MessageBinary
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		conn, _, err := ws.Dial(ctx, base+method, &ws.DialOptions{Subprotocols: []string{subprotocol}})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.CloseNow()
		conn.SetReadLimit(-1)

		// The gateway may end the call at any message: a write error then
		// only stops the sending.
		sent := func() error {
			for _, m := range msgs {
				mt := typ
				if len(m) == 0 {
					mt = ws.MessageText // the half-close, or an empty message
				}
				if err := conn.Write(ctx, mt, m); err != nil {
					return err
				}
			}
			if flags&fuzzNoHalf != 0 {
				return conn.Close(ws.StatusNormalClosure, "")
			}
			return conn.Write(ctx, ws.MessageText, nil)
		}()
		if flags&fuzzNoHalf == 0 || sent != nil {
			checkEnd(ctx, t, conn, binary, method, sent == nil)
		}
		select {
		case <-ended:
		case <-ctx.Done():
			t.Fatalf("%s %q: the call did not end", method, in)
		}
	})
}

// checkEnd reads the call's answers up to the end of the socket: response
// messages in the subprotocol's frame type, then the final status as a
// text frame, then the close code that status promises. Only a client
// whose writes failed (the socket was already closing) may miss the status.
func checkEnd(ctx context.Context, t *testing.T, conn *ws.Conn, proto bool, method string, allSent bool) {
	t.Helper()
	var final *fuzzStatus
	for {
		typ, data, err := conn.Read(ctx)
		if err != nil {
			code := ws.CloseStatus(err)
			switch {
			case final == nil:
				if allSent {
					t.Fatalf("%s: the socket ended with %v before the final status", method, err)
				}
			case *final.Code == 0 && code != ws.StatusNormalClosure,
				*final.Code != 0 && code != ws.StatusCode(4000+*final.Code) && !(code == ws.StatusProtocolError && *final.Code == int32(codes.InvalidArgument)):
				t.Fatalf("%s: status %d %q closed with %v", method, *final.Code, *final.Message, err)
			}
			return
		}
		if final != nil {
			t.Fatalf("%s: a %v frame %q after the final status", method, typ, data)
		}
		if typ == ws.MessageBinary {
			if !proto {
				t.Fatalf("%s: a binary frame in rosetta.json", method)
			}
			continue
		}
		var frame struct {
			Result json.RawMessage `json:"result"`
			Status *fuzzStatus     `json:"status"`
		}
		if err := json.Unmarshal(data, &frame); err != nil {
			t.Fatalf("%s: text frame %q: %v", method, data, err)
		}
		switch {
		case frame.Status != nil:
			if frame.Status.Code == nil || frame.Status.Message == nil {
				t.Fatalf("%s: final status %q is no google.rpc.Status", method, data)
			}
			if c := codes.Code(*frame.Status.Code); c == codes.Internal || c == codes.Unknown {
				t.Fatalf("%s: a client's messages ended the call with %v: %q", method, c, data)
			}
			final = frame.Status
		case proto || frame.Result == nil:
			t.Fatalf("%s: text frame %q is neither a result nor the status", method, data)
		}
	}
}

// fuzzStatus is a google.rpc.Status in JSON.
type fuzzStatus struct {
	Code    *int32            `json:"code"`
	Message *string           `json:"message"`
	Details []json.RawMessage `json:"details"`
}

// upstream serves each kind of method as a gRPC server would: it reads
// the request messages up to the client's end (one for a unary or server
// streaming method), refuses one its message type does not parse, and
// answers one message per request for Chat, two for StreamBooks, one
// otherwise.
func upstream(_ context.Context, c *router.Call) error {
	md := c.Route.Method
	n := 0
	for {
		wire, err := c.Stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		req := dynamicMessage(md.Input())
		if err := proto.Unmarshal(wire, req); err != nil {
			return status.Errorf(codes.InvalidArgument, "request: %v", err)
		}
		n++
		if md.IsStreamingClient() && md.IsStreamingServer() {
			if err := c.Stream.Send(mustWire(&libraryv1.PingResponse{Message: "pong"})); err != nil {
				return err
			}
		}
		if !md.IsStreamingClient() {
			break
		}
	}
	if n == 0 && !md.IsStreamingClient() {
		return status.Error(codes.InvalidArgument, "no request message")
	}
	switch {
	case md.IsStreamingClient() && md.IsStreamingServer():
		return nil
	case md.IsStreamingServer():
		for range 2 {
			if err := c.Stream.Send(mustWire(&libraryv1.Book{Name: "shelves/1/books/dune"})); err != nil {
				return err
			}
		}
		return nil
	case md.IsStreamingClient():
		return c.Stream.Send(mustWire(&libraryv1.ImportBooksResponse{Names: []string{"shelves/1/books/dune"}}))
	default:
		return c.Stream.Send(mustWire(&libraryv1.Book{Name: "shelves/1/books/dune"}))
	}
}

// dynamicMessage returns an empty message of the type d describes.
func dynamicMessage(d protoreflect.MessageDescriptor) proto.Message {
	mt, err := protoregistry.GlobalTypes.FindMessageByName(d.FullName())
	if err != nil {
		panic(err)
	}
	return mt.New().Interface()
}

// mustWire marshals m, which always marshals.
func mustWire(m proto.Message) []byte {
	b, err := proto.Marshal(m)
	if err != nil {
		panic(err)
	}
	return b
}
