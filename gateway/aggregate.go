package gateway

import (
	"cmp"
	"fmt"
	"maps"
	"path"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/rosettagw/rosetta/router"
	"github.com/rosettagw/rosetta/translate"
	"github.com/rosettagw/rosetta/transports/mqtt"
)

// AggregateConfig composes a route from several upstream calls.
type AggregateConfig struct {
	// Input is the message type the request (path variables, query, body)
	// is decoded into, as for an HttpRule; the route's body defaults to "*"
	// for POST, PUT and PATCH.
	Input   string        `yaml:"input"`
	Steps   []StepConfig  `yaml:"steps"`
	Respond RespondConfig `yaml:"respond"`
}

// StepConfig is one upstream call of an aggregate: a gRPC method (call) or
// a plain HTTP request (http: "POST /v1/charges", "GET /v1/items/{id}")
// with request and response message types read and written as proto3 JSON.
type StepConfig struct {
	Name         string            `yaml:"name"`
	Call         string            `yaml:"call"`
	HTTP         string            `yaml:"http"`
	Upstream     string            `yaml:"upstream"`
	RequestType  string            `yaml:"request_type"`
	ResponseType string            `yaml:"response_type"`
	Request      map[string]string `yaml:"request"`
	After        []string          `yaml:"after"`
	ForEach      string            `yaml:"for_each"`
	Concurrency  int               `yaml:"concurrency"`
	MaxItems     int               `yaml:"max_items"`
	Timeout      Duration          `yaml:"timeout"`
	Optional     bool              `yaml:"optional"`
	Compensate   string            `yaml:"compensate"`
}

// RespondConfig shapes an aggregate's answer: keys taken from sources, and
// messages whose fields join the top level.
type RespondConfig struct {
	Fields map[string]string `yaml:"fields"`
	Merge  []string          `yaml:"merge"`
}

// addAggregate adds a composed route: an HTTP route (an HTTP method and
// path) or an MQTT uplink rule (mqtt), and its WebSocket path when it names
// one.
func (g *builder) addAggregate(rc *RouteConfig) error {
	if rc.Call != "" || rc.Upstream != "" || rc.Rewrite != nil || rc.ResponseBody != "" {
		return fmt.Errorf("an aggregate route takes no call, upstream, rewrite or response_body of its own")
	}
	if rc.Publish != "" || rc.State != "" || rc.Watch != "" {
		return fmt.Errorf("an aggregate route takes no publish, state or watch")
	}
	if rc.MQTT != "" {
		// The policies of an MQTT route are found by its filter, those of an
		// HTTP route by its method and path: one route cannot be both.
		if rc.Get+rc.Post+rc.Put+rc.Patch+rc.Delete != "" {
			return fmt.Errorf("an aggregate route is served over HTTP (get, post, put, patch, delete) or over MQTT (mqtt), not both: write one route for each (a YAML anchor can share the aggregate)")
		}
		return g.addMQTTRoute(rc, nil) // which checks the broker, then calls addAggregateRule
	}
	method, template, err := rc.methodPath()
	if err != nil {
		return fmt.Errorf("an aggregate route needs one of get, post, put, patch, delete or mqtt (websocket serves it over WebSocket too)")
	}
	c, err := g.compileAggregate(rc)
	if err != nil {
		return err
	}
	body := rc.Body
	if body == "" && (method == "POST" || method == "PUT" || method == "PATCH") {
		body = "*"
	}
	b, err := translate.NewBinding(c.method, method, template, body, "", g.jsonOptions(nil), g.schema.Types())
	if err != nil {
		return err
	}
	r := c.route(b)
	r.HTTPMethod, r.Template = method, b.Template
	if err := g.routes.HTTP.Add(r); err != nil {
		return err
	}
	g.keyed(r, rc, "aggregate REST "+method+" "+b.Template.Source)
	return g.addAggregateWebSocket(rc, c)
}

// addAggregateRule adds the MQTT uplink rule of a composed route: the topic's
// named segments and the payload make its input, as they make a method's
// request.
func (g *builder) addAggregateRule(rc *RouteConfig) error {
	c, err := g.compileAggregate(rc)
	if err != nil {
		return err
	}
	rcfg := g.ruleConfig(rc)
	rcfg.Method, rcfg.JSON, rcfg.Resolver = c.method, g.jsonOptions(nil), g.schema.Types()
	rule, err := mqtt.NewRule(rcfg)
	if err != nil {
		return err
	}
	rule.Route = c.route(rule.Binding)
	rule.Route.HTTPMethod, rule.Route.Template = "MQTT", rule.Template
	g.mqtt.rules = append(g.mqtt.rules, rule)
	g.keyed(rule.Route, rc, "aggregate MQTT "+rule.Filter)
	return g.addAggregateWebSocket(rc, c)
}

// composed is a compiled aggregate with what its routes share.
type composed struct {
	agg *router.Aggregate
	// method takes the aggregate's input and answers a
	// google.protobuf.Struct: the bindings of its routes decode and encode
	// for it.
	method    protoreflect.MethodDescriptor
	target    string // "aggregate(step, step, ...)"
	upstreams string
	timeout   time.Duration
}

// compileAggregate resolves and checks rc's aggregate.
func (g *builder) compileAggregate(rc *RouteConfig) (*composed, error) {
	ac := rc.Aggregate
	input, err := g.message(ac.Input)
	if err != nil {
		return nil, fmt.Errorf("aggregate input: %v", err)
	}
	spec := router.AggregateSpec{
		Input: input, Respond: ac.Respond.Fields, Merge: ac.Respond.Merge,
		Timeout: time.Duration(rc.Timeout), Resolver: g.schema.Types(),
	}
	var errs, names, upstreams []string
	for i := range ac.Steps {
		sc := &ac.Steps[i]
		s, err := g.stepSpec(sc)
		if err != nil {
			errs = append(errs, fmt.Sprintf("step %q: %v", sc.Name, err))
		}
		spec.Steps = append(spec.Steps, s)
		names = append(names, sc.Name)
		if !slices.Contains(upstreams, sc.Upstream) {
			upstreams = append(upstreams, sc.Upstream)
		}
	}
	if len(errs) > 0 {
		return nil, aggregateProblems(errs)
	}
	agg, err := router.NewAggregate(spec)
	if err != nil {
		var lines []string
		for _, e := range Flatten(err) {
			lines = append(lines, e.Error())
		}
		return nil, aggregateProblems(lines)
	}
	md, err := aggregateMethod(g.schema.Files(), input)
	if err != nil {
		return nil, err
	}
	return &composed{
		agg: agg, method: md, target: "aggregate(" + strings.Join(names, ", ") + ")",
		upstreams: strings.Join(upstreams, ","), timeout: time.Duration(rc.Timeout),
	}, nil
}

// route returns a route serving c through b; the caller says which
// requests it takes.
func (c *composed) route(b *translate.Binding) *router.Route {
	return &router.Route{Binding: b, Method: c.method, Target: c.target, Upstream: c.upstreams, Timeout: c.timeout, Handler: c.agg}
}

// aggregateProblems reports an aggregate's problems one a line, under the
// route's.
func aggregateProblems(lines []string) error {
	return fmt.Errorf("aggregate:\n      %s", strings.Join(lines, "\n      "))
}

// addAggregateWebSocket serves a composed route at its websocket path, if
// it has one, as a unary method: one JSON (or binary protobuf) message of
// the input type in, the answer out. It runs the route's chain, so the same
// policies apply.
func (g *builder) addAggregateWebSocket(rc *RouteConfig, c *composed) error {
	if rc.WebSocket == "" {
		return nil
	}
	prefix := strings.TrimSuffix(cmp.Or(g.cfg.WebSocket.Prefix, "/ws"), "/")
	key, ok := strings.CutPrefix(rc.WebSocket, prefix+"/")
	if !ok || key == "" || strings.Trim(key, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~/") != "" || path.Clean("/"+key) != "/"+key {
		return fmt.Errorf("websocket %q: want a literal path under the WebSocket prefix %s/, such as %s/api/orders", rc.WebSocket, prefix, prefix)
	}
	key = "/" + key
	if g.routes.Methods[key] != nil || g.aggregateWS[key] != nil {
		return fmt.Errorf("websocket %q: the path is already served", rc.WebSocket)
	}
	b, err := translate.NewBinding(c.method, "POST", key, "*", "", g.jsonOptions(nil), g.schema.Types())
	if err != nil {
		return err
	}
	r := c.route(b)
	r.HTTPMethod, r.Template = b.HTTPMethod, b.Template
	if g.aggregateWS == nil {
		g.aggregateWS = map[string]*router.Route{}
	}
	g.aggregateWS[key] = r
	g.keyed(r, rc, "aggregate WebSocket "+rc.WebSocket)
	return nil
}

// webSocketRoutes are the routes of the WebSocket ingress, by path under
// its prefix: every method's, and the composed routes' websocket paths.
func (g *builder) webSocketRoutes() map[string]*router.Route {
	if len(g.aggregateWS) == 0 {
		return g.routes.Methods
	}
	out := maps.Clone(g.routes.Methods)
	if out == nil {
		out = map[string]*router.Route{}
	}
	maps.Copy(out, g.aggregateWS)
	return out
}

// stepSpec resolves one step's method or HTTP target, upstream and types.
func (g *builder) stepSpec(sc *StepConfig) (router.StepSpec, error) {
	s := router.StepSpec{
		Name: sc.Name, Fields: sc.Request, After: sc.After, ForEach: sc.ForEach,
		Concurrency: sc.Concurrency, MaxItems: sc.MaxItems, Timeout: time.Duration(sc.Timeout),
		Optional: sc.Optional, Compensate: sc.Compensate,
	}
	up, ok := g.cfg.Upstreams[sc.Upstream]
	if !ok {
		return s, fmt.Errorf("unknown upstream %q", sc.Upstream)
	}
	s.Invoker = g.upstreams[sc.Upstream]
	if s.Timeout == 0 {
		s.Timeout = time.Duration(up.Timeout)
	}
	switch {
	case sc.Call != "" && sc.HTTP != "":
		return s, fmt.Errorf("set call or http, not both")
	case sc.Call != "":
		if up.GRPC == nil {
			return s, fmt.Errorf("call %q needs a gRPC upstream; %q is not one", sc.Call, sc.Upstream)
		}
		if sc.RequestType != "" || sc.ResponseType != "" {
			return s, fmt.Errorf("request_type and response_type are for http steps; a call's come from its method")
		}
		md, err := g.method(sc.Call)
		if err != nil {
			return s, err
		}
		s.Target = methodPath(md)
		s.Request, s.Response = md.Input(), md.Output()
		// The step calls the method through the method's own chain: its
		// policies and validation hold however it is reached.
		r := &router.Route{Method: md, Target: s.Target, Upstream: sc.Upstream, Invoker: s.Invoker}
		g.use(r, nil, "aggregate step "+sc.Name)
		s.Invoker = router.MethodInvoker(r)
	case sc.HTTP != "":
		if up.HTTP == nil {
			return s, fmt.Errorf("http %q needs an http upstream; %q is not one", sc.HTTP, sc.Upstream)
		}
		var err error
		if s.Request, err = g.message(sc.RequestType); err != nil {
			return s, fmt.Errorf("request_type: %v", err)
		}
		if s.Response, err = g.message(sc.ResponseType); err != nil {
			return s, fmt.Errorf("response_type: %v", err)
		}
		s.Target, s.JSON = sc.HTTP, true
	default:
		return s, fmt.Errorf("set call (a gRPC method) or http (\"METHOD /path\")")
	}
	return s, nil
}

// method finds "package.Service/Method" in the schema; streaming methods
// cannot be steps.
func (g *builder) method(call string) (protoreflect.MethodDescriptor, error) {
	md, err := g.lookupMethod(call)
	if err != nil {
		return nil, err
	}
	if md.IsStreamingClient() || md.IsStreamingServer() {
		return nil, fmt.Errorf("call %q: a streaming method cannot be an aggregate step", call)
	}
	return md, nil
}

// message finds a message type in the schema.
func (g *builder) message(name string) (protoreflect.MessageDescriptor, error) {
	if name == "" {
		return nil, fmt.Errorf("no message type given")
	}
	d, err := g.schema.Files().FindDescriptorByName(protoreflect.FullName(name))
	if err != nil {
		return nil, fmt.Errorf("message type %q is not in the loaded schemas", name)
	}
	md, ok := d.(protoreflect.MessageDescriptor)
	if !ok {
		return nil, fmt.Errorf("%q is not a message type", name)
	}
	return md, nil
}

// aggregateMethod makes the method an aggregate route's HTTP binding
// decodes requests for: input in, google.protobuf.Struct (the answer) out.
// It lives in a file of its own, registered nowhere.
func aggregateMethod(files *protoregistry.Files, input protoreflect.MessageDescriptor) (protoreflect.MethodDescriptor, error) {
	fdp := &descriptorpb.FileDescriptorProto{
		Name:       proto.String("rosetta/aggregate.proto"),
		Package:    proto.String("rosetta.aggregate"),
		Syntax:     proto.String("proto3"),
		Dependency: []string{input.ParentFile().Path(), structpb.File_google_protobuf_struct_proto.Path()},
		Service: []*descriptorpb.ServiceDescriptorProto{{
			Name: proto.String("Aggregate"),
			Method: []*descriptorpb.MethodDescriptorProto{{
				Name:       proto.String("Call"),
				InputType:  proto.String("." + string(input.FullName())),
				OutputType: proto.String(".google.protobuf.Struct"),
			}},
		}},
	}
	fd, err := protodesc.NewFile(fdp, withStruct{files})
	if err != nil {
		return nil, fmt.Errorf("aggregate method: %v", err)
	}
	return fd.Services().Get(0).Methods().Get(0), nil
}

// withStruct resolves files from the schema, and google/protobuf/struct.proto
// from the copy linked into the binary when the schema lacks it.
type withStruct struct{ *protoregistry.Files }

func (w withStruct) FindFileByPath(path string) (protoreflect.FileDescriptor, error) {
	fd, err := w.Files.FindFileByPath(path)
	if err != nil && path == structpb.File_google_protobuf_struct_proto.Path() {
		return structpb.File_google_protobuf_struct_proto, nil
	}
	return fd, err
}

func (w withStruct) FindDescriptorByName(name protoreflect.FullName) (protoreflect.Descriptor, error) {
	d, err := w.Files.FindDescriptorByName(name)
	if err != nil && name == "google.protobuf.Struct" {
		return (&structpb.Struct{}).ProtoReflect().Descriptor(), nil
	}
	return d, err
}
