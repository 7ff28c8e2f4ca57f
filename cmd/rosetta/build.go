package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"strings"
	"time"

	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/rosettagw/rosetta/descriptors"
	"github.com/rosettagw/rosetta/router"
	"github.com/rosettagw/rosetta/security/validate"
	"github.com/rosettagw/rosetta/translate"
	"github.com/rosettagw/rosetta/transports/admin"
	"github.com/rosettagw/rosetta/transports/rest"
	"github.com/rosettagw/rosetta/transports/upstream"
)

// gateway is one built generation: schema, upstream clients and routes.
type gateway struct {
	schema    *descriptors.Schema
	table     *router.Table
	upstreams map[string]router.Invoker
	grpcConns []*upstream.GRPC
	// methods holds one route per exposed gRPC method, by
	// "/package.Service/Method", for WebSocket, gRPC-Web, Connect and gRPC.
	methods map[string]*router.Route
	// skipped lists methods not served over REST, with the reason.
	skipped []string
	// mqtt holds the MQTT bridge's rules and routes (cmd/rosetta/mqtt.go).
	mqtt *mqttParts
	// security holds the policies and listener settings (cmd/rosetta/security.go).
	security *securityParts
	// validator checks messages against the schema's rules (cmd/rosetta/validation.go).
	validator *validate.Validator
	// metrics are served by the admin listener, when there is one (cmd/rosetta/admin.go).
	metrics *admin.Metrics
	// aggregateWS holds the composed routes' WebSocket paths, by path under
	// the prefix (cmd/rosetta/aggregate.go).
	aggregateWS map[string]*router.Route
}

// close releases the upstream connections.
func (g *gateway) close() {
	for _, c := range g.grpcConns {
		c.Close()
	}
	g.security.close()
}

// build turns a configuration into a gateway generation. It reports every
// problem it finds, not only the first.
func build(ctx context.Context, cfg *Config) (*gateway, error) {
	g := &gateway{table: &router.Table{}, upstreams: map[string]router.Invoker{}}
	var errs []error
	fail := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	names := make([]string, 0, len(cfg.Upstreams))
	for name := range cfg.Upstreams {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		inv, err := dialUpstream(cfg, cfg.Upstreams[name])
		if err != nil {
			fail("upstream %q: %v", name, err)
			continue
		}
		g.upstreams[name] = inv
		if c, ok := inv.(*upstream.GRPC); ok {
			g.grpcConns = append(g.grpcConns, c)
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
	if len(errs) > 0 {
		return g, errors.Join(errs...)
	}
	loadCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	schema, err := descriptors.Load(loadCtx, sources)
	if err != nil {
		return g, err
	}
	g.schema = schema

	methods := map[string]*ServiceConfig{}
	for i := range cfg.Services {
		svc := &cfg.Services[i]
		errs = append(errs, g.addService(cfg, svc)...)
		methods[svc.Name] = svc
	}
	for i := range cfg.Routes {
		if err := g.addRoute(cfg, &cfg.Routes[i], methods); err != nil {
			fail("routes[%d]: %v", i, err)
		}
	}
	if err := g.applySecurity(cfg); err != nil {
		errs = append(errs, err)
	}
	if err := g.applyValidation(cfg, slog.Default()); err != nil {
		errs = append(errs, err)
	}
	g.applyMetrics(cfg)
	return g, errors.Join(errs...)
}

func dialUpstream(cfg *Config, u *Upstream) (router.Invoker, error) {
	switch {
	case u == nil:
		return nil, fmt.Errorf("empty upstream")
	case u.GRPC != nil && u.HTTP != nil:
		return nil, fmt.Errorf("set grpc or http, not both")
	case u.GRPC != nil:
		var tlsCfg *tls.Config
		if u.GRPC.TLS != nil {
			var err error
			if tlsCfg, err = clientTLS(cfg, u.GRPC.TLS); err != nil {
				return nil, err
			}
		}
		return upstream.DialGRPC(upstream.GRPCConfig{Targets: u.GRPC.Targets, TLS: tlsCfg})
	case u.HTTP != nil:
		return upstream.NewHTTP(upstream.HTTPConfig{URL: u.HTTP.URL})
	}
	return nil, fmt.Errorf("set grpc or http")
}

func clientTLS(cfg *Config, t *TLSClient) (*tls.Config, error) {
	out := &tls.Config{ServerName: t.ServerName, MinVersion: tls.VersionTLS12}
	if t.CAFile != "" {
		pem, err := os.ReadFile(cfg.path(t.CAFile))
		if err != nil {
			return nil, err
		}
		out.RootCAs = x509.NewCertPool()
		if !out.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s: no certificates found", t.CAFile)
		}
	}
	if t.CertFile != "" || t.KeyFile != "" {
		cert, err := tls.LoadX509KeyPair(cfg.path(t.CertFile), cfg.path(t.KeyFile))
		if err != nil {
			return nil, err
		}
		out.Certificates = []tls.Certificate{cert}
	}
	return out, nil
}

// jsonOptions are the JSON options of svc's bindings (nil: the defaults),
// bounded by security.limits.
func jsonOptions(cfg *Config, svc *ServiceConfig) translate.JSONOptions {
	opts := translate.JSONOptions{MaxDepth: cfg.Security.Limits.JSONDepth}
	if svc != nil {
		opts.UseProtoNames, opts.EmitUnpopulated = svc.JSON.UseProtoNames, svc.JSON.EmitUnpopulated
		opts.UseEnumNumbers, opts.DiscardUnknown = svc.JSON.EnumsAsNumbers, svc.JSON.DiscardUnknown
		opts.AllowUnknownQuery = svc.JSON.AllowUnknownQuery
	}
	return opts
}

// addService adds the routes of every method of one exposed service.
func (g *gateway) addService(cfg *Config, svc *ServiceConfig) []error {
	sd, err := g.schema.Service(svc.Name)
	if err != nil {
		return []error{fmt.Errorf("services: %v", err)}
	}
	inv, err := g.grpcUpstream(cfg, svc.Upstream)
	if err != nil {
		return []error{fmt.Errorf("service %s: %v", svc.Name, err)}
	}
	timeout := time.Duration(svc.Timeout)
	if timeout == 0 {
		timeout = time.Duration(cfg.Upstreams[svc.Upstream].Timeout)
	}
	var errs []error
	methods := sd.Methods()
	for i := 0; i < methods.Len(); i++ {
		md := methods.Get(i)
		if err := g.addMethod(cfg, md, svc, inv, timeout); err != nil {
			errs = append(errs, err)
			continue
		}
		if md.IsStreamingClient() {
			g.skipped = append(g.skipped, fmt.Sprintf("%s: methods with a client stream are not served over REST (use WebSocket or gRPC)", md.FullName()))
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
			bindings, err = translate.Bindings(md, rule, jsonOptions(cfg, svc), g.schema.Types())
		case svc.AutoMapping == nil || *svc.AutoMapping:
			var b *translate.Binding
			b, err = translate.NewBinding(md, "POST", "/"+string(sd.FullName())+"/"+string(md.Name()), "*", "", jsonOptions(cfg, svc), g.schema.Types())
			bindings = []*translate.Binding{b}
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("file %s: %v", md.ParentFile().Path(), err))
			continue
		}
		for _, b := range bindings {
			if err := g.table.Add(grpcRoute(b, md, svc.Upstream, inv, timeout)); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errs
}

func grpcRoute(b *translate.Binding, md protoreflect.MethodDescriptor, up string, inv router.Invoker, timeout time.Duration) *router.Route {
	return &router.Route{
		HTTPMethod: b.HTTPMethod, Template: b.Template, Binding: b, Method: md,
		Target:   "/" + string(md.Parent().FullName()) + "/" + string(md.Name()),
		Upstream: up, Invoker: inv, Timeout: timeout, Handler: router.Dispatch,
	}
}

func (g *gateway) grpcUpstream(cfg *Config, name string) (router.Invoker, error) {
	inv, ok := g.upstreams[name]
	if !ok {
		return nil, fmt.Errorf("unknown upstream %q", name)
	}
	if cfg.Upstreams[name].GRPC == nil {
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
func (g *gateway) resolveCall(cfg *Config, rc *RouteConfig, services map[string]*ServiceConfig) (*callTarget, error) {
	md, err := g.lookupMethod(rc.Call)
	if err != nil {
		return nil, err
	}
	svcName := string(md.Parent().FullName())
	svc := services[svcName]
	if svc == nil {
		svc = &ServiceConfig{Name: svcName}
	}
	upName := rc.Upstream
	if upName == "" {
		upName = svc.Upstream
	}
	inv, err := g.grpcUpstream(cfg, upName)
	if err != nil {
		return nil, err
	}
	timeout := time.Duration(rc.Timeout)
	if timeout == 0 {
		timeout = time.Duration(svc.Timeout)
	}
	if timeout == 0 {
		timeout = time.Duration(cfg.Upstreams[upName].Timeout)
	}
	return &callTarget{method: md, service: svc, upstream: upName, invoker: inv, timeout: timeout}, nil
}

// lookupMethod finds call, "package.Service/Method", in the schema.
func (g *gateway) lookupMethod(call string) (protoreflect.MethodDescriptor, error) {
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
func (g *gateway) addRoute(cfg *Config, rc *RouteConfig, services map[string]*ServiceConfig) error {
	if rc.Aggregate != nil {
		return g.addAggregate(cfg, rc)
	}
	if rc.WebSocket != "" {
		return fmt.Errorf("websocket: a path of its own is for aggregate routes; methods are served at the WebSocket prefix + /package.Service/Method")
	}
	if rc.isMQTT() {
		return g.addMQTTRoute(cfg, rc, services)
	}
	method, path, err := rc.methodPath()
	if err != nil {
		return err
	}
	if rc.Call != "" {
		c, err := g.resolveCall(cfg, rc, services)
		if err != nil {
			return err
		}
		md, svc := c.method, c.service
		if md.IsStreamingClient() {
			return fmt.Errorf("call %q: methods with a client stream are not served over REST (use WebSocket or gRPC)", rc.Call)
		}
		b, err := translate.NewBinding(md, method, path, rc.Body, rc.ResponseBody, jsonOptions(cfg, svc), g.schema.Types())
		if err != nil {
			return err
		}
		return g.table.Add(grpcRoute(b, md, c.upstream, c.invoker, c.timeout))
	}
	timeout := time.Duration(rc.Timeout)
	inv, ok := g.upstreams[rc.Upstream]
	if !ok || cfg.Upstreams[rc.Upstream].HTTP == nil {
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
	return g.table.Add(&router.Route{
		HTTPMethod: method, Template: tmpl, Target: target, Upstream: rc.Upstream,
		Invoker: inv, Timeout: timeout, Handler: router.Dispatch,
	})
}

// restGeneration is what the REST ingress needs of a gateway.
func (g *gateway) restGeneration() *rest.Generation {
	return &rest.Generation{Table: g.table, Resolver: g.schema.Types()}
}
