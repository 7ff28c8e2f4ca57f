// Package gateway turns a configuration into the running world of a Rosetta
// gateway and keeps it current.
//
// Build compiles one configuration into a Generation: the schemas, the
// upstream clients, every compiled route of every kind (HTTP bindings, the
// methods as gRPC, gRPC-Web, Connect and WebSocket reach them, MQTT rules,
// aggregates, downlink routes) and one finished handler chain per method.
// A Generation is immutable once built; `rosetta check`, `serve` and `demo`
// all go through Build, so check accepts exactly what serve would start.
//
// Live holds the serving generation behind one atomic pointer. Every
// ingress loads it once per call; a reload builds a new generation beside
// the running one and swaps the pointer, and long-lived state (upstream
// connections whose configuration did not change, rate-limit counters,
// JWKS caches, the MQTT state store) is handed over through a Pool rather
// than rebuilt. A configuration that fails to build never replaces the
// running one.
package gateway

import (
	"go.opentelemetry.io/otel/trace"

	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/rosettagw/rosetta/cache"
	"github.com/rosettagw/rosetta/descriptors"
	"github.com/rosettagw/rosetta/router"
	"github.com/rosettagw/rosetta/translate"
	"github.com/rosettagw/rosetta/transports/admin"
	"github.com/rosettagw/rosetta/transports/mqtt"
	"github.com/rosettagw/rosetta/transports/upstream"
)

// Generation is one built configuration: schemas, upstream clients, every
// compiled route with its chain, and the settings of the listeners. Nothing
// edits a built Generation.
type Generation struct {
	// Seq numbers the generations of one process, from 1.
	Seq uint64

	cfg       *Config
	schema    *descriptors.Schema
	routes    *router.Routes
	upstreams map[string]router.Invoker
	// methods lists every method reached, with its ways in, for `rosetta
	// routes` and /routes.
	methods map[string]*methodInfo
	// skipped lists methods not served over REST, with the reason.
	skipped []string
	mqtt    *mqttParts
	// mqttSettings are the broker settings (nil: no broker).
	mqttSettings *mqttSettings
	sec          *securityParts
	// held are the pooled resources the generation uses, released by
	// close.
	held []*pooled
	// files are the files the configuration named, watched for reload.
	files []string
	// openapi is the OpenAPI document (nil: openapi.enabled is false).
	openapi *openAPIDoc
	// cache is the response cache (nil: nothing is cached), kept in
	// cacheStore ("memory" or "redis").
	cache      *cache.Cache
	cacheStore string
}

// Routes returns the compiled routes the ingresses read.
func (g *Generation) Routes() *router.Routes { return g.routes }

// MQTTAddr is the embedded MQTT broker's address while it serves, or "".
func (g *Generation) MQTTAddr() string {
	if g.mqtt == nil {
		return ""
	}
	if emb, ok := g.mqtt.broker.current().(*mqtt.Embedded); ok {
		return emb.Addr()
	}
	return ""
}

// Skipped lists the methods that are not served over REST, with why.
func (g *Generation) Skipped() []string { return g.skipped }

// Close releases the generation's share of the pooled resources: the
// connections and state no other generation uses are closed. A generation
// that Live serves is closed by Live, once its last call has ended.
func (g *Generation) Close() {
	for _, p := range g.held {
		p.release()
	}
	g.held = nil
}

// builder is the state of one Build: the generation being built and what
// the chains are made from.
type builder struct {
	*Generation
	pool    *Pool
	log     *slog.Logger
	metrics *admin.Metrics
	tracer  trace.Tracer
	// uses records, for every route, which chain it runs and the route
	// configuration that made it (nil for a service's own bindings).
	uses []use
	// retries are the retry policies of the upstreams that have one.
	retries map[string]*router.Retry
	// splits are the splits built, by service name or route; their
	// default deadlines in splitTimeouts.
	splits        map[string]*router.Split
	splitTimeouts map[string]time.Duration
	// aggregateWS holds the composed routes' WebSocket paths, by path
	// under the prefix.
	aggregateWS map[string]*router.Route
}

// Options are what Build needs besides the configuration.
type Options struct {
	// Pool hands long-lived state from one generation to the next (nil: a
	// pool of the build's own, as for `rosetta check`).
	Pool *Pool
	// Logger receives the policies' own log lines (nil: discarded).
	Logger *slog.Logger
	// Seq numbers the generation.
	Seq uint64
	// Metrics, when set, counts the calls of every chain.
	Metrics *admin.Metrics
	// Tracer, when set, traces every call (nil: tracing off).
	Tracer trace.Tracer
}

// Build compiles cfg into a generation. It reports every problem it finds,
// not only the first; on error it returns no generation and holds nothing.
func Build(ctx context.Context, cfg *Config, opts Options) (*Generation, error) {
	if opts.Pool == nil {
		opts.Pool = NewPool()
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	cfg.files = map[string]bool{}
	if cfg.file != "" {
		cfg.files[cfg.file] = true
	}
	g := &builder{
		Generation: &Generation{Seq: opts.Seq, cfg: cfg, routes: &router.Routes{HTTP: &router.Table{}, Methods: map[string]*router.Route{}}, upstreams: map[string]router.Invoker{}, methods: map[string]*methodInfo{}},
		pool:       opts.Pool, log: opts.Logger, metrics: opts.Metrics, tracer: opts.Tracer,
	}
	err := g.build(ctx)
	for f := range cfg.files {
		g.files = append(g.files, f)
	}
	sort.Strings(g.files)
	if err != nil {
		g.Close()
		return nil, err
	}
	return g.Generation, nil
}

func (g *builder) build(ctx context.Context) error {
	cfg := g.cfg
	var errs []error
	fail := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	names := make([]string, 0, len(cfg.Upstreams))
	for name := range cfg.Upstreams {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		inv, err := g.dialUpstream(name, cfg.Upstreams[name])
		if err != nil {
			fail("upstream %q: %v", name, err)
			continue
		}
		g.upstreams[name] = inv
		if rc := cfg.Upstreams[name].Retry; rc != nil {
			if rc.Attempts < 0 || rc.BudgetPercent < 0 || rc.MinRetryConcurrency < 0 {
				fail("upstream %q: retry: the bounds must not be negative", name)
				continue
			}
			if g.retries == nil {
				g.retries = map[string]*router.Retry{}
			}
			g.retries[name] = &router.Retry{
				Attempts: cmp.Or(rc.Attempts, 2), Backoff: cmp.Or(time.Duration(rc.Backoff), 25*time.Millisecond),
				MaxBackoff: cmp.Or(time.Duration(rc.MaxBackoff), 250*time.Millisecond), UnavailableOnly: true,
				Budget: &router.RetryBudget{Percent: int64(rc.BudgetPercent), MinConcurrent: int64(rc.MinRetryConcurrency)},
			}
		}
	}

	var sources []descriptors.Source
	for i, s := range cfg.Schemas {
		switch {
		case s.DescriptorSet != "":
			sources = append(sources, descriptors.Source{DescriptorSet: cfg.path(s.DescriptorSet)})
		case s.Proto != nil:
			paths := make([]string, len(s.Proto.ImportPaths))
			for j, p := range s.Proto.ImportPaths {
				paths[j] = cfg.path(p)
				for _, f := range s.Proto.Files {
					if _, err := os.Stat(paths[j] + "/" + f); err == nil {
						cfg.files[paths[j]+"/"+f] = true
					}
				}
			}
			sources = append(sources, descriptors.Source{Proto: &descriptors.ProtoSource{ImportPaths: paths, Files: s.Proto.Files}})
		case s.Reflection != nil:
			up, ok := g.upstreams[s.Reflection.Upstream].(*upstream.GRPC)
			if !ok {
				fail("schemas[%d]: reflection needs a gRPC upstream, %q is not one", i, s.Reflection.Upstream)
				continue
			}
			sources = append(sources, descriptors.Source{Reflection: &descriptors.ReflectionSource{Conn: up.Conn(), Services: s.Reflection.Services}})
		default:
			fail("schemas[%d]: set one of descriptor_set, proto, reflection", i)
		}
	}
	if len(sources) == 0 {
		fail("no schemas configured")
	}
	// The listener and broker settings are checked whatever else fails, so
	// that check lists their problems too.
	sec, err := g.buildSecurity()
	g.sec = sec
	if err != nil {
		errs = append(errs, err)
	}
	if err := g.checkMQTTSettings(); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, checkReferences(cfg)...)
	if err := cfg.Log.check(); err != nil {
		errs = append(errs, err)
	}
	if err := cfg.Tracing.Check(); err != nil {
		errs = append(errs, fmt.Errorf("tracing: %v", err))
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	loadCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	schema, err := descriptors.Load(loadCtx, sources)
	if err != nil {
		return err
	}
	g.schema = schema
	g.routes.Resolver = schema.Types()

	methods := map[string]*ServiceConfig{}
	for i := range cfg.Services {
		svc := &cfg.Services[i]
		errs = append(errs, g.addService(svc)...)
		methods[svc.Name] = svc
	}
	for i := range cfg.Routes {
		if err := g.addRoute(&cfg.Routes[i], methods); err != nil {
			fail("routes[%d]: %v", i, err)
		}
	}
	g.routes.WebSocket = g.webSocketRoutes()
	if err := g.buildChains(); err != nil {
		errs = append(errs, err)
	}
	if err := g.addOpenAPI(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// dialUpstream returns the client of one upstream: the previous
// generation's when its endpoint settings (and the files they name) did not
// change, so that its connections and endpoint state carry over. A changed
// upstream is a new client; the old one serves the calls in flight on the
// generations that hold it, and closes with the last of them.
func (g *builder) dialUpstream(name string, u *Upstream) (router.Invoker, error) {
	switch {
	case u == nil:
		return nil, fmt.Errorf("empty upstream")
	case u.GRPC != nil && u.HTTP != nil:
		return nil, fmt.Errorf("set grpc or http, not both")
	case u.GRPC == nil && u.HTTP == nil:
		return nil, fmt.Errorf("set grpc or http")
	case u.Discovery != nil:
		return g.dialDiscovered(name, u)
	}
	var targets []Target
	if u.GRPC != nil {
		targets = u.GRPC.Targets
	} else {
		targets = u.HTTP.Targets
	}
	p, err := g.pool.acquire(g.cfg, "upstream "+name, specOf(u), func(env *poolEnv) (any, func(), error) {
		return dialClient(env, name, u, endpoints(targets))
	})
	if err != nil {
		return nil, err
	}
	g.held = append(g.held, p)
	return p.value.(router.Invoker), nil
}

// upstreamSpec is what an upstream's pooled client depends on: a reload
// with the same spec keeps the client, its connections and endpoint state
// (and its discovery watch).
type upstreamSpec struct {
	GRPC             *GRPCUpstream
	HTTP             *HTTPUpstream
	Balancer         string
	HealthCheck      *HealthCheckConfig
	OutlierDetection *OutlierConfig
	CircuitBreaker   *BreakerConfig
	PanicThreshold   *int
	Discovery        *DiscoveryConfig
}

func specOf(u *Upstream) upstreamSpec {
	return upstreamSpec{u.GRPC, u.HTTP, u.Balancer, u.HealthCheck, u.OutlierDetection, u.CircuitBreaker, u.PanicThreshold, u.Discovery}
}

// dialClient makes an upstream's client with its first endpoints.
func dialClient(env *poolEnv, name string, u *Upstream, eps []upstream.Endpoint) (router.Invoker, func(), error) {
	opts := upstreamOptions(name, u)
	if u.HTTP != nil {
		h, err := upstream.NewHTTP(upstream.HTTPConfig{URL: u.HTTP.URL, Targets: eps, Options: opts})
		if err != nil {
			return nil, nil, err
		}
		return h, func() { h.Close() }, nil
	}
	var tlsCfg *tls.Config
	if u.GRPC.TLS != nil {
		var err error
		if tlsCfg, err = clientTLS(env.path, u.GRPC.TLS); err != nil {
			return nil, nil, err
		}
	}
	c, err := upstream.DialGRPC(upstream.GRPCConfig{Targets: eps, TLS: tlsCfg, Options: opts,
		KeepaliveTime: time.Duration(u.GRPC.KeepaliveTime), KeepaliveTimeout: time.Duration(u.GRPC.KeepaliveTimeout)})
	if err != nil {
		return nil, nil, err
	}
	return c, func() { c.Close() }, nil
}

// upstreamOptions are the endpoint settings of an upstream's configuration.
func upstreamOptions(name string, u *Upstream) upstream.Options {
	o := upstream.Options{Name: name, Balancer: u.Balancer, PanicThreshold: u.PanicThreshold}
	if h := u.HealthCheck; h != nil {
		o.Health = &upstream.HealthCheck{Interval: time.Duration(h.Interval), Timeout: time.Duration(h.Timeout),
			HealthyThreshold: h.HealthyThreshold, UnhealthyThreshold: h.UnhealthyThreshold, Service: h.Service, Path: h.Path}
	}
	if d := u.OutlierDetection; d != nil {
		o.Outlier = &upstream.OutlierDetection{ConsecutiveFailures: d.ConsecutiveFailures, BaseEjectionTime: time.Duration(d.BaseEjectionTime),
			MaxEjectionTime: time.Duration(d.MaxEjectionTime), MaxEjectionPercent: d.MaxEjectionPercent}
	}
	if b := u.CircuitBreaker; b != nil {
		o.Breaker = &upstream.BreakerConfig{FailureRatio: b.FailureRatio, MinRequests: b.MinRequests, Window: time.Duration(b.Window),
			OpenDuration: time.Duration(b.OpenDuration), HalfOpenRequests: b.HalfOpenRequests}
	}
	return o
}

// endpoints converts configured targets.
func endpoints(ts []Target) []upstream.Endpoint {
	out := make([]upstream.Endpoint, len(ts))
	for i, t := range ts {
		out[i] = upstream.Endpoint{Addr: t.Addr, Weight: t.Weight}
	}
	return out
}

func clientTLS(path func(string) string, t *TLSClient) (*tls.Config, error) {
	out := &tls.Config{ServerName: t.ServerName, MinVersion: tls.VersionTLS12}
	if t.CAFile != "" {
		pem, err := os.ReadFile(path(t.CAFile))
		if err != nil {
			return nil, err
		}
		out.RootCAs = x509.NewCertPool()
		if !out.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s: no certificates found", t.CAFile)
		}
	}
	if t.CertFile != "" || t.KeyFile != "" {
		cert, err := tls.LoadX509KeyPair(path(t.CertFile), path(t.KeyFile))
		if err != nil {
			return nil, err
		}
		out.Certificates = []tls.Certificate{cert}
	}
	return out, nil
}

// jsonOptions are the JSON options of svc's bindings (nil: the defaults),
// bounded by security.limits.
func (g *builder) jsonOptions(svc *ServiceConfig) translate.JSONOptions {
	opts := translate.JSONOptions{MaxDepth: g.cfg.Security.Limits.JSONDepth, StrictQuery: g.cfg.HTTP.StrictQuery}
	if svc != nil {
		opts.UseProtoNames, opts.EmitUnpopulated = svc.JSON.UseProtoNames, svc.JSON.EmitUnpopulated
		opts.UseEnumNumbers, opts.DiscardUnknown = svc.JSON.EnumsAsNumbers, svc.JSON.DiscardUnknown
		opts.AllowUnknownQuery = svc.JSON.AllowUnknownQuery
	}
	return opts
}

// addService adds the routes of every method of one exposed service.
func (g *builder) addService(svc *ServiceConfig) []error {
	sd, err := g.schema.Service(svc.Name)
	if err != nil {
		return []error{fmt.Errorf("services: %v", err)}
	}
	upName, inv, upTimeout, err := g.upstreamOf(svc.Name, svc.Upstream, svc.SplitConfig)
	if err != nil {
		return []error{fmt.Errorf("service %s: %v", svc.Name, err)}
	}
	timeout := cmp.Or(time.Duration(svc.Timeout), upTimeout)
	var errs []error
	methods := sd.Methods()
	for _, name := range slices.Concat(svc.Methods, svc.HideMethods) {
		if methods.ByName(protoreflect.Name(name)) == nil {
			errs = append(errs, fmt.Errorf("service %s: no method %q (methods and hide_methods name methods: GetShelf)", svc.Name, name))
		}
	}
	for i := 0; i < methods.Len(); i++ {
		md := methods.Get(i)
		name := string(md.Name())
		if (len(svc.Methods) > 0 && !slices.Contains(svc.Methods, name)) || slices.Contains(svc.HideMethods, name) {
			continue // one decision per method: served on no protocol
		}
		if err := g.addMethod(md, svc, upName, inv, timeout, nil); err != nil {
			errs = append(errs, err)
			continue
		}
		rule, ok, err := descriptors.HTTPRule(md)
		if err != nil {
			errs = append(errs, fmt.Errorf("method %s (file %s): %v", md.FullName(), md.ParentFile().Path(), err))
			continue
		}
		var bindings []*translate.Binding
		switch {
		case ok:
			bindings, err = translate.Bindings(md, rule, g.jsonOptions(svc), g.schema.Types())
		case svc.AutoMapping != nil && *svc.AutoMapping:
			var b *translate.Binding
			b, err = translate.NewBinding(md, "POST", methodPath(md), "*", "", g.jsonOptions(svc), g.schema.Types())
			bindings = []*translate.Binding{b}
		default:
			g.skipped = append(g.skipped, fmt.Sprintf("%s: no HTTP rule, so not served over REST (auto_mapping: true serves it at POST %s); gRPC, gRPC-Web, Connect and WebSocket reach it", md.FullName(), methodPath(md)))
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("file %s: %v", md.ParentFile().Path(), err))
			continue
		}
		for _, b := range bindings {
			r := grpcRoute(b, md, upName, inv, timeout)
			if err := g.routes.HTTP.Add(r); err != nil {
				errs = append(errs, err)
				continue
			}
			g.use(r, nil, "REST "+b.HTTPMethod+" "+b.Template.Source)
		}
	}
	return errs
}

// methodPath is "/package.Service/Method".
func methodPath(md protoreflect.MethodDescriptor) string {
	return "/" + string(md.Parent().FullName()) + "/" + string(md.Name())
}

func grpcRoute(b *translate.Binding, md protoreflect.MethodDescriptor, up string, inv router.Invoker, timeout time.Duration) *router.Route {
	return &router.Route{
		HTTPMethod: b.HTTPMethod, Template: b.Template, Binding: b, Method: md,
		Target:   methodPath(md),
		Upstream: up, Invoker: inv, Timeout: timeout,
	}
}

// addMethod adds the route by which WebSocket, gRPC-Web, Connect and gRPC
// reach md: its request and response messages are whole JSON documents.
func (g *builder) addMethod(md protoreflect.MethodDescriptor, svc *ServiceConfig, up string, inv router.Invoker, timeout time.Duration, rc *RouteConfig) error {
	path := methodPath(md)
	if g.routes.Methods[path] != nil {
		return fmt.Errorf("method %s: already served", md.FullName())
	}
	b, err := translate.NewBinding(md, "POST", path, "*", "", g.jsonOptions(svc), g.schema.Types())
	if err != nil {
		return err
	}
	r := grpcRoute(b, md, up, inv, timeout)
	r.NoSideEffects = descriptors.NoSideEffects(md)
	g.routes.Methods[path] = r
	g.use(r, rc, "gRPC, gRPC-Web, Connect, WebSocket")
	return nil
}

func (g *builder) grpcUpstream(name string) (router.Invoker, error) {
	inv, ok := g.upstreams[name]
	if !ok {
		return nil, fmt.Errorf("unknown upstream %q", name)
	}
	if g.cfg.Upstreams[name].GRPC == nil {
		return nil, fmt.Errorf("upstream %q is not a gRPC upstream", name)
	}
	return inv, nil
}

// callTarget is a route's "call:" resolved against the schema and the
// upstreams.
type callTarget struct {
	method   protoreflect.MethodDescriptor
	service  *ServiceConfig // the exposed service's settings, or defaults
	upstream string
	invoker  router.Invoker
	// timeout is the route's, else the service's, else the upstream's.
	timeout time.Duration
}

// resolveCall resolves rc.Call ("package.Service/Method"), its upstream
// (the route's, else the service's) and its deadline.
func (g *builder) resolveCall(rc *RouteConfig, services map[string]*ServiceConfig) (*callTarget, error) {
	md, err := g.lookupMethod(rc.Call)
	if err != nil {
		return nil, err
	}
	svcName := string(md.Parent().FullName())
	svc := services[svcName]
	if svc == nil {
		svc = &ServiceConfig{Name: svcName}
	}
	if name := string(md.Name()); (len(svc.Methods) > 0 && !slices.Contains(svc.Methods, name)) || slices.Contains(svc.HideMethods, name) {
		return nil, fmt.Errorf("call %q: service %s does not serve the method (methods, hide_methods)", rc.Call, svcName)
	}
	label, upName, sc := svcName, rc.Upstream, rc.SplitConfig
	switch {
	case len(sc.Split) > 0:
		label = rc.Call + " (route)"
	case upName == "" && sc.Sticky == nil:
		upName, sc = svc.Upstream, svc.SplitConfig
	}
	upName, inv, upTimeout, err := g.upstreamOf(label, upName, sc)
	if err != nil {
		return nil, err
	}
	timeout := cmp.Or(time.Duration(rc.Timeout), time.Duration(svc.Timeout), upTimeout)
	return &callTarget{method: md, service: svc, upstream: upName, invoker: inv, timeout: timeout}, nil
}

// lookupMethod finds call, "package.Service/Method", in the schema.
func (g *builder) lookupMethod(call string) (protoreflect.MethodDescriptor, error) {
	svcName, mName, ok := strings.Cut(call, "/")
	if !ok {
		return nil, fmt.Errorf("call %q: want package.Service/Method", call)
	}
	sd, err := g.schema.Service(svcName)
	if err != nil {
		return nil, err
	}
	md := sd.Methods().ByName(protoreflect.Name(mName))
	if md == nil {
		return nil, fmt.Errorf("call %q: service %s has no method %s", call, svcName, mName)
	}
	return md, nil
}

// addRoute adds one route from the routes section.
func (g *builder) addRoute(rc *RouteConfig, services map[string]*ServiceConfig) error {
	if rc.Call == "" && (len(rc.Split) > 0 || rc.Sticky != nil) {
		return fmt.Errorf("split and sticky are for services and routes with a call")
	}
	if rc.Aggregate != nil {
		return g.addAggregate(rc)
	}
	if rc.WebSocket != "" {
		return fmt.Errorf("websocket: a path of its own is for aggregate routes; methods are served at the WebSocket prefix + /package.Service/Method")
	}
	if rc.isMQTT() {
		return g.addMQTTRoute(rc, services)
	}
	method, path, err := rc.methodPath()
	if err != nil {
		return err
	}
	if rc.Call != "" {
		c, err := g.resolveCall(rc, services)
		if err != nil {
			return err
		}
		md, svc := c.method, c.service
		b, err := translate.NewBinding(md, method, path, rc.Body, rc.ResponseBody, g.jsonOptions(svc), g.schema.Types())
		if err != nil {
			return err
		}
		r := grpcRoute(b, md, c.upstream, c.invoker, c.timeout)
		if err := g.routes.HTTP.Add(r); err != nil {
			return err
		}
		g.use(r, rc, "REST "+method+" "+b.Template.Source)
		return nil
	}
	timeout := time.Duration(rc.Timeout)
	inv, ok := g.upstreams[rc.Upstream]
	if !ok || g.cfg.Upstreams[rc.Upstream].HTTP == nil {
		return fmt.Errorf("a route without call needs an http upstream; %q is not one", rc.Upstream)
	}
	tmpl, err := translate.ParseTemplate(path)
	if err != nil {
		return err
	}
	target := method + " " + tmpl.Source
	if rc.Rewrite != nil {
		m, p := rc.Rewrite.Method, rc.Rewrite.Path
		if m == "" {
			m = method
		}
		if p == "" {
			p = tmpl.Source
		}
		target = strings.ToUpper(m) + " " + p
	}
	r := &router.Route{
		HTTPMethod: method, Template: tmpl, Target: target, Upstream: rc.Upstream,
		Invoker: inv, Timeout: timeout,
	}
	if err := g.routes.HTTP.Add(r); err != nil {
		return err
	}
	g.use(r, rc, "REST "+method+" "+tmpl.Source)
	return nil
}

// Flatten lists the errors joined into err, as Build reports them.
func Flatten(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, Flatten(e)...)
		}
		return out
	}
	return []error{err}
}
