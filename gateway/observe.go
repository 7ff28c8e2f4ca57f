package gateway

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	otelcodes "go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/codes"

	"github.com/rosettagw/rosetta/accesslog"
	"github.com/rosettagw/rosetta/router"
	"github.com/rosettagw/rosetta/tracing"
	"github.com/rosettagw/rosetta/transports/admin"
)

// observe is the first step of every chain, once per call whatever the
// protocol: it counts and times the call (metrics), runs it in its server
// span (tracing), and fills in the call's access-log record, which the
// ingress writes once the answer is sent.
type observe struct {
	name    string
	metrics *admin.RouteMetrics // nil: no admin listener
	tracer  trace.Tracer        // nil: tracing off
	next    router.Handler
}

// observeStep returns the observe step of the chain named name.
func (g *builder) observeStep(name string) router.Middleware {
	var rm *admin.RouteMetrics
	if g.metrics != nil {
		rm = g.metrics.Route(name)
	}
	return func(next router.Handler) router.Handler {
		return &observe{name: name, metrics: rm, tracer: g.tracer, next: next}
	}
}

func (o *observe) Handle(ctx context.Context, c *router.Call) error {
	start := time.Now()
	rec := accesslog.FromContext(ctx)
	if !rec.Claim() {
		rec = nil // no access log, or an aggregate's step: the outer call logs
	}
	var span trace.Span
	if o.tracer != nil {
		ctx, span = o.startSpan(ctx, c)
	}
	err := o.next.Handle(ctx, c)
	o.record(ctx, c, err, start, span, rec)
	return err
}

// record counts and times the call, ends its span and fills in its
// access-log record. Like startSpan, it keeps its locals out of Handle's
// frame.
//
//go:noinline
func (o *observe) record(ctx context.Context, c *router.Call, err error, start time.Time, span trace.Span, rec *accesslog.Record) {
	code := admin.CodeOf(c, err)
	if o.metrics != nil {
		o.metrics.Observe(c.Protocol, code, time.Since(start))
		if reason := router.StreamEndReason(err); reason != "" {
			o.metrics.StreamEnded(c.Protocol, reason)
		}
	}
	if span != nil {
		span.SetAttributes(attribute.String("rpc.grpc.status_code", code.String()))
		if c.Identity != nil {
			span.SetAttributes(attribute.String("enduser.id", c.Identity.Subject))
		}
		if code != codes.OK {
			span.SetStatus(otelcodes.Error, code.String())
		}
		span.End()
	}
	if rec != nil {
		rec.Update(func(rec *accesslog.Record) { o.fill(rec, ctx, c, code) })
	}
}

// startSpan starts the call's server span. It is a function of its own so
// that its attributes are not in Handle's frame, which stays on the stack
// of a streaming call's goroutine for the life of the call.
//
//go:noinline
func (o *observe) startSpan(ctx context.Context, c *router.Call) (context.Context, trace.Span) {
	return tracing.Server(ctx, o.tracer, o.name, c.Incoming,
		attribute.String("rpc.method", o.name),
		attribute.String("rosetta.protocol", string(c.Protocol)),
		attribute.String("rosetta.route", routeName(c.Route)),
		attribute.String("network.peer.address", c.Peer.Addr().String()))
}

// fill records what the call turned out to be.
func (o *observe) fill(rec *accesslog.Record, ctx context.Context, c *router.Call, code codes.Code) {
	rec.Route, rec.Code, rec.HasCode, rec.Attempts = o.name, code, true, c.Attempts
	if rec.Protocol == "" {
		rec.Protocol = string(c.Protocol)
	}
	if c.Route != nil {
		rec.Upstream = c.Route.Upstream
	}
	rec.Endpoint = endpointOf(c)
	if c.Identity != nil {
		rec.Subject = c.Identity.Subject
	}
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		rec.Trace, rec.Span = sc.TraceID(), sc.SpanID()
	}
}

// endpointOf is the address of the upstream endpoint the call's last
// attempt (or its stream) reached, for the access log ("" for a call that
// reached none).
func endpointOf(c *router.Call) string {
	if c.Reply == nil {
		return ""
	}
	return c.Reply.Endpoint
}

// routeName names a route for a span: its HTTP binding, else its target.
func routeName(r *router.Route) string {
	if r == nil {
		return ""
	}
	if r.Template != nil {
		return r.HTTPMethod + " " + r.Template.Source
	}
	return r.Target
}
