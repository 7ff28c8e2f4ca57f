// Package tracing is Rosetta's OpenTelemetry tracing: the tracer provider
// the configuration asks for (OTLP over gRPC or HTTP, sampling), the W3C
// trace-context and baggage propagation over gRPC metadata (which carries
// HTTP headers and MQTT 5 user properties alike), and the child spans of a
// call's work (upstream attempts, aggregate steps, policy I/O).
//
// Tracing is off by default. Off, no span is ever started: the helpers
// find no span in the context and return at once, so a call pays one
// context lookup.
package tracing

import (
	"cmp"
	"context"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/metadata"
)

// Config is the tracing section of the configuration.
type Config struct {
	// OTLP exports the spans to an OpenTelemetry collector; without it
	// tracing is off.
	OTLP *OTLPConfig `yaml:"otlp"`
	// SamplingRatio is the share of new traces recorded, 0 to 1 (default 1).
	SamplingRatio *float64 `yaml:"sampling_ratio"`
	// ParentBased follows the sampling decision of an incoming traceparent
	// (default true); the ratio then applies to traces the gateway starts.
	ParentBased *bool `yaml:"parent_based"`
	// ServiceName is the service.name resource attribute (default
	// "rosetta").
	ServiceName string `yaml:"service_name"`
}

// OTLPConfig says where the spans go.
type OTLPConfig struct {
	// Endpoint is the collector's host:port (4317 for gRPC, 4318 for HTTP
	// by convention).
	Endpoint string `yaml:"endpoint"`
	// Protocol is grpc (the default) or http (protobuf over HTTP).
	Protocol string `yaml:"protocol"`
	// Insecure sends without TLS.
	Insecure bool `yaml:"insecure"`
}

// Check reports what is wrong with c.
func (c *Config) Check() error {
	if c.OTLP == nil {
		return nil
	}
	if c.OTLP.Endpoint == "" {
		return fmt.Errorf("otlp.endpoint is required")
	}
	switch c.OTLP.Protocol {
	case "", "grpc", "http":
	default:
		return fmt.Errorf("otlp.protocol %q: want grpc or http", c.OTLP.Protocol)
	}
	if r := c.SamplingRatio; r != nil && (*r < 0 || *r > 1) {
		return fmt.Errorf("sampling_ratio %v: want a number from 0 to 1", *r)
	}
	return nil
}

// Provider is a running tracer provider and its exporter.
type Provider struct {
	sdk    *sdktrace.TracerProvider
	tracer trace.Tracer
}

// New starts the tracer provider c describes; nil when tracing is off.
func New(ctx context.Context, c Config) (*Provider, error) {
	if c.OTLP == nil {
		return nil, nil
	}
	if err := c.Check(); err != nil {
		return nil, err
	}
	var client otlptrace.Client
	const timeout = 10 * time.Second
	if c.OTLP.Protocol == "http" {
		opts := []otlptracehttp.Option{otlptracehttp.WithEndpoint(c.OTLP.Endpoint), otlptracehttp.WithTimeout(timeout)}
		if c.OTLP.Insecure {
			opts = append(opts, otlptracehttp.WithInsecure())
		}
		client = otlptracehttp.NewClient(opts...)
	} else {
		opts := []otlptracegrpc.Option{otlptracegrpc.WithEndpoint(c.OTLP.Endpoint), otlptracegrpc.WithTimeout(timeout)}
		if c.OTLP.Insecure {
			opts = append(opts, otlptracegrpc.WithInsecure())
		}
		client = otlptracegrpc.NewClient(opts...)
	}
	exp, err := otlptrace.New(ctx, client)
	if err != nil {
		return nil, fmt.Errorf("tracing.otlp: %v", err)
	}
	ratio := 1.0
	if c.SamplingRatio != nil {
		ratio = *c.SamplingRatio
	}
	sampler := sdktrace.TraceIDRatioBased(ratio)
	if c.ParentBased == nil || *c.ParentBased {
		sampler = sdktrace.ParentBased(sampler)
	}
	res := resource.NewSchemaless(attribute.String("service.name", cmp.Or(c.ServiceName, "rosetta")))
	sdk := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp, sdktrace.WithBatchTimeout(time.Second)),
		sdktrace.WithSampler(sampler), sdktrace.WithResource(res))
	return &Provider{sdk: sdk, tracer: sdk.Tracer(scope)}, nil
}

// scope is the instrumentation scope of every span.
const scope = "github.com/rosettagw/rosetta"

// Tracer returns the provider's tracer; nil for a nil provider.
func (p *Provider) Tracer() trace.Tracer {
	if p == nil {
		return nil
	}
	return p.tracer
}

// Shutdown exports the spans still buffered and stops the exporter.
func (p *Provider) Shutdown(ctx context.Context) error {
	if p == nil {
		return nil
	}
	return p.sdk.Shutdown(ctx)
}

// propagator reads and writes W3C traceparent, tracestate and baggage.
var propagator = propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})

// Keys are the metadata keys the propagation reads and writes.
var Keys = []string{"traceparent", "tracestate", "baggage"}

// carrier is gRPC metadata (lower-case keys) as a propagation carrier.
type carrier metadata.MD

func (c carrier) Get(key string) string {
	if vs := c[key]; len(vs) > 0 {
		return vs[0]
	}
	return ""
}

func (c carrier) Set(key, value string) { c[key] = []string{value} }

func (c carrier) Keys() []string {
	out := make([]string, 0, len(c))
	for k := range c {
		out = append(out, k)
	}
	return out
}

// Server starts the server span of a call on tracer, named name: the child
// of the span already in ctx (an aggregate step calling a method through
// its chain), else of the trace context and baggage that in (the call's
// incoming headers, metadata or user properties) carries, else the root
// of a new trace.
func Server(ctx context.Context, tracer trace.Tracer, name string, in metadata.MD, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	kind := trace.SpanKindInternal
	if !trace.SpanContextFromContext(ctx).IsValid() {
		kind = trace.SpanKindServer
		if in != nil {
			ctx = propagator.Extract(ctx, carrier(in))
		}
	}
	return tracer.Start(ctx, name, trace.WithSpanKind(kind), trace.WithAttributes(attrs...))
}

// Active reports whether ctx holds a span: whether the call is traced
// (sampled or not). Callers test it before building a span's attributes.
func Active(ctx context.Context) bool { return trace.SpanContextFromContext(ctx).IsValid() }

// Start starts a child span of the span in ctx; when ctx holds none
// (tracing is off), it returns ctx and a span that records nothing, at
// the cost of one context lookup.
func Start(ctx context.Context, name string, kind trace.SpanKind, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	parent := trace.SpanFromContext(ctx)
	if !parent.SpanContext().IsValid() {
		return ctx, parent
	}
	return parent.TracerProvider().Tracer(scope).Start(ctx, name, trace.WithSpanKind(kind), trace.WithAttributes(attrs...))
}

// Inject writes the trace context and baggage of ctx into md, for an
// upstream (gRPC metadata, HTTP headers, MQTT user properties). It writes
// nothing when ctx holds no span.
func Inject(ctx context.Context, md metadata.MD) {
	if md == nil || !trace.SpanContextFromContext(ctx).IsValid() {
		return
	}
	propagator.Inject(ctx, carrier(md))
}

// End ends span with the outcome of its work: an error marks it failed.
func End(span trace.Span, err error) {
	if err != nil && span.IsRecording() {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}
