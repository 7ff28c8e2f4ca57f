package router

import (
	"time"

	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/rosettagw/rosetta/translate"
)

// Route is one compiled way in to one upstream target: an HTTP binding of a
// gRPC method (or the method's default POST path), with its upstream, its
// deadline and its handler chain.
type Route struct {
	// HTTPMethod and Template say which HTTP requests the route takes.
	HTTPMethod string
	Template   *translate.Template
	// Binding maps HTTP requests onto Method; nil for a route that proxies
	// to a plain HTTP upstream.
	Binding *translate.Binding
	// Method is the gRPC method called upstream; nil for an HTTP proxy route.
	Method protoreflect.MethodDescriptor
	// Target is what Invoker is asked to call: "/package.Service/Method"
	// for gRPC, the rewrite template ("POST /v1/charge/{id}") for HTTP.
	Target string
	// Upstream names the upstream in the configuration.
	Upstream string
	// Invoker calls the upstream.
	Invoker Invoker
	// Timeout bounds the upstream call; zero means no route deadline.
	Timeout time.Duration
	// NoSideEffects says the route's method may be called by a GET
	// (Connect's GET form): it is unary and marked NO_SIDE_EFFECTS or
	// bound to an HTTP GET. Set when the route is compiled.
	NoSideEffects bool
	// Retry is how Dispatch retries the route's unary upstream calls
	// (nil: one attempt); a Call's own Retry takes precedence.
	Retry *Retry
	// Handler is the chain of the route's method, shared by every route
	// that reaches the method (or the route's own, for a route without a
	// method of the schema): its policies, then Dispatch or an Aggregate.
	Handler Handler
	// CredentialParams name the query parameters that carry credentials
	// for the chain's policies (an API key allowed in the query): the
	// ingress leaves them out of what the binding decodes and of what
	// goes upstream.
	CredentialParams []string
}

// String names the route as "GET /v1/{name=shelves/*} → pkg.Svc/Method".
func (r *Route) String() string {
	target := r.Target
	if r.Method != nil {
		target = string(r.Method.FullName())
	}
	return r.HTTPMethod + " " + r.Template.Source + " → " + target
}
