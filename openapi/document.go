package openapi

import (
	"fmt"
	"sort"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/rosettagw/rosetta/router"
)

// Version is the OpenAPI version of the documents Document writes.
const Version = "3.1.0"

// Kind says what an endpoint's route does, which decides how its
// operation is described beyond what its binding says.
type Kind int

const (
	// Method is an HTTP binding of a gRPC method (from its HttpRule, a
	// route's call, or the auto-mapped POST /package.Service/Method).
	Method Kind = iota
	// Aggregate is a composed route: several upstream calls answered as
	// one JSON object, with "partial" and "failedSteps" when optional steps
	// failed.
	Aggregate
	// Publish is an MQTT downlink route: the request body is published to
	// a topic; the answer is 202, or the device's reply when the route
	// waits for one.
	Publish
	// State is an MQTT state route: the last message seen on a topic.
	State
	// Proxy is a route to a plain HTTP upstream: bodies pass as they are.
	Proxy
	// Watch is an MQTT watch route: a stream of the messages published on
	// a topic filter.
	Watch
)

// Endpoint is one HTTP route of a generation to describe, with what the
// gateway knows about it beyond the route.
type Endpoint struct {
	// Route is the compiled route; its Binding, when set, describes the
	// request and the response.
	Route *router.Route
	// Kind says what the route does.
	Kind Kind
	// Wait is set for a Publish route that answers with the device's reply.
	Wait bool
	// Topic is the MQTT topic (or filter) of a Publish, State or Watch
	// route.
	Topic string
	// Security lists the ways a caller may be admitted: each requirement
	// names schemes of Options.SecuritySchemes that must all be satisfied;
	// an empty requirement admits anonymous callers. Nil: no
	// authentication.
	Security openapi3.SecurityRequirements
}

// Options are the parts of the document that do not come from the routes.
type Options struct {
	// Title and Version fill the document's info object.
	Title, Version string
	// Description is the document's description.
	Description string
	// SecuritySchemes are the schemes the endpoints' Security names, by
	// name.
	SecuritySchemes map[string]*openapi3.SecurityScheme
	// Extensions are added to the document's root ("x-…" keys).
	Extensions map[string]any
}

// Document describes endpoints as an OpenAPI 3.1 document. Routes that
// OpenAPI cannot express (an HttpRule custom method other than HEAD or
// OPTIONS, or two routes whose templates differ only in what their
// variables match and so share one OpenAPI path) are left out and listed
// under the root extension "x-rosetta-omitted", with why.
func Document(endpoints []Endpoint, opts Options) (*openapi3.T, error) {
	doc := &openapi3.T{
		OpenAPI: Version,
		Info:    &openapi3.Info{Title: opts.Title, Version: opts.Version, Description: opts.Description},
		Paths:   openapi3.NewPaths(),
		Components: &openapi3.Components{
			SecuritySchemes: openapi3.SecuritySchemes{},
		},
		Extensions: map[string]any{},
	}
	for k, v := range opts.Extensions {
		doc.Extensions[k] = v
	}
	if doc.Info.Title == "" {
		doc.Info.Title = "Rosetta gateway"
	}
	if doc.Info.Version == "" {
		doc.Info.Version = "1"
	}
	names := make([]string, 0, len(opts.SecuritySchemes))
	for name := range opts.SecuritySchemes {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		doc.Components.SecuritySchemes[name] = &openapi3.SecuritySchemeRef{Value: opts.SecuritySchemes[name]}
	}
	b := &builder{doc: doc, schemas: newSchemas(), ids: map[string]int{}, tags: map[string]bool{}, shapes: map[string]string{}}
	var omitted []string
	for _, e := range endpoints {
		if e.Route == nil || e.Route.Template == nil {
			continue
		}
		if why := b.add(e); why != "" {
			omitted = append(omitted, e.Route.HTTPMethod+" "+e.Route.Template.Source+": "+why)
		}
	}
	for _, req := range endpointsSecurity(endpoints) {
		for name := range req {
			if _, ok := opts.SecuritySchemes[name]; !ok {
				return nil, fmt.Errorf("openapi: security requirement names scheme %q, which Options.SecuritySchemes lacks", name)
			}
		}
	}
	doc.Components.Schemas = b.schemas.comps
	if len(omitted) > 0 {
		doc.Extensions["x-rosetta-omitted"] = omitted
	}
	sort.Slice(doc.Tags, func(i, j int) bool { return doc.Tags[i].Name < doc.Tags[j].Name })
	return doc, nil
}

func endpointsSecurity(endpoints []Endpoint) []openapi3.SecurityRequirement {
	var out []openapi3.SecurityRequirement
	for _, e := range endpoints {
		out = append(out, e.Security...)
	}
	return out
}

// builder is the state of one Document call.
type builder struct {
	doc     *openapi3.T
	schemas *schemas
	// ids counts the operation ids handed out, to keep them unique.
	ids  map[string]int
	tags map[string]bool
	// shapes maps each path with its parameters' names erased to the path
	// the document has.
	shapes map[string]string
}

// operationID returns base, or base_2, base_3, ... when taken.
func (b *builder) operationID(base string) string {
	b.ids[base]++
	if n := b.ids[base]; n > 1 {
		return fmt.Sprintf("%s_%d", base, n)
	}
	return base
}

// sanitize turns a path into an operation id: "post_api_order_create".
func sanitize(method, path string) string {
	var sb strings.Builder
	sb.WriteString(strings.ToLower(method))
	under := true
	for _, r := range path {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9'
		switch {
		case ok:
			if under {
				sb.WriteByte('_')
			}
			sb.WriteRune(r)
			under = false
		default:
			under = true
		}
	}
	return sb.String()
}
