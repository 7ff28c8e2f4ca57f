package router

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/rosettagw/rosetta/translate"
)

// PartialHeader is the response header (metadata key) that lists, comma
// separated, the optional steps that failed when an aggregate answers with
// a partial result.
const PartialHeader = "rosetta-partial"

// compensationTimeout bounds a compensation call that has no timeout of its
// own; it runs after the call has failed, possibly past the route deadline.
const compensationTimeout = 10 * time.Second

// Aggregate is the handler of a composed route: it decodes the call's input
// message, runs the steps as a dependency graph (independent steps in
// parallel, fan-out steps once per element with bounded concurrency) and
// answers with one JSON object, as a google.protobuf.Struct. It uses only
// the Call, so every ingress can serve it: a unary ingress (REST, MQTT)
// through Decode and Reply, a stream ingress (WebSocket) through the Call's
// Stream, from which it reads one input message and to which it sends the
// answer.
type Aggregate struct {
	input    protoreflect.MessageType
	steps    []*step // every step, in declaration order
	run      []*step // the steps of a call (all but the compensations)
	answer   []answerPart
	timeout  time.Duration
	resolver translate.Resolver
}

// step is one compiled upstream call.
type step struct {
	name       string
	index      int
	inv        Invoker
	target     string
	http       *httpTarget // nil for a gRPC step
	req, resp  protoreflect.MessageType
	fields     []assign
	deps       []int
	forEach    *source
	optional   bool
	timeout    time.Duration
	compensate *step

	concurrency, maxItems int
}

// assign sets a request field (the whole request when target is empty).
type assign struct {
	target []protoreflect.FieldDescriptor
	src    source
}

// answerPart is one key of the answer, or a message merged into it.
type answerPart struct {
	key   string
	src   source
	merge bool
}

// value is what a source yields: one value or a list of values. has is
// false when the field is unset.
type value struct {
	one  protoreflect.Value
	many []protoreflect.Value
	list bool
	has  bool
}

// outcome is a step's result.
type outcome struct {
	val value
	err error
}

// execution is the state of one call of an Aggregate.
type execution struct {
	agg      *Aggregate
	input    protoreflect.Message
	identity *Identity
	md       metadata.MD
	out      []outcome
	done     []chan struct{}

	mu     sync.Mutex
	failed error // the first required step's failure
	cancel context.CancelFunc
}

// Handle runs the composed call. A failed required step fails the call with
// its status (its message prefixed with the step name), cancels every step
// still running and calls the compensations of the steps that succeeded.
func (a *Aggregate) Handle(ctx context.Context, c *Call) error {
	wire, err := request(c)
	if err != nil {
		return err
	}
	in := a.input.New()
	if err := proto.Unmarshal(wire, in.Interface()); err != nil {
		return status.Errorf(codes.InvalidArgument, "the request is not a valid %s: %v", a.input.Descriptor().FullName(), err)
	}
	c.Attempts++ // the composed call is one attempt; its steps are not retried
	ctx = context.WithValue(ctx, callerKey{}, c)
	outer := ctx
	if a.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, a.timeout)
		defer cancel()
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	x := &execution{agg: a, input: in, identity: c.Identity, md: c.Metadata, out: make([]outcome, len(a.steps)), done: make([]chan struct{}, len(a.steps)), cancel: cancel}
	for _, s := range a.run {
		x.done[s.index] = make(chan struct{})
	}
	var wg sync.WaitGroup
	for _, s := range a.run {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer close(x.done[s.index])
			x.runStep(ctx, s)
		}()
	}
	wg.Wait()
	if x.failed != nil {
		return x.compensate(outer)
	}
	answer, failed, err := x.buildAnswer()
	if err != nil {
		return status.Errorf(codes.Internal, "aggregate answer: %v", err)
	}
	if len(failed) > 0 {
		if c.ResponseHeader == nil {
			c.ResponseHeader = metadata.MD{}
		}
		c.ResponseHeader.Set(PartialHeader, strings.Join(failed, ","))
	}
	if c.Stream != nil {
		if err := c.Stream.SetHeader(c.ResponseHeader); err != nil {
			return err
		}
		if err := c.Stream.Send(answer); err != nil || c.Flush == nil {
			return err
		}
		return c.Flush()
	}
	c.Reply = &Reply{Message: answer}
	return nil
}

// request returns the call's input message in wire form: the one message
// of its Stream, or what Decode yields.
func request(c *Call) ([]byte, error) {
	if c.Stream == nil {
		return c.Decode()
	}
	wire, err := c.Stream.Recv()
	if errors.Is(err, io.EOF) {
		return nil, status.Error(codes.InvalidArgument, "the client sent no request message")
	}
	return wire, err
}

// runStep waits for the step's dependencies, then calls it.
func (x *execution) runStep(ctx context.Context, s *step) {
	o := &x.out[s.index]
	for _, d := range s.deps {
		select {
		case <-x.done[d]:
		case <-ctx.Done():
			o.err = stepError(s.name, ctx.Err())
			x.fail(s, o.err)
			return
		}
		if err := x.out[d].err; err != nil {
			o.err = status.Errorf(codes.Aborted, "step %s did not run: step %s failed", s.name, x.agg.steps[d].name)
			x.fail(s, o.err)
			return
		}
	}
	if s.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.timeout)
		defer cancel()
	}
	ctx, end := startStep(ctx, s.name)
	defer func() { end(o.err) }()
	if s.forEach == nil {
		var m protoreflect.Message
		if m, o.err = x.call(ctx, s, value{}); o.err == nil {
			o.val = value{one: protoreflect.ValueOfMessage(m), has: true}
		}
	} else {
		o.val, o.err = x.fanOut(ctx, s)
	}
	if o.err != nil {
		o.err = stepError(s.name, o.err)
		x.fail(s, o.err)
	}
}

// fail records a required step's failure and cancels the other steps.
func (x *execution) fail(s *step, err error) {
	if s.optional {
		return
	}
	x.mu.Lock()
	if x.failed == nil {
		x.failed = err
	}
	x.mu.Unlock()
	x.cancel()
}

// fanOut calls s once per element of its for_each source, at most
// s.concurrency at a time, and returns the responses in element order.
func (x *execution) fanOut(ctx context.Context, s *step) (value, error) {
	items := x.get(*s.forEach, value{})
	if len(items.many) > s.maxItems {
		return value{}, status.Errorf(codes.ResourceExhausted, "fan-out over %d items exceeds the bound of %d", len(items.many), s.maxItems)
	}
	out := make([]protoreflect.Value, len(items.many))
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		next     atomic.Int64
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
	)
	for range min(s.concurrency, len(items.many)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(items.many) || ctx.Err() != nil {
					return
				}
				m, err := x.call(ctx, s, value{one: items.many[i], has: true})
				if err != nil {
					errOnce.Do(func() {
						p := status.Convert(err).Proto()
						p.Message = fmt.Sprintf("item %d: %s", i, p.Message)
						firstErr = status.ErrorProto(p)
						cancel()
					})
					return
				}
				out[i] = protoreflect.ValueOfMessage(m)
			}
		}()
	}
	wg.Wait()
	if firstErr == nil && ctx.Err() != nil {
		firstErr = ctx.Err()
	}
	return value{many: out, list: true, has: true}, firstErr
}

// call builds s's request (item is the fan-out element) and invokes it.
func (x *execution) call(ctx context.Context, s *step, item value) (protoreflect.Message, error) {
	req := s.req.New()
	for _, a := range s.fields {
		if a.src.root == rootSubject || a.src.root == rootClaim {
			leaf := a.target[len(a.target)-1]
			v, err := x.identityValue(a.src, leaf)
			if err != nil {
				return nil, err
			}
			set(req, a.target, value{one: v, has: true})
			continue
		}
		v := x.get(a.src, item)
		if v.has {
			set(req, a.target, v)
		}
	}
	target := s.target
	var body []byte
	var err error
	if s.http != nil {
		target, body, err = s.http.request(req, x.agg.resolver)
	} else {
		body, err = proto.Marshal(req.Interface())
	}
	if err != nil {
		if _, ok := status.FromError(err); ok {
			return nil, err
		}
		return nil, status.Errorf(codes.Internal, "request: %v", err)
	}
	reply, err := s.inv.Invoke(ctx, target, body, traced(ctx, x.md))
	if err != nil {
		return nil, err
	}
	resp := s.resp.New()
	if s.http != nil {
		if reply.HTTPStatus < 200 || reply.HTTPStatus > 299 {
			return nil, httpError(reply)
		}
		err = protojson.UnmarshalOptions{DiscardUnknown: true, Resolver: x.agg.resolver}.Unmarshal(reply.Message, resp.Interface())
	} else {
		err = proto.Unmarshal(reply.Message, resp.Interface())
	}
	if err != nil {
		return nil, status.Errorf(codes.Internal, "undecodable response: %v", err)
	}
	return resp, nil
}

// stepError names the step in err's status message. An error without a
// status (a context's) gets the status its kind implies.
func stepError(name string, err error) error {
	st, ok := status.FromError(err)
	if !ok {
		st = status.FromContextError(err)
	}
	p := st.Proto()
	p.Message = "step " + name + ": " + p.Message
	return status.ErrorProto(p)
}

// get evaluates src; item is the current fan-out element.
func (x *execution) get(src source, item value) value {
	var v value
	switch src.root {
	case rootInput:
		v = value{one: protoreflect.ValueOfMessage(x.input), has: true}
	case rootItem:
		v = item
	default:
		v = x.out[src.root].val
	}
	for _, fd := range src.path {
		m := v.one.Message()
		has := v.has && m.Has(fd)
		f := m.Get(fd)
		if fd.IsList() {
			l := f.List()
			v = value{many: make([]protoreflect.Value, l.Len()), list: true, has: has}
			for i := range v.many {
				v.many[i] = l.Get(i)
			}
		} else {
			v = value{one: f, has: has}
		}
	}
	return v
}

// set assigns v to the field path target of m (to m itself when empty).
func set(m protoreflect.Message, target []protoreflect.FieldDescriptor, v value) {
	if len(target) == 0 {
		proto.Merge(m.Interface(), v.one.Message().Interface())
		return
	}
	for _, fd := range target[:len(target)-1] {
		m = m.Mutable(fd).Message()
	}
	leaf := target[len(target)-1]
	switch {
	case leaf.IsList():
		l := m.Mutable(leaf).List()
		for _, e := range v.many {
			l.Append(e)
		}
	case leaf.IsMap():
		dst := m.Mutable(leaf).Map()
		v.one.Map().Range(func(k protoreflect.MapKey, e protoreflect.Value) bool {
			dst.Set(k, e)
			return true
		})
	default:
		m.Set(leaf, v.one)
	}
}

// compensate calls, last declared step first, the compensation of every
// step that succeeded, and returns the call's failure. Compensations run on
// a context that outlives the caller's cancellation, each bounded by its
// timeout.
func (x *execution) compensate(ctx context.Context) error {
	ctx = context.WithoutCancel(ctx)
	var problems []string
	for i := len(x.agg.run) - 1; i >= 0; i-- {
		s := x.agg.run[i]
		if s.compensate == nil || x.out[s.index].err != nil {
			continue
		}
		c := s.compensate
		timeout := c.timeout
		if timeout <= 0 {
			timeout = compensationTimeout
		}
		cctx, cancel := context.WithTimeout(ctx, timeout)
		_, err := x.call(cctx, c, value{})
		cancel()
		if err != nil {
			problems = append(problems, fmt.Sprintf("compensation %s failed: %v", c.name, status.Convert(err).Message()))
		}
	}
	if len(problems) == 0 {
		return x.failed
	}
	p := status.Convert(x.failed).Proto()
	p.Message += " (" + strings.Join(problems, "; ") + ")"
	return status.ErrorProto(p)
}

// callerKey keys the call of an aggregate in its steps' context.
type callerKey struct{}

// MethodInvoker returns the Invoker by which an aggregate step calls
// route's method: through the method's own chain (its policies, its
// validation, then Dispatch to route's upstream), as the aggregate's caller,
// so that a policy of the method holds however the method is reached. The
// step's call carries the caller's identity material (peer, headers, query,
// certificates, credentials); its metadata is the step's.
func MethodInvoker(route *Route) Invoker { return methodInvoker{route} }

type methodInvoker struct{ route *Route }

func (m methodInvoker) Invoke(ctx context.Context, target string, req []byte, md metadata.MD) (*Reply, error) {
	c := &Call{Route: m.route, Target: target, Metadata: md.Copy(), Decode: func() ([]byte, error) { return req, nil }}
	if caller, ok := ctx.Value(callerKey{}).(*Call); ok {
		c.Protocol, c.Peer, c.RawQuery = caller.Protocol, caller.Peer, caller.RawQuery
		c.PeerCertificates, c.Credentials = caller.PeerCertificates, caller.Credentials
		c.Incoming = caller.Incoming.Copy() // steps run in parallel, and a step may add to it
	}
	if c.Metadata == nil {
		c.Metadata = metadata.MD{}
	}
	if c.Incoming == nil {
		c.Incoming = metadata.MD{}
	}
	err := m.route.Handler.Handle(ctx, c)
	return c.Reply, err
}
