package gateway

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"

	"github.com/getkin/kin-openapi/openapi3"
	"go.yaml.in/yaml/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/rosettagw/rosetta/explorer"
	"github.com/rosettagw/rosetta/openapi"
	"github.com/rosettagw/rosetta/router"
	"github.com/rosettagw/rosetta/security/apikey"
	"github.com/rosettagw/rosetta/security/authz"
	"github.com/rosettagw/rosetta/security/jwt"
	"github.com/rosettagw/rosetta/translate"
)

// OpenAPIConfig is the openapi section: the OpenAPI 3.1 document of the
// generation's HTTP routes, served on the HTTP listener.
type OpenAPIConfig struct {
	// Enabled serves the document (default true).
	Enabled *bool `yaml:"enabled"`
	// Path serves it as JSON (default /openapi.json).
	Path string `yaml:"path"`
	// YAMLPath serves it as YAML (default: Path with .yaml for .json).
	YAMLPath string `yaml:"yaml_path"`
	// Title and Version fill the document's info (default "Rosetta
	// gateway" and "1").
	Title   string `yaml:"title"`
	Version string `yaml:"version"`
	// Policies guard the document and the explorer, after
	// security.policies.
	Policies []string `yaml:"policies"`
	// Explorer serves the API explorer page, Swagger UI on the document
	// (default true, when the document is served).
	Explorer *bool `yaml:"explorer"`
	// ExplorerPath is the explorer page's path (default /docs); its files
	// are served under it.
	ExplorerPath string `yaml:"explorer_path"`
}

// paths are the JSON and YAML paths of the document.
func (c OpenAPIConfig) paths() (string, string) {
	j := cmp.Or(c.Path, "/openapi.json")
	y := c.YAMLPath
	if y == "" {
		y = strings.TrimSuffix(j, ".json") + ".yaml"
	}
	return j, y
}

// OpenAPI returns the generation's OpenAPI document, built on first use
// and kept for the generation's life; nil with an error when the
// configuration turns it off.
func (g *Generation) OpenAPI() (*openapi3.T, error) {
	if g.openapi == nil {
		return nil, fmt.Errorf("openapi: off in the configuration")
	}
	d := g.openapi.get()
	return d.doc, d.err
}

// openAPIDoc is one generation's document: the endpoints are taken when
// the generation is built, the document is made from them once, at the
// first request.
type openAPIDoc struct {
	endpoints []openapi.Endpoint
	opts      openapi.Options
	log       *slog.Logger
	once      sync.Once
	doc       *openapi3.T
	json      []byte
	yaml      []byte
	err       error
}

func (d *openAPIDoc) get() *openAPIDoc {
	d.once.Do(func() {
		d.doc, d.err = openapi.Document(d.endpoints, d.opts)
		if d.err == nil {
			d.json, d.err = json.MarshalIndent(d.doc, "", "  ")
		}
		if d.err == nil {
			var v any
			if d.err = json.Unmarshal(d.json, &v); d.err == nil {
				d.yaml, d.err = yaml.Marshal(v)
			}
		}
		if d.err != nil {
			d.log.Error("openapi: building the document failed", "error", d.err)
		}
	})
	return d
}

// staticInvoker answers the document's and the explorer's routes: what
// dispatch calls at the end of their chain.
type staticInvoker struct {
	contentType string
	body        func() ([]byte, error)
}

func (i staticInvoker) Invoke(ctx context.Context, target string, req []byte, md metadata.MD) (*router.Reply, error) {
	body, err := i.body()
	if err != nil {
		return nil, err
	}
	return &router.Reply{Message: body, HTTPStatus: 200, ContentType: i.contentType}, nil
}

// body returns the document as JSON or YAML.
func (d *openAPIDoc) body(asYAML bool) func() ([]byte, error) {
	return func() ([]byte, error) {
		d := d.get()
		if d.err != nil {
			return nil, status.Error(codes.Internal, "the OpenAPI document could not be built; the log says why")
		}
		if asYAML {
			return d.yaml, nil
		}
		return d.json, nil
	}
}

// addOpenAPI adds the GET routes of the document and of the explorer page,
// each with its chain: the global policies, then openapi.policies. It runs
// after buildChains, so that the document can say which policies guard
// each operation.
func (g *builder) addOpenAPI() error {
	oc := g.cfg.OpenAPI
	if oc.Enabled != nil && !*oc.Enabled {
		return nil
	}
	for _, n := range oc.Policies {
		if _, ok := g.cfg.Policies[n]; !ok {
			return fmt.Errorf("openapi.policies: unknown policy %q", n)
		}
	}
	doc := &openAPIDoc{log: g.log}
	doc.endpoints, doc.opts = g.openAPIEndpoints()
	doc.opts.Title, doc.opts.Version = oc.Title, oc.Version
	doc.opts.Extensions = map[string]any{"x-rosetta-generation": g.Seq}
	jsonPath, yamlPath := oc.paths()
	if err := g.addStatic(jsonPath, staticInvoker{"application/json", doc.body(false)}); err != nil {
		return err
	}
	if err := g.addStatic(yamlPath, staticInvoker{"application/yaml", doc.body(true)}); err != nil {
		return err
	}
	if oc.Explorer == nil || *oc.Explorer {
		for _, a := range explorer.Page(cmp.Or(oc.ExplorerPath, "/docs"), jsonPath) {
			if err := g.addStatic(a.Path, staticInvoker{a.ContentType, func() ([]byte, error) { return a.Body, nil }}); err != nil {
				return err
			}
		}
	}
	g.openapi = doc
	return nil
}

// addStatic adds a GET route answered by inv, with a chain of its own (as
// every route without a method of the schema), named by its method and
// path: the global policies, then openapi.policies.
func (g *builder) addStatic(path string, inv staticInvoker) error {
	tmpl, err := translate.ParseTemplate(path)
	if err != nil || len(tmpl.Variables) > 0 || tmpl.Verb != "" || strings.Contains(path, "*") {
		return fmt.Errorf("openapi: path %q: want a literal path such as /openapi.json", path)
	}
	r := &router.Route{HTTPMethod: "GET", Template: tmpl, Target: "openapi:" + tmpl.Source, Invoker: inv}
	if err := g.routes.HTTP.Add(r); err != nil {
		return fmt.Errorf("openapi: %v (set openapi.path, or openapi.enabled: false)", err)
	}
	spec := &chainSpec{name: "GET " + tmpl.Source, names: slices.Concat(g.cfg.Security.Policies, g.cfg.OpenAPI.Policies), final: router.Dispatch}
	h, params, cp, steps, err := g.chain(spec)
	if err != nil {
		return fmt.Errorf("openapi: %v", err)
	}
	r.Handler, r.CredentialParams = h, params
	g.sec.cors[r] = cp
	g.methods[spec.name] = &methodInfo{Method: spec.name, Ways: []string{"REST GET " + tmpl.Source}, Chain: steps}
	return nil
}

// openAPIEndpoints lists the HTTP routes to describe, each with its kind
// and the security its method's chain applies, and the security schemes
// of the policies.
func (g *builder) openAPIEndpoints() ([]openapi.Endpoint, openapi.Options) {
	opts := openapi.Options{SecuritySchemes: map[string]*openapi3.SecurityScheme{}}
	made := map[*router.Route]use{}
	for _, u := range g.uses {
		made[u.route] = u
	}
	var out []openapi.Endpoint
	for _, r := range g.routes.HTTP.Routes() {
		u, ok := made[r]
		if !ok {
			continue
		}
		e := openapi.Endpoint{Route: r}
		rc := u.rc
		switch {
		case rc != nil && rc.Aggregate != nil:
			e.Kind = openapi.Aggregate
		case rc != nil && rc.Watch != "":
			e.Kind, e.Topic = openapi.Watch, rc.Watch
		case r.Binding == nil && rc != nil && rc.Publish != "":
			e.Kind, e.Topic, e.Wait = openapi.Publish, rc.Publish, rc.Wait > 0
		case r.Binding == nil && rc != nil && rc.State != "":
			e.Kind, e.Topic = openapi.State, rc.State
		case r.Binding == nil:
			e.Kind = openapi.Proxy
		}
		key := r.HTTPMethod + " " + r.Template.Source
		if !u.own {
			key = strings.TrimPrefix(methodPath(r.Method), "/")
		}
		if info := g.methods[key]; info != nil {
			e.Security = g.openAPISecurity(info.Chain, opts.SecuritySchemes)
		}
		out = append(out, e)
	}
	return out, opts
}

// openAPISecurity is what the policies among a chain's steps require: any
// one of its authentication policies (a JWT, an API key in a header or the
// query, a client certificate), with the scopes its authorize policies
// demand, or nothing when one of them admits anonymous callers. It adds
// the schemes it names to schemes.
func (g *builder) openAPISecurity(steps []string, schemes map[string]*openapi3.SecurityScheme) openapi3.SecurityRequirements {
	var names, scopes []string
	anonymous := false
	for _, step := range steps {
		pc := g.cfg.Policies[step]
		if pc == nil {
			continue
		}
		switch c := pc.Config.(type) {
		case *jwt.Config:
			desc := "A JWT in the Authorization header (Bearer)."
			if c.Issuer != "" {
				desc = "A JWT from " + c.Issuer + " in the Authorization header (Bearer)."
			}
			schemes[step] = &openapi3.SecurityScheme{Type: "http", Scheme: "bearer", BearerFormat: "JWT", Description: desc}
			names = append(names, step)
		case *apikey.Config:
			schemes[step] = &openapi3.SecurityScheme{Type: "apiKey", In: "header", Name: cmp.Or(c.Header, "X-Api-Key"), Description: "An API key."}
			names = append(names, step)
			if c.QueryParam != "" {
				schemes[step+".query"] = &openapi3.SecurityScheme{Type: "apiKey", In: "query", Name: c.QueryParam, Description: "An API key, in the query."}
				names = append(names, step+".query")
			}
		case *authz.Config:
			scopes = append(scopes, c.Scopes...)
			anonymous = anonymous || c.Anonymous
		default:
			if pc.Kind == "mtls" {
				schemes[step] = &openapi3.SecurityScheme{Type: "mutualTLS", Description: "A client certificate the listener verifies."}
				names = append(names, step)
			}
		}
	}
	if len(names) == 0 {
		return nil
	}
	var reqs openapi3.SecurityRequirements
	for _, n := range names {
		reqs = append(reqs, openapi3.SecurityRequirement{n: append([]string{}, scopes...)})
	}
	if anonymous {
		reqs = append(reqs, openapi3.SecurityRequirement{})
	}
	return reqs
}
