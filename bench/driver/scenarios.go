package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/rosettagw/rosetta/bench/fixtures"
	libraryv1 "github.com/rosettagw/rosetta/proto/example/library/v1"
)

// Target names; gateway is the reference of every ratio.
const (
	rosetta = "Rosetta"
	// rosettaDefault is Rosetta with the default access log and request
	// validation on (the others do neither).
	rosettaDefault = "Rosetta, default config"
	gateway        = "grpc-gateway"
	vanguard       = "vanguard"
	direct         = "gRPC direct (ghz)"
)

// target is one thing under load: a REST proxy, or the upstream itself for
// the direct gRPC baseline.
type target struct {
	name string
	url  string   // base URL of a proxy; empty for direct
	proc *process // the proxy; nil for direct
}

// scenario is one kind of call, as REST for the proxies and as gRPC for the
// direct baseline.
type scenario struct {
	name   string
	method string
	path   string // path and query
	body   []byte // JSON body; nil for GET
	// check validates a REST response body.
	check func([]byte) error
	// grpcMethod and grpcRequest are the same call made directly.
	grpcMethod  string
	grpcRequest proto.Message
	// checkGRPC makes the direct call once and validates its answer.
	checkGRPC func(context.Context, libraryv1.LibraryServiceClient) error
	// notServed names the targets expected not to serve the scenario, and
	// why; check measures them anyway if they answer correctly.
	notServed map[string]string
}

// scenarios returns the four scenarios of issue 8.
func scenarios() ([]*scenario, error) {
	list := []*scenario{{
		name:        "GET small",
		method:      http.MethodGet,
		path:        "/v1/" + fixtures.Shelf + "/books?" + fixtures.ListQuery,
		check:       wantMessage(fixtures.ListResponse()),
		grpcMethod:  "ListBooks",
		grpcRequest: fixtures.ListRequest(),
		checkGRPC: func(ctx context.Context, c libraryv1.LibraryServiceClient) error {
			got, err := c.ListBooks(ctx, fixtures.ListRequest())
			return equal(got, fixtures.ListResponse(), err)
		},
	}}
	for _, post := range []struct {
		name, id string
		book     func() *libraryv1.Book
	}{
		{"POST 2 KB", "b2k", fixtures.SmallBook},
		{"POST 64 KB", "b64k", fixtures.LargeBook},
	} {
		body, err := compactJSON(post.book())
		if err != nil {
			return nil, err
		}
		want := fixtures.Created(fixtures.CreateRequest(post.id, post.book()))
		list = append(list, &scenario{
			name:        post.name,
			method:      http.MethodPost,
			path:        "/v1/" + fixtures.Shelf + "/books?bookId=" + post.id,
			body:        body,
			check:       wantMessage(want),
			grpcMethod:  "CreateBook",
			grpcRequest: fixtures.CreateRequest(post.id, post.book()),
			checkGRPC: func(ctx context.Context, c libraryv1.LibraryServiceClient) error {
				got, err := c.CreateBook(ctx, fixtures.CreateRequest(post.id, post.book()))
				return equal(got, want, err)
			},
		})
	}
	list = append(list, &scenario{
		name:        fmt.Sprintf("stream ×%d", fixtures.StreamLength),
		method:      http.MethodGet,
		path:        "/v1/" + fixtures.Shelf + "/books:stream",
		check:       wantStream(fixtures.StreamBooks()),
		grpcMethod:  "StreamBooks",
		grpcRequest: &libraryv1.ListBooksRequest{Parent: fixtures.Shelf},
		checkGRPC: func(ctx context.Context, c libraryv1.LibraryServiceClient) error {
			s, err := c.StreamBooks(ctx, &libraryv1.ListBooksRequest{Parent: fixtures.Shelf})
			if err != nil {
				return err
			}
			for i, want := range fixtures.StreamBooks() {
				got, err := s.Recv()
				if err := equal(got, want, err); err != nil {
					return fmt.Errorf("message %d: %w", i, err)
				}
			}
			if _, err := s.Recv(); err != io.EOF {
				return fmt.Errorf("stream did not end after %d messages: %v", fixtures.StreamLength, err)
			}
			return nil
		},
		notServed: map[string]string{
			vanguard: "vanguard serves REST server streams only for google.api.HttpBody responses",
		},
	})
	return list, nil
}

// compactJSON is m in proto3 JSON without insignificant spaces.
func compactJSON(m proto.Message) ([]byte, error) {
	raw, err := protojson.Marshal(m)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	err = json.Compact(&b, raw)
	return b.Bytes(), err
}

// equal reports an error unless the call succeeded with want.
func equal(got, want proto.Message, err error) error {
	if err != nil {
		return err
	}
	if !proto.Equal(got, want) {
		return fmt.Errorf("got %v, want %v", got, want)
	}
	return nil
}

// wantMessage checks that a body is the proto3 JSON of want, with no field
// unknown to the schema.
func wantMessage(want proto.Message) func([]byte) error {
	return func(body []byte) error {
		got := want.ProtoReflect().New().Interface()
		if err := protojson.Unmarshal(body, got); err != nil {
			return fmt.Errorf("%w in %s", err, truncate(body))
		}
		return equal(got, want, nil)
	}
}

// wantStream checks that a body is grpc-gateway's newline-delimited stream
// of {"result": ...} objects holding want, in order.
func wantStream(want []*libraryv1.Book) func([]byte) error {
	return func(body []byte) error {
		lines := strings.Split(strings.TrimSpace(string(body)), "\n")
		if len(lines) != len(want) {
			return fmt.Errorf("%d lines, want %d: %s", len(lines), len(want), truncate(body))
		}
		for i, line := range lines {
			var frame struct{ Result json.RawMessage }
			if err := json.Unmarshal([]byte(line), &frame); err != nil || frame.Result == nil {
				return fmt.Errorf("line %d is not {\"result\": ...}: %s", i+1, truncate([]byte(line)))
			}
			if err := wantMessage(want[i])(frame.Result); err != nil {
				return fmt.Errorf("line %d: %w", i+1, err)
			}
		}
		return nil
	}
}

// call makes the scenario's REST call once and returns the status and body.
func (sc *scenario) call(ctx context.Context, baseURL string) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, sc.method, baseURL+sc.path, bytes.NewReader(sc.body))
	if err != nil {
		return 0, nil, err
	}
	if sc.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, body, err
}

// truncate shortens a body for an error message.
func truncate(b []byte) string {
	if len(b) > 300 {
		return string(b[:300]) + "…"
	}
	return string(b)
}
