package translate_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"

	libraryv1 "github.com/rosettagw/rosetta/proto/example/library/v1"
	"github.com/rosettagw/rosetta/translate"
)

func mustAny(t *testing.T, m proto.Message) *anypb.Any {
	t.Helper()
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// decodeJSON parses a JSON document into generic Go values.
func decodeJSON(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("invalid JSON %s: %v", b, err)
	}
	return v
}

func TestStatusJSON(t *testing.T) {
	badRequest := &errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: "page_size", Description: "too big"}}}
	tests := []struct {
		name string
		st   *spb.Status
		res  translate.Resolver
		want map[string]any
	}{
		{
			name: "no details",
			st:   &spb.Status{Code: int32(codes.NotFound), Message: "no book"},
			want: map[string]any{"code": 5.0, "message": "no book", "details": []any{}},
		},
		{
			name: "empty status",
			st:   &spb.Status{},
			want: map[string]any{"code": 0.0, "message": "", "details": []any{}},
		},
		{
			name: "nil status",
			want: map[string]any{"code": 0.0, "message": "", "details": []any{}},
		},
		{
			name: "message needing escapes",
			st:   &spb.Status{Code: 3, Message: "bad \"x\"\n<é>\x01"},
			want: map[string]any{"code": 3.0, "message": "bad \"x\"\n<é>\x01", "details": []any{}},
		},
		{
			name: "bad request detail",
			st:   &spb.Status{Code: 3, Message: "bad", Details: []*anypb.Any{mustAny(t, badRequest)}},
			res:  protoregistry.GlobalTypes,
			want: map[string]any{"code": 3.0, "message": "bad", "details": []any{map[string]any{
				"@type":           "type.googleapis.com/google.rpc.BadRequest",
				"fieldViolations": []any{map[string]any{"field": "page_size", "description": "too big"}},
			}}},
		},
		{
			// The schema's resolver knows no google.rpc types: they are found
			// among the linked-in types.
			name: "standard detail with a schema resolver that lacks it",
			st:   &spb.Status{Code: 3, Message: "bad", Details: []*anypb.Any{mustAny(t, badRequest)}},
			res:  new(protoregistry.Types),
			want: map[string]any{"code": 3.0, "message": "bad", "details": []any{map[string]any{
				"@type":           "type.googleapis.com/google.rpc.BadRequest",
				"fieldViolations": []any{map[string]any{"field": "page_size", "description": "too big"}},
			}}},
		},
		{
			name: "schema detail and a well-known detail",
			st: &spb.Status{Code: 9, Message: "m", Details: []*anypb.Any{
				mustAny(t, &libraryv1.Shelf{Name: "shelves/1", BookCount: 3}),
				mustAny(t, durationpb.New(1500e6)),
			}},
			res: protoregistry.GlobalTypes,
			want: map[string]any{"code": 9.0, "message": "m", "details": []any{
				map[string]any{"@type": "type.googleapis.com/example.library.v1.Shelf", "name": "shelves/1", "bookCount": 3.0},
				map[string]any{"@type": "type.googleapis.com/google.protobuf.Duration", "value": "1.500s"},
			}},
		},
		{
			name: "unknown detail dropped",
			st: &spb.Status{Code: 13, Message: "m", Details: []*anypb.Any{
				{TypeUrl: "type.googleapis.com/no.such.Type", Value: []byte{0x0a, 0x01, 'x'}},
				mustAny(t, &errdetails.ErrorInfo{Reason: "R"}),
				{TypeUrl: "type.googleapis.com/google.rpc.ErrorInfo", Value: []byte{0xff, 0xff}}, // corrupt
			}},
			want: map[string]any{"code": 13.0, "message": "m", "details": []any{
				map[string]any{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "R"},
			}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := translate.StatusJSON(tt.st, tt.res)
			if got := decodeJSON(t, out); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("StatusJSON = %s\nwant %v", out, tt.want)
			}
		})
	}
}

func TestBadRequestStatus(t *testing.T) {
	st := translate.BadRequestStatus(&translate.BadRequestError{Field: "filter.genre", Description: `invalid value "X"`})
	if st.GetCode() != int32(codes.InvalidArgument) || st.GetMessage() != `invalid value "X"` {
		t.Fatalf("status = %v", st)
	}
	got := decodeJSON(t, translate.StatusJSON(st, nil))
	want := map[string]any{"code": 3.0, "message": `invalid value "X"`, "details": []any{map[string]any{
		"@type":           "type.googleapis.com/google.rpc.BadRequest",
		"fieldViolations": []any{map[string]any{"field": "filter.genre", "description": `invalid value "X"`}},
	}}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("StatusJSON(BadRequestStatus) = %v\nwant %v", got, want)
	}

	// Without a field there is nothing to name: no detail.
	st = translate.BadRequestStatus(&translate.BadRequestError{Description: "malformed query"})
	if st.GetCode() != int32(codes.InvalidArgument) || len(st.GetDetails()) != 0 {
		t.Errorf("status = %v, want INVALID_ARGUMENT without details", st)
	}
}

func TestStatusOf(t *testing.T) {
	tests := []struct {
		err  error
		code codes.Code
		msg  string
	}{
		{status.Error(codes.NotFound, "gone"), codes.NotFound, "gone"},
		{errors.New("plain"), codes.Unknown, "plain"},
		{nil, codes.OK, ""},
	}
	for _, tt := range tests {
		st := translate.StatusOf(tt.err)
		if codes.Code(st.GetCode()) != tt.code || st.GetMessage() != tt.msg {
			t.Errorf("StatusOf(%v) = %v, want %v %q", tt.err, st, tt.code, tt.msg)
		}
	}
}

func TestHTTPStatus(t *testing.T) {
	want := map[codes.Code]int{
		codes.OK:                 http.StatusOK,
		codes.Canceled:           499,
		codes.Unknown:            http.StatusInternalServerError,
		codes.InvalidArgument:    http.StatusBadRequest,
		codes.DeadlineExceeded:   http.StatusGatewayTimeout,
		codes.NotFound:           http.StatusNotFound,
		codes.AlreadyExists:      http.StatusConflict,
		codes.PermissionDenied:   http.StatusForbidden,
		codes.ResourceExhausted:  http.StatusTooManyRequests,
		codes.FailedPrecondition: http.StatusBadRequest,
		codes.Aborted:            http.StatusConflict,
		codes.OutOfRange:         http.StatusBadRequest,
		codes.Unimplemented:      http.StatusNotImplemented,
		codes.Internal:           http.StatusInternalServerError,
		codes.Unavailable:        http.StatusServiceUnavailable,
		codes.DataLoss:           http.StatusInternalServerError,
		codes.Unauthenticated:    http.StatusUnauthorized,
		codes.Code(17):           http.StatusInternalServerError,
		codes.Code(1000):         http.StatusInternalServerError,
	}
	for c := codes.OK; c <= codes.Unauthenticated; c++ {
		if _, ok := want[c]; !ok {
			t.Fatalf("the table misses %v", c)
		}
	}
	for c, code := range want {
		if got := translate.HTTPStatus(c); got != code {
			t.Errorf("HTTPStatus(%v) = %d, want %d", c, got, code)
		}
	}
}
