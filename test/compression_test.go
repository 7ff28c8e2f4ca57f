package test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	grpcgzip "google.golang.org/grpc/encoding/gzip"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	libraryv1 "github.com/rosettagw/rosetta/proto/example/library/v1"
)

// compressionLimit is the gateway's message limit in these tests.
const compressionLimit = 64 << 10

func gz(t *testing.T, b []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	zw := gzip.NewWriter(&out)
	zw.Write(b)
	zw.Close()
	return out.Bytes()
}

func gunzip(t *testing.T, b []byte) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("response is not gzip: %v (%q)", err, b)
	}
	out, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// compressedEnvelope frames msg as one gzip-compressed envelope.
func compressedEnvelope(t *testing.T, msg []byte) []byte {
	z := gz(t, msg)
	b := envelope(z)
	b[0] = 1
	return append(b, z...)
}

// h2c is an HTTP/2 client over cleartext, for raw gRPC requests.
func h2c() *http.Client {
	p := new(http.Protocols)
	p.SetUnencryptedHTTP2(true)
	return &http.Client{Transport: &http.Transport{Protocols: p}, Timeout: requestTimeout}
}

// rawGRPC sends one gRPC request with a hand-made body and returns the
// response, its body read (so that its trailers are in).
func rawGRPC(t *testing.T, ros *rosetta, method string, body []byte, header map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, ros.base+"/example.library.v1.LibraryService/"+method, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/grpc")
	req.Header.Set("Te", "trailers")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := h2c().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

// grpcStatus is the grpc-status of a raw gRPC response (trailers, or the
// headers of a trailers-only answer).
func grpcStatus(resp *http.Response) string {
	if s := resp.Trailer.Get("Grpc-Status"); s != "" {
		return s
	}
	return resp.Header.Get("Grpc-Status")
}

// jsonCodec is a gRPC codec named "json" (content-type
// application/grpc+json) marshalling with protojson, as a client using
// the JSON sub-type does.
type jsonCodec struct{}

func (jsonCodec) Marshal(v any) (mem.BufferSlice, error) {
	b, err := protojson.Marshal(v.(proto.Message))
	return mem.BufferSlice{mem.SliceBuffer(b)}, err
}

func (jsonCodec) Unmarshal(data mem.BufferSlice, v any) error {
	return protojson.Unmarshal(data.Materialize(), v.(proto.Message))
}

func (jsonCodec) Name() string { return "json" }

// TestCompressionGRPC: native gRPC with gzip both ways (a grpc-go client
// asked to compress), JSON messages (application/grpc+json), the encodings
// advertised (only the gateway's own), an unsupported encoding, a
// compressed message that expands past the limit, and unary requests with
// no or two messages.
func TestCompressionGRPC(t *testing.T) {
	_, ros := startStreaming(t, fmt.Sprintf("http: {max_body_bytes: %d}\n", compressionLimit))
	conn, err := grpc.NewClient(strings.TrimPrefix(ros.base, "http://"), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := libraryv1.NewLibraryServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
	defer cancel()

	t.Run("gzip", func(t *testing.T) {
		b, err := c.GetBook(ctx, &libraryv1.GetBookRequest{Name: "shelves/1/books/dune"}, grpc.UseCompressor(grpcgzip.Name))
		if err != nil || b.GetTitle() != "Dune" {
			t.Fatalf("GetBook with gzip = %v, %v", b, err)
		}
		s, err := c.StreamBooks(ctx, &libraryv1.ListBooksRequest{Parent: "shelves/fail"}, grpc.UseCompressor(grpcgzip.Name))
		if err != nil {
			t.Fatal(err)
		}
		if b, err := s.Recv(); err != nil || b.GetName() != "shelves/fail/books/1" {
			t.Fatalf("first streamed message %v, %v", b, err)
		}
	})

	t.Run("gzip on the wire", func(t *testing.T) {
		msg, _ := proto.Marshal(&libraryv1.GetBookRequest{Name: "shelves/1/books/dune"})
		resp, body := rawGRPC(t, ros, "GetBook", compressedEnvelope(t, msg), map[string]string{"Grpc-Encoding": "gzip", "Grpc-Accept-Encoding": "gzip"})
		if grpcStatus(resp) != "0" || resp.Header.Get("Grpc-Encoding") != "gzip" {
			t.Fatalf("status %q, Grpc-Encoding %q", grpcStatus(resp), resp.Header.Get("Grpc-Encoding"))
		}
		flags, payloads := frames(t, body)
		var b libraryv1.Book
		if len(flags) != 1 || flags[0] != 1 || proto.Unmarshal(gunzip(t, payloads[0]), &b) != nil || b.GetTitle() != "Dune" {
			t.Errorf("response frames %v: want one compressed Book", flags)
		}
		for _, v := range resp.Header.Values("Grpc-Accept-Encoding") {
			for _, e := range strings.Split(v, ",") {
				if e = strings.TrimSpace(e); e != "gzip" && e != "identity" {
					t.Errorf("Grpc-Accept-Encoding %q advertises %q, which the gateway does not decode", v, e)
				}
			}
		}
	})

	t.Run("unsupported encoding", func(t *testing.T) {
		resp, _ := rawGRPC(t, ros, "GetBook", compressedEnvelope(t, []byte{}), map[string]string{"Grpc-Encoding": "zstd"})
		if grpcStatus(resp) != "12" {
			t.Errorf("grpc-status %q, want 12 (UNIMPLEMENTED)", grpcStatus(resp))
		}
	})

	t.Run("zip bomb", func(t *testing.T) {
		_, err := c.GetBook(ctx, &libraryv1.GetBookRequest{Name: strings.Repeat("a", 16*compressionLimit)}, grpc.UseCompressor(grpcgzip.Name))
		if status.Code(err) != codes.ResourceExhausted {
			t.Errorf("a message decompressing past the limit: %v, want ResourceExhausted", err)
		}
	})

	t.Run("JSON sub-type", func(t *testing.T) {
		b, err := c.GetBook(ctx, &libraryv1.GetBookRequest{Name: "shelves/1/books/dune"}, grpc.ForceCodecV2(jsonCodec{}))
		if err != nil || b.GetTitle() != "Dune" {
			t.Fatalf("GetBook over application/grpc+json = %v, %v", b, err)
		}
		resp, _ := rawGRPC(t, ros, "GetBook", envelope(nil), map[string]string{"Content-Type": "application/grpc+xml"})
		if grpcStatus(resp) != "12" {
			t.Errorf("application/grpc+xml: grpc-status %q, want 12 (UNIMPLEMENTED)", grpcStatus(resp))
		}
	})

	t.Run("unary takes exactly one message", func(t *testing.T) {
		msg, _ := proto.Marshal(&libraryv1.GetBookRequest{Name: "shelves/1/books/dune"})
		one := append(envelope(msg), msg...)
		for name, body := range map[string][]byte{"none": nil, "two": append(append([]byte{}, one...), one...)} {
			for _, method := range []string{"GetBook", "StreamBooks"} {
				if resp, _ := rawGRPC(t, ros, method, body, nil); grpcStatus(resp) != "12" {
					t.Errorf("%s with %s messages: grpc-status %q, want 12 (UNIMPLEMENTED)", method, name, grpcStatus(resp))
				}
			}
		}
	})
}

// TestCompressionGRPCWeb: gRPC-Web with gzip both ways, JSON messages
// (application/grpc-web+json, as connect-web's gRPC-Web transport sends
// with useBinaryFormat: false), a zip bomb, requests with no or two
// messages and an unknown method, each answered in gRPC-Web's trailer.
func TestCompressionGRPCWeb(t *testing.T) {
	_, ros := startStreaming(t, fmt.Sprintf("http: {max_body_bytes: %d}\n", compressionLimit))
	call := func(t *testing.T, method, ct string, body []byte, header map[string]string) ([]byte, [][]byte, *response) {
		t.Helper()
		h := map[string]string{"Content-Type": ct, "X-Grpc-Web": "1"}
		for k, v := range header {
			h[k] = v
		}
		r := post(t, ros, method, body, h)
		if r.status != 200 {
			t.Fatalf("status %d: %s", r.status, r.body)
		}
		flags, payloads := frames(t, r.body)
		return flags, payloads, r
	}
	trailerStatus := func(flags []byte, payloads [][]byte, _ *response) string {
		if len(flags) == 0 || flags[len(flags)-1] != 0x80 {
			return "no trailer"
		}
		for _, line := range strings.Split(string(payloads[len(payloads)-1]), "\r\n") {
			if v, ok := strings.CutPrefix(line, "grpc-status: "); ok {
				return v
			}
		}
		return "no grpc-status"
	}

	t.Run("gzip JSON", func(t *testing.T) {
		flags, payloads, r := call(t, "GetBook", "application/grpc-web+json", compressedEnvelope(t, []byte(`{"name": "shelves/1/books/dune"}`)),
			map[string]string{"Grpc-Encoding": "gzip", "Grpc-Accept-Encoding": "gzip"})
		if r.header.Get("Content-Type") != "application/grpc-web+json" || r.header.Get("Grpc-Encoding") != "gzip" {
			t.Errorf("Content-Type %q, Grpc-Encoding %q", r.header.Get("Content-Type"), r.header.Get("Grpc-Encoding"))
		}
		// A message under 1 KiB goes uncompressed: its envelope says so.
		if len(flags) != 2 || flags[0] != 0 || !strings.Contains(string(payloads[0]), `"title":"Dune"`) || trailerStatus(flags, payloads, nil) != "0" {
			t.Errorf("frames %v %q", flags, payloads)
		}
		// One of 1 KiB or more is compressed.
		title := strings.Repeat("Dune ", 400)
		flags, payloads, _ = call(t, "CreateBook", "application/grpc-web+json",
			compressedEnvelope(t, []byte(`{"parent": "shelves/1", "bookId": "big", "book": {"title": "`+title+`"}}`)),
			map[string]string{"Grpc-Encoding": "gzip", "Grpc-Accept-Encoding": "gzip"})
		if len(flags) != 2 || flags[0] != 1 || !strings.Contains(string(gunzip(t, payloads[0])), title) || trailerStatus(flags, payloads, nil) != "0" {
			t.Errorf("a 2 KB answer: frames %v %q", flags, payloads)
		}
	})

	t.Run("gzip proto server stream", func(t *testing.T) {
		msg, _ := proto.Marshal(&libraryv1.ListBooksRequest{Parent: "shelves/fail"})
		flags, payloads, _ := call(t, "StreamBooks", "application/grpc-web+proto", compressedEnvelope(t, msg), map[string]string{"Grpc-Encoding": "gzip"})
		var b libraryv1.Book
		if len(flags) != 2 || flags[0] != 0 || proto.Unmarshal(payloads[0], &b) != nil || b.GetName() != "shelves/fail/books/1" || trailerStatus(flags, payloads, nil) != "15" {
			t.Errorf("frames %v, book %v, want one book (uncompressed: under 1 KiB) and DATA_LOSS", flags, &b)
		}
	})

	t.Run("zip bomb", func(t *testing.T) {
		bomb := compressedEnvelope(t, []byte(`{"name": "`+strings.Repeat("a", 16*compressionLimit)+`"}`))
		if st := trailerStatus(call(t, "GetBook", "application/grpc-web+json", bomb, map[string]string{"Grpc-Encoding": "gzip"})); st != "8" {
			t.Errorf("grpc-status %s, want 8 (RESOURCE_EXHAUSTED)", st)
		}
	})

	t.Run("unsupported encoding", func(t *testing.T) {
		if st := trailerStatus(call(t, "GetBook", "application/grpc-web", compressedEnvelope(t, nil), map[string]string{"Grpc-Encoding": "br"})); st != "12" {
			t.Errorf("grpc-status %s, want 12 (UNIMPLEMENTED)", st)
		}
	})

	t.Run("exactly one message", func(t *testing.T) {
		msg, _ := proto.Marshal(&libraryv1.GetBookRequest{Name: "shelves/1/books/dune"})
		one := append(envelope(msg), msg...)
		for name, body := range map[string][]byte{"none": nil, "two": append(append([]byte{}, one...), one...)} {
			if st := trailerStatus(call(t, "GetBook", "application/grpc-web", body, nil)); st != "12" {
				t.Errorf("%s messages: grpc-status %s, want 12 (UNIMPLEMENTED)", name, st)
			}
		}
	})

	t.Run("unknown method", func(t *testing.T) {
		if st := trailerStatus(call(t, "Nope", "application/grpc-web", envelope(nil), nil)); st != "12" {
			t.Errorf("grpc-status %s, want 12 (UNIMPLEMENTED)", st)
		}
	})
}

// TestCompressionConnect: Connect unary with Content-Encoding and
// Accept-Encoding, a server stream with Connect-Content-Encoding and
// compressed envelopes, a zip bomb, an unsupported encoding, and an unknown
// method answered as a Connect error (string code).
func TestCompressionConnect(t *testing.T) {
	_, ros := startStreaming(t, fmt.Sprintf("http: {max_body_bytes: %d}\n", compressionLimit))
	unary := map[string]string{"Content-Type": "application/json", "Connect-Protocol-Version": "1", "Content-Encoding": "gzip", "Accept-Encoding": "gzip"}

	t.Run("unary gzip", func(t *testing.T) {
		r := post(t, ros, "GetBook", gz(t, []byte(`{"name": "shelves/1/books/dune"}`)), unary)
		if r.status != 200 || r.header.Get("Content-Encoding") != "gzip" || !strings.Contains(string(gunzip(t, r.body)), `"title":"Dune"`) {
			t.Errorf("%d Content-Encoding %q", r.status, r.header.Get("Content-Encoding"))
		}
	})

	t.Run("unary: Accept-Encoding alone compresses nothing", func(t *testing.T) {
		// A browser sends Accept-Encoding on every fetch; connect-web refuses
		// a response encoding it did not ask for.
		r := post(t, ros, "GetBook", []byte(`{"name": "shelves/1/books/dune"}`), map[string]string{"Content-Type": "application/json", "Connect-Protocol-Version": "1", "Accept-Encoding": "gzip, deflate, br"})
		if r.status != 200 || r.header.Get("Content-Encoding") != "" || !strings.Contains(string(r.body), `"title":"Dune"`) {
			t.Errorf("%d Content-Encoding %q: %s", r.status, r.header.Get("Content-Encoding"), r.body)
		}
	})

	t.Run("server stream gzip", func(t *testing.T) {
		body := compressedEnvelope(t, []byte(`{"parent": "shelves/fail"}`))
		r := post(t, ros, "StreamBooks", body, map[string]string{"Content-Type": "application/connect+json", "Connect-Protocol-Version": "1",
			"Connect-Content-Encoding": "gzip", "Connect-Accept-Encoding": "gzip"})
		if r.status != 200 || r.header.Get("Connect-Content-Encoding") != "gzip" {
			t.Fatalf("%d Connect-Content-Encoding %q: %s", r.status, r.header.Get("Connect-Content-Encoding"), r.body)
		}
		flags, payloads := frames(t, r.body)
		if len(flags) != 2 || flags[0] != 0 || !strings.Contains(string(payloads[0]), `shelves/fail/books/1`) || // under 1 KiB: uncompressed
			flags[1]&2 == 0 || !strings.Contains(string(payloads[1]), `"data_loss"`) {
			t.Errorf("frames %v %q", flags, payloads)
		}
	})

	connectError := func(t *testing.T, r *response, status int, code string) {
		t.Helper()
		var e struct{ Code string }
		if json.Unmarshal(r.body, &e); r.status != status || e.Code != code {
			t.Errorf("%d %s, want %d with code %q", r.status, r.body, status, code)
		}
	}
	t.Run("zip bomb", func(t *testing.T) {
		connectError(t, post(t, ros, "GetBook", gz(t, []byte(`{"name": "`+strings.Repeat("a", 16*compressionLimit)+`"}`)), unary), 429, "resource_exhausted")
	})

	t.Run("unsupported encoding", func(t *testing.T) {
		connectError(t, post(t, ros, "GetBook", []byte("x"), map[string]string{"Content-Type": "application/json", "Connect-Protocol-Version": "1", "Content-Encoding": "br"}), 501, "unimplemented")
	})

	t.Run("unknown method", func(t *testing.T) {
		connectError(t, post(t, ros, "Nope", []byte(`{}`), map[string]string{"Content-Type": "application/json", "Connect-Protocol-Version": "1"}), 404, "unimplemented")
	})

	t.Run("a Content-Type no ingress reads", func(t *testing.T) {
		r := post(t, ros, "Nope2", []byte("x"), map[string]string{"Content-Type": "image/jpeg"})
		if r.status != 404 {
			t.Errorf("an unknown path: %d, want 404", r.status)
		}
		r = post(t, ros, "GetBook", []byte("x"), map[string]string{"Content-Type": "image/jpeg"})
		if r.status != 415 || r.header.Get("Accept-Post") == "" {
			t.Errorf("a method's path: %d, Accept-Post %q; want 415 naming what it takes", r.status, r.header.Get("Accept-Post"))
		}
	})
}
