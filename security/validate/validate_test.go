package validate_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"buf.build/go/protovalidate"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/rosettagw/rosetta/descriptors"
	"github.com/rosettagw/rosetta/router"
	"github.com/rosettagw/rosetta/security/validate"
)

const shopProto = `
syntax = "proto3";
package shop.v1;
import "buf/validate/validate.proto";

enum Size { SIZE_UNSPECIFIED = 0; SIZE_S = 1; SIZE_M = 2; }

message Item {
  string isbn = 1 [(buf.validate.field).string.pattern = "^97[89]-[0-9]{10}$"];
  int32 quantity = 2 [(buf.validate.field).int32 = {gte: 1, lte: 10}];
}

message Order {
  option (buf.validate.message).cel = {
    id: "order.gift_note_needs_gift"
    message: "gift_note needs gift"
    expression: "this.gift_note == '' || this.gift"
  };
  string title = 1 [(buf.validate.field).required = true];
  Size size = 2 [(buf.validate.field).enum.defined_only = true];
  repeated Item items = 3 [(buf.validate.field).repeated = {min_items: 1, max_items: 3}];
  map<string, string> labels = 4 [(buf.validate.field).map.keys.string.min_len = 2];
  bool gift = 5;
  string gift_note = 6;
  oneof payment {
    option (buf.validate.oneof).required = true;
    string card = 7;
    string voucher = 8;
  }
}

message Plain { string anything = 1; Plain child = 2; }

service Shop {
  rpc Place(Order) returns (Order);
  rpc Echo(Plain) returns (Plain);
}
`

func loadShop(t testing.TB) (*descriptors.Schema, *validate.Validator) {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "shop.proto"), []byte(shopProto), 0o644); err != nil {
		t.Fatal(err)
	}
	schema, err := descriptors.Load(context.Background(), []descriptors.Source{{Proto: &descriptors.ProtoSource{ImportPaths: []string{dir}, Files: []string{"shop.proto"}}}})
	if err != nil {
		t.Fatal(err)
	}
	v, err := validate.New(schema.Types(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return schema, v
}

func method(t testing.TB, s *descriptors.Schema, name string) protoreflect.MethodDescriptor {
	t.Helper()
	sd, err := s.Service("shop.v1.Shop")
	if err != nil {
		t.Fatal(err)
	}
	return sd.Methods().ByName(protoreflect.Name(name))
}

// wire encodes a JSON request of md's input type.
func wire(t testing.TB, s *descriptors.Schema, md protoreflect.MethodDescriptor, js string) []byte {
	t.Helper()
	msg := dynamicpb.NewMessage(md.Input())
	if err := (protojson.UnmarshalOptions{Resolver: s.Types()}).Unmarshal([]byte(js), msg); err != nil {
		t.Fatalf("%s: %v", js, err)
	}
	b, err := proto.Marshal(msg)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

const validOrder = `{"title":"t","size":"SIZE_S","items":[{"isbn":"978-0123456789","quantity":2}],"card":"c"}`

func TestRequests(t *testing.T) {
	s, v := loadShop(t)
	place := method(t, s, "Place")
	step := v.Requests(place)
	if step == nil {
		t.Fatal("Requests(Place) = nil, want a step: Order has rules")
	}
	chain := router.Chain(router.HandlerFunc(func(ctx context.Context, c *router.Call) error {
		_, err := c.Decode()
		return err
	}), step)
	check := func(req []byte) error {
		return chain.Handle(context.Background(), &router.Call{Decode: func() ([]byte, error) { return req, nil }})
	}
	if err := check(wire(t, s, place, validOrder)); err != nil {
		t.Fatalf("valid order refused: %v", err)
	}
	tests := []struct {
		name, json string
		fields     []string // every violated field path, in order
		rules      []string
	}{
		{"pattern", `{"title":"t","items":[{"isbn":"123","quantity":2}],"card":"c"}`, []string{"items[0].isbn"}, []string{"string.pattern"}},
		{"range", `{"title":"t","items":[{"isbn":"978-0123456789","quantity":11}],"card":"c"}`, []string{"items[0].quantity"}, []string{"int32.gte_lte"}},
		{"required", `{"items":[{"isbn":"978-0123456789","quantity":1}],"card":"c"}`, []string{"title"}, []string{"required"}},
		{"enum defined_only", `{"title":"t","size":7,"items":[{"isbn":"978-0123456789","quantity":1}],"card":"c"}`, []string{"size"}, []string{"enum.defined_only"}},
		{"repeated min_items", `{"title":"t","card":"c"}`, []string{"items"}, []string{"repeated.min_items"}},
		{"map keys", `{"title":"t","items":[{"isbn":"978-0123456789","quantity":1}],"labels":{"x":"y"},"card":"c"}`, []string{`labels["x"]`}, []string{"string.min_len"}},
		{"message CEL", `{"title":"t","items":[{"isbn":"978-0123456789","quantity":1}],"giftNote":"hi","card":"c"}`, []string{""}, []string{"order.gift_note_needs_gift"}},
		{"oneof required", `{"title":"t","items":[{"isbn":"978-0123456789","quantity":1}]}`, []string{"payment"}, []string{"required"}},
		{"several at once", `{"items":[{"isbn":"1","quantity":0}],"card":"c"}`, []string{"title", "items[0].isbn", "items[0].quantity"}, []string{"required", "string.pattern", "int32.gte_lte"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := check(wire(t, s, place, tc.json))
			st, ok := status.FromError(err)
			if !ok || st.Code() != codes.InvalidArgument {
				t.Fatalf("error = %v, want INVALID_ARGUMENT", err)
			}
			var br *errdetails.BadRequest
			for _, d := range st.Details() {
				if b, ok := d.(*errdetails.BadRequest); ok {
					br = b
				}
			}
			if br == nil {
				t.Fatalf("no BadRequest detail in %v", st.Proto())
			}
			var fields, rules []string
			for _, fv := range br.GetFieldViolations() {
				fields = append(fields, fv.GetField())
				rules = append(rules, fv.GetReason())
			}
			if strings.Join(fields, ",") != strings.Join(tc.fields, ",") || strings.Join(rules, ",") != strings.Join(tc.rules, ",") {
				t.Errorf("violations fields=%q rules=%q, want fields=%q rules=%q", fields, rules, tc.fields, tc.rules)
			}
		})
	}
}

func TestRequestsWithoutRulesCostNothing(t *testing.T) {
	s, v := loadShop(t)
	if check := v.Requests(method(t, s, "Echo")); check != nil {
		t.Fatal("Requests(Echo) returned a check although Plain declares no rule")
	}
	if validate.HasRules(method(t, s, "Echo").Input()) {
		t.Error("HasRules(Plain) = true")
	}
	if !validate.HasRules(method(t, s, "Place").Input()) {
		t.Error("HasRules(Order) = false")
	}
}

// fakeInvoker counts calls and answers with a fixed message.
type fakeInvoker struct {
	calls int
	reply []byte
}

func (f *fakeInvoker) Invoke(_ context.Context, _ string, _ []byte, _ metadata.MD) (*router.Reply, error) {
	f.calls++
	return &router.Reply{Message: f.reply}, nil
}

func TestDispatchRefusesBeforeTheUpstream(t *testing.T) {
	s, v := loadShop(t)
	place := method(t, s, "Place")
	inv := &fakeInvoker{reply: wire(t, s, place, validOrder)}
	route := &router.Route{Method: place, Invoker: inv}
	chain := router.Chain(router.Dispatch, v.Requests(place))
	bad := wire(t, s, place, `{"card":"c"}`)
	err := chain.Handle(context.Background(), &router.Call{Route: route, Decode: func() ([]byte, error) { return bad, nil }})
	if status.Code(err) != codes.InvalidArgument || inv.calls != 0 {
		t.Fatalf("err=%v calls=%d, want INVALID_ARGUMENT and no upstream call", err, inv.calls)
	}
	good := wire(t, s, place, validOrder)
	if err := chain.Handle(context.Background(), &router.Call{Route: route, Decode: func() ([]byte, error) { return good, nil }}); err != nil || inv.calls != 1 {
		t.Fatalf("err=%v calls=%d, want success and one upstream call", err, inv.calls)
	}
}

func TestResponses(t *testing.T) {
	s, v := loadShop(t)
	place := method(t, s, "Place")
	if v.Responses(place, validate.ResponsesOff) != nil {
		t.Error("Responses(off) is not nil")
	}
	badReply := wire(t, s, place, `{"card":"c"}`)
	for _, mode := range []validate.ResponseMode{validate.ResponsesLog, validate.ResponsesFail} {
		inv := &fakeInvoker{reply: badReply}
		route := &router.Route{Method: place, Invoker: inv}
		h := router.Chain(router.Dispatch, v.Responses(place, mode))
		before := v.ResponseViolations()
		err := h.Handle(context.Background(), &router.Call{Route: route, Decode: func() ([]byte, error) { return nil, nil }})
		if v.ResponseViolations() != before+1 {
			t.Errorf("%s: violation not counted", mode)
		}
		wantCode := codes.OK
		if mode == validate.ResponsesFail {
			wantCode = codes.Internal
		}
		if status.Code(err) != wantCode {
			t.Errorf("%s: err = %v, want %s", mode, err, wantCode)
		}
	}
}

func TestUndecodableRequest(t *testing.T) {
	s, v := loadShop(t)
	chain := router.Chain(router.Dispatch, v.Requests(method(t, s, "Place")))
	err := chain.Handle(context.Background(), &router.Call{Route: &router.Route{}, Decode: func() ([]byte, error) { return []byte{0xff, 0xff}, nil }})
	if status.Code(err) != codes.InvalidArgument || errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want INVALID_ARGUMENT", err)
	}
}

// BenchmarkValidation measures the validation step on a request with rules
// and the cost for a request type without any (nothing runs at all).
func BenchmarkValidation(b *testing.B) {
	s, v := loadShop(b)
	place := method(b, s, "Place")
	run := func(b *testing.B, md protoreflect.MethodDescriptor, body string) {
		route := &router.Route{Method: md, Invoker: &fakeInvoker{}}
		chain := router.Dispatch
		if step := v.Requests(md); step != nil { // nil: no rules, no step
			chain = step(chain)
		}
		req := wire(b, s, md, body)
		decode := func() ([]byte, error) { return req, nil }
		b.ReportAllocs()
		for b.Loop() {
			if err := chain.Handle(context.Background(), &router.Call{Route: route, Decode: decode}); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("with-rules", func(b *testing.B) { run(b, place, validOrder) })
	b.Run("without-rules", func(b *testing.B) { run(b, method(b, s, "Echo"), `{"anything":"x"}`) })
}

// FuzzDecodersAgree: the decoder the build uses (hyperpb on amd64 and
// arm64) and dynamicpb's refuse the same bytes, and protovalidate finds
// the same violations in what they decode.
func FuzzDecodersAgree(f *testing.F) {
	s, _ := loadShop(f)
	in := method(f, s, "Place").Input()
	for _, js := range []string{
		validOrder,
		`{"title":"t","items":[{"isbn":"123","quantity":11}],"labels":{"x":"y"},"giftNote":"hi"}`,
		`{"items":[{"isbn":"1","quantity":0}],"size":7,"voucher":"v"}`,
		`{}`,
	} {
		f.Add(wire(f, s, method(f, s, "Place"), js))
	}
	f.Add([]byte{0xff, 0xff})                  // a truncated varint tag
	f.Add([]byte{0x0a, 0x02, 0xc3, 0x28})      // title: invalid UTF-8
	f.Add([]byte{0x1a, 0x05, 0x0a, 0x03, 'x'}) // items[0] cut short
	build, dynamic := validate.NewDecoder(in, s.Types()), validate.DynamicDecoder(in, s.Types())
	pv, err := protovalidate.New()
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m1, err1 := build(b)
		m2, err2 := dynamic(b)
		if (err1 == nil) != (err2 == nil) {
			t.Fatalf("%x: the build's decoder says %v, dynamicpb %v", b, err1, err2)
		}
		if err1 != nil {
			return
		}
		v1, v2 := violations(pv.Validate(m1)), violations(pv.Validate(m2))
		if v1 != v2 {
			t.Errorf("%x: violations %q, dynamicpb's %q", b, v1, v2)
		}
	})
}

// violations lists a validation error's violated fields and rules, sorted:
// the order of a map's violations follows the map's iteration order.
func violations(err error) string {
	var ve *protovalidate.ValidationError
	if !errors.As(err, &ve) {
		if err != nil {
			return "error: " + err.Error()
		}
		return ""
	}
	var out []string
	for _, v := range ve.Violations {
		out = append(out, protovalidate.FieldPathString(v.Proto.GetField())+" "+v.Proto.GetRuleId())
	}
	slices.Sort(out)
	return strings.Join(out, "; ")
}

// BenchmarkDecoders compares the decoder the build uses with dynamicpb's
// on a valid order, decoding and checking it.
func BenchmarkDecoders(b *testing.B) {
	s, _ := loadShop(b)
	place := method(b, s, "Place")
	req := wire(b, s, place, validOrder)
	pv, err := protovalidate.New()
	if err != nil {
		b.Fatal(err)
	}
	for name, decode := range map[string]func([]byte) (proto.Message, error){
		"build":     validate.NewDecoder(place.Input(), s.Types()),
		"dynamicpb": validate.DynamicDecoder(place.Input(), s.Types()),
	} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				m, err := decode(req)
				if err == nil {
					err = pv.Validate(m)
				}
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
