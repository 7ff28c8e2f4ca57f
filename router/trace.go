package router

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/metadata"

	"github.com/rosettagw/rosetta/tracing"
)

// startAttempt starts the span of one upstream attempt of c, a child of
// the call's span, and writes its trace context into the metadata the
// upstream receives; end ends it with the attempt's outcome. Untraced
// calls (tracing off) pay one context lookup.
func startAttempt(ctx context.Context, c *Call) (context.Context, func(*Reply, error)) {
	if !tracing.Active(ctx) {
		return ctx, func(*Reply, error) {}
	}
	ctx, span := tracing.Start(ctx, "upstream "+c.Route.Upstream, trace.SpanKindClient,
		attribute.String("rosetta.upstream", c.Route.Upstream),
		attribute.String("rosetta.target", c.Target),
		attribute.Int("rosetta.attempt", c.Attempts))
	if c.Metadata == nil {
		c.Metadata = metadata.MD{}
	}
	tracing.Inject(ctx, c.Metadata)
	return ctx, func(reply *Reply, err error) {
		if reply != nil && reply.HTTPStatus != 0 {
			span.SetAttributes(attribute.Int("http.response.status_code", reply.HTTPStatus))
		}
		tracing.End(span, err)
	}
}

// startStep starts the span of an aggregate step; end ends it with the
// step's outcome.
func startStep(ctx context.Context, name string) (context.Context, func(error)) {
	if !tracing.Active(ctx) {
		return ctx, func(error) {}
	}
	ctx, span := tracing.Start(ctx, "step "+name, trace.SpanKindInternal, attribute.String("rosetta.step", name))
	return ctx, func(err error) { tracing.End(span, err) }
}

// traced returns md with the trace context of ctx, for an aggregate step's
// upstream: a copy, since the steps share md and run in parallel; md itself
// when the call is not traced.
func traced(ctx context.Context, md metadata.MD) metadata.MD {
	if !tracing.Active(ctx) {
		return md
	}
	md = md.Copy()
	if md == nil {
		md = metadata.MD{}
	}
	tracing.Inject(ctx, md)
	return md
}
