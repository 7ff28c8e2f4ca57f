// Package validate enforces the buf.validate (protovalidate) rules that a
// schema declares on its request messages, before any upstream call, for
// every protocol; and, where switched on, checks upstream responses against
// their own rules.
package validate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"

	"buf.build/go/protovalidate"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/rosettagw/rosetta/router"
	"github.com/rosettagw/rosetta/translate"
)

// ruleExtension is the field number of buf.validate.message, .field and
// .oneof in their options messages.
const ruleExtension = 1159

// Validator holds the compiled rules of one schema generation. Rules are
// compiled once per message type and cached; it is safe for concurrent use.
type Validator struct {
	v        protovalidate.Validator
	resolver translate.Resolver
	log      *slog.Logger
	// responseViolations counts upstream responses that broke their rules.
	responseViolations atomic.Uint64
}

// decoder decodes messages of one type into what protovalidate checks.
type decoder func([]byte) (proto.Message, error)

// unmarshal is how a decoder parses. AllowPartial: the rules checked are
// buf.validate's, and a proto2 required field is the upstream's to enforce
// (as it is for a message without rules, which is never decoded here);
// checking it would walk the whole message once more per call.
var unmarshal = proto.UnmarshalOptions{AllowPartial: true}

// dynamicDecoder decodes into dynamicpb messages, with res resolving
// extensions.
func dynamicDecoder(md protoreflect.MessageDescriptor, res translate.Resolver) decoder {
	opts := unmarshal
	opts.Resolver = res
	return func(b []byte) (proto.Message, error) {
		m := dynamicpb.NewMessage(md)
		return m, opts.Unmarshal(b, m)
	}
}

// New returns a Validator for messages of the schema that res resolves.
func New(res translate.Resolver, log *slog.Logger) (*Validator, error) {
	v, err := protovalidate.New(protovalidate.WithExtensionTypeResolver(res))
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Validator{v: v, resolver: res, log: log}, nil
}

// Requests returns the chain step that checks method md's request
// messages after they are decoded and before any goes upstream: the one
// message of a unary call, and every client message of a stream. It
// returns nil when the request type (with everything it contains)
// declares no rule, so that such schemas pay nothing.
func (v *Validator) Requests(md protoreflect.MethodDescriptor) router.Middleware {
	in := md.Input()
	if !HasRules(in) {
		return nil
	}
	decode := newDecoder(in, v.resolver)
	check := func(req []byte) error {
		msg, err := decode(req)
		if err != nil {
			return status.Errorf(codes.InvalidArgument, "request %s: %v", in.FullName(), err)
		}
		return v.check(msg, "request")
	}
	return func(next router.Handler) router.Handler {
		return router.HandlerFunc(func(ctx context.Context, c *router.Call) error {
			if c.Stream != nil {
				c.Stream = checkedStream{c.Stream, check}
			} else if decode := c.Decode; decode != nil {
				c.Decode = func() ([]byte, error) {
					req, err := decode()
					if err == nil {
						err = check(req)
					}
					return req, err
				}
			}
			return next.Handle(ctx, c)
		})
	}
}

// checkedStream checks every client message before it is passed on.
type checkedStream struct {
	router.Stream
	check func([]byte) error
}

func (s checkedStream) Recv() ([]byte, error) {
	msg, err := s.Stream.Recv()
	if err == nil {
		err = s.check(msg)
	}
	return msg, err
}

// Collector exports the count of upstream responses that broke their
// schema's rules (an unchecked collector: it describes nothing up front).
func (v *Validator) Collector() prometheus.Collector { return violations{v} }

var violationsDesc = prometheus.NewDesc("rosetta_validation_response_violations_total",
	"Upstream responses that broke their schema's buf.validate rules.", nil, nil)

type violations struct{ v *Validator }

func (violations) Describe(chan<- *prometheus.Desc) {}

func (c violations) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(violationsDesc, prometheus.CounterValue, float64(c.v.ResponseViolations()))
}

// check validates msg and turns violations into INVALID_ARGUMENT with a
// google.rpc.BadRequest detail listing every violated field and rule.
func (v *Validator) check(msg proto.Message, what string) error {
	err := v.v.Validate(msg)
	if err == nil {
		return nil
	}
	var ve *protovalidate.ValidationError
	if !errors.As(err, &ve) {
		return status.Errorf(codes.Internal, "validating %s: %v", what, err)
	}
	br := &errdetails.BadRequest{}
	parts := make([]string, 0, len(ve.Violations))
	for _, viol := range ve.Violations {
		field := protovalidate.FieldPathString(viol.Proto.GetField())
		id := viol.Proto.GetRuleId()
		br.FieldViolations = append(br.FieldViolations, &errdetails.BadRequest_FieldViolation{
			Field: field, Description: viol.Proto.GetMessage(), Reason: id,
		})
		parts = append(parts, strings.TrimPrefix(field+": "+viol.Proto.GetMessage()+" ("+id+")", ": "))
	}
	st := status.New(codes.InvalidArgument, fmt.Sprintf("%s violates %d rule(s): %s", what, len(parts), strings.Join(parts, "; ")))
	if withDetail, err := st.WithDetails(br); err == nil {
		st = withDetail
	}
	return st.Err()
}

// ResponseMode says what happens to an upstream response that breaks its
// own schema's rules.
type ResponseMode string

// The response modes.
const (
	// ResponsesOff does not check responses (the default).
	ResponsesOff ResponseMode = ""
	// ResponsesLog logs and counts a violating response and answers it anyway.
	ResponsesLog ResponseMode = "log"
	// ResponsesFail logs and counts it and answers INTERNAL instead.
	ResponsesFail ResponseMode = "fail"
)

// Responses returns the policy that checks method md's unary responses, or
// nil when mode is off or the response type declares no rule.
func (v *Validator) Responses(md protoreflect.MethodDescriptor, mode ResponseMode) router.Middleware {
	out := md.Output()
	if mode == ResponsesOff || !HasRules(out) || md.IsStreamingServer() {
		return nil
	}
	decode := newDecoder(out, v.resolver)
	return func(next router.Handler) router.Handler {
		return router.HandlerFunc(func(ctx context.Context, c *router.Call) error {
			if err := next.Handle(ctx, c); err != nil || c.Reply == nil {
				return err
			}
			msg, err := decode(c.Reply.Message)
			if err == nil {
				err = v.check(msg, "response")
			}
			if err == nil {
				return nil
			}
			v.responseViolations.Add(1)
			v.log.Warn("upstream response breaks its schema's rules", "method", md.FullName(), "error", err)
			if mode == ResponsesFail {
				return status.Errorf(codes.Internal, "upstream response of %s breaks its schema's rules", md.FullName())
			}
			return nil
		})
	}
}

// ResponseViolations returns how many upstream responses broke their rules.
func (v *Validator) ResponseViolations() uint64 { return v.responseViolations.Load() }

// HasRules reports whether md, or any message it contains, declares a
// buf.validate rule on the message, a field or a oneof.
func HasRules(md protoreflect.MessageDescriptor) bool {
	return hasRules(md, map[protoreflect.FullName]bool{})
}

func hasRules(md protoreflect.MessageDescriptor, seen map[protoreflect.FullName]bool) bool {
	if seen[md.FullName()] {
		return false
	}
	seen[md.FullName()] = true
	if optionsHaveRule(md.Options()) {
		return true
	}
	for i := 0; i < md.Oneofs().Len(); i++ {
		if optionsHaveRule(md.Oneofs().Get(i).Options()) {
			return true
		}
	}
	fields := md.Fields()
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		if optionsHaveRule(fd.Options()) {
			return true
		}
		if fd.IsMap() {
			fd = fd.MapValue()
		}
		if fd.Message() != nil && hasRules(fd.Message(), seen) {
			return true
		}
	}
	return false
}

// optionsHaveRule reports whether an options message carries the
// buf.validate extension, whether it was parsed as an extension, a dynamic
// message or unknown fields.
func optionsHaveRule(opts proto.Message) bool {
	if opts == nil {
		return false
	}
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(opts)
	if err != nil {
		return false
	}
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return false
		}
		if num == ruleExtension {
			return true
		}
		b = b[n:]
		m := protowire.ConsumeFieldValue(num, typ, b)
		if m < 0 {
			return false
		}
		b = b[m:]
	}
	return false
}
