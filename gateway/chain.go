package gateway

import (
	"crypto/tls"
	"errors"
	"fmt"
	"maps"
	"os"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"

	"github.com/rosettagw/rosetta/router"
	"github.com/rosettagw/rosetta/security"
	"github.com/rosettagw/rosetta/security/authz"
	"github.com/rosettagw/rosetta/security/clientip"
	"github.com/rosettagw/rosetta/security/cors"
	"github.com/rosettagw/rosetta/security/identity"
	"github.com/rosettagw/rosetta/security/ipfilter"
	"github.com/rosettagw/rosetta/security/limits"
	"github.com/rosettagw/rosetta/security/owner"
	"github.com/rosettagw/rosetta/security/querytoken"
	"github.com/rosettagw/rosetta/security/servertls"
	"github.com/rosettagw/rosetta/security/validate"
	"github.com/rosettagw/rosetta/transports/ingress"

	// The policy kinds register themselves.
	_ "github.com/rosettagw/rosetta/security/apikey"
	_ "github.com/rosettagw/rosetta/security/jwt"
	_ "github.com/rosettagw/rosetta/security/mtls"
	_ "github.com/rosettagw/rosetta/security/ratelimit"
)

// securityParts are the policies and listener settings of a generation.
type securityParts struct {
	policies map[string]*security.Policy
	identity *identity.Headers
	tls      *tls.Config
	limits   limits.Config
	// cors holds the cors policy of each route, for preflights (nil: the
	// route's method has none).
	cors map[*router.Route]*cors.Policy
	// collectors are the metrics the policies and the validator export.
	collectors []prometheus.Collector
	validator  *validate.Validator
	// redis is the client of the redis section (nil: none).
	redis redis.UniversalClient
}

// buildSecurity builds every named policy and the listener settings.
func (g *builder) buildSecurity() (*securityParts, error) {
	cfg := g.cfg
	sc := cfg.Security
	var errs []error
	if sc.Limits.MaxConnsPerClient < 0 || sc.Limits.MaxURLBytes < 0 || sc.Limits.MaxHeaderBytes < 0 || sc.Limits.JSONDepth < 0 {
		errs = append(errs, fmt.Errorf("security.limits: bounds must not be negative"))
	}
	if sc.Limits.JSONDepth > limits.MaxJSONDepth {
		errs = append(errs, fmt.Errorf("security.limits.json_depth: at most %d", limits.MaxJSONDepth))
	}
	s := &securityParts{policies: map[string]*security.Policy{}, limits: sc.Limits, cors: map[*router.Route]*cors.Policy{}}
	trusted, err := ipfilter.ParsePrefixes(sc.TrustedProxies)
	if err != nil {
		errs = append(errs, fmt.Errorf("security.trusted_proxies: %v", err))
	}
	ips, err := clientip.NewHeader(trusted, sc.ClientIPHeader)
	if err != nil {
		errs = append(errs, fmt.Errorf("security.client_ip_header: %v", err))
		ips = clientip.New(trusted)
	}
	if len(sc.IdentityHeaders) > 0 {
		if s.identity, err = identity.New(sc.IdentityHeaders); err != nil {
			errs = append(errs, fmt.Errorf("security.identity_headers: %v", err))
		}
	}
	if sc.TLS != nil {
		tc := *sc.TLS
		tc.CertFile, tc.KeyFile, tc.ClientCAFile = cfg.path(tc.CertFile), cfg.path(tc.KeyFile), cfg.path(tc.ClientCAFile)
		if s.tls, err = servertls.New(tc, g.log); err != nil {
			errs = append(errs, fmt.Errorf("security.tls: %v", err))
		}
	}
	var redisClient redis.UniversalClient
	if cfg.Redis.Addr != "" {
		p, err := g.pool.acquire(cfg, "redis", cfg.Redis, func(env *poolEnv) (any, func(), error) {
			// ContextTimeoutEnabled: the callers' deadlines (redis.timeout)
			// bound the reads and writes; without it go-redis waits its own
			// ReadTimeout (seconds) on a slow Redis, whatever the timeout.
			opts := &redis.Options{Addr: cfg.Redis.Addr, DB: cfg.Redis.DB, DialTimeout: time.Second, MaxRetries: -1, ContextTimeoutEnabled: true}
			if f := cfg.Redis.PasswordFile; f != "" {
				pw, err := readSecret(env.path(f))
				if err != nil {
					return nil, nil, fmt.Errorf("redis.password_file: %v", err)
				}
				opts.Password = pw
			}
			c := redis.NewClient(opts)
			return c, func() { c.Close() }, nil
		})
		if err != nil {
			errs = append(errs, err)
		} else {
			g.held = append(g.held, p)
			redisClient = p.value.(redis.UniversalClient)
			s.redis = redisClient
		}
	}
	for _, name := range slices.Sorted(maps.Keys(cfg.Policies)) {
		pc := cfg.Policies[name]
		if pc == nil || pc.err != nil {
			err := fmt.Errorf("empty policy")
			if pc != nil {
				err = pc.err
			}
			errs = append(errs, fmt.Errorf("policies.%s: %v", name, err))
			continue
		}
		kind, _ := security.LookupKind(pc.Kind)
		// A policy depends on its own configuration, and on the shared
		// settings it is built with.
		spec := struct {
			Kind    string
			Config  any
			Redis   RedisConfig
			Trusted []string
			IPFrom  string
		}{pc.Kind, pc.Config, cfg.Redis, sc.TrustedProxies, sc.ClientIPHeader}
		p, err := g.pool.acquire(cfg, "policy "+name, spec, func(env *poolEnv) (any, func(), error) {
			pol, err := kind.Build(pc.Config, security.Env{
				Name: name, Path: env.path, IPs: ips, Redis: redisClient,
				RedisTimeout: time.Duration(cfg.Redis.Timeout), Logger: g.log,
			})
			if err != nil {
				return nil, nil, err
			}
			return pol, pol.Close, nil
		})
		if err != nil {
			errs = append(errs, fmt.Errorf("policies.%s: %v", name, err))
			continue // routes skip it; the error is reported once
		}
		g.held = append(g.held, p)
		pol := p.value.(*security.Policy)
		s.policies[name] = pol
		if pol.Metrics != nil {
			s.collectors = append(s.collectors, pol.Metrics)
		}
	}
	return s, errors.Join(errs...)
}

// sameValidation reports whether two validation settings say the same.
func sameValidation(a, b *ValidationConfig) bool {
	on := func(v *ValidationConfig) bool { return v.Requests == nil || *v.Requests }
	return on(a) == on(b) && a.Responses == b.Responses
}

// readSecret reads a file holding a secret (a password), without its
// trailing newline.
func readSecret(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}

// use records that r, made by rc (nil for a service's own routes), runs the
// chain of its method; way says how it reaches the method.
func (g *builder) use(r *router.Route, rc *RouteConfig, way string) {
	if r.Method == nil {
		g.keyed(r, rc, way)
		return
	}
	g.uses = append(g.uses, use{route: r, key: string(r.Method.FullName()), rc: rc, way: way})
}

// keyed records that r runs a chain of its own route configuration's: an
// aggregate, an HTTP proxy or a watch has no method of the schema, and the
// routes one configuration makes (an aggregate's REST, MQTT and WebSocket
// ways) share one chain.
func (g *builder) keyed(r *router.Route, rc *RouteConfig, way string) {
	g.uses = append(g.uses, use{route: r, key: fmt.Sprintf("route %p", rc), rc: rc, way: way, own: true})
}

// chainSpec is what one chain is built from.
type chainSpec struct {
	name  string // the metrics label: the method, or the route
	names []string
	final router.Handler
	// aggregate is set when final is an aggregate rather than dispatch.
	aggregate bool
	// method is the method whose request messages are validated (nil: none).
	method     protoreflect.MethodDescriptor
	validation *ValidationConfig
	// serviceCache and routeCache are the cache settings of the method's
	// service and of the routes calling it (nil: none).
	serviceCache, routeCache *MethodCacheConfig
	routes                   []*router.Route
	ways                     []string
}

// buildChains builds one chain per method (and per route without a method
// of its own) and gives it to every route that reaches that method: the
// global policies, those of the method's service and those of every route
// configuration that calls the method, whichever route a call comes by.
func (g *builder) buildChains() error {
	cfg := g.cfg
	var errs []error
	if v, err := validate.New(g.schema.Types(), g.log); err != nil {
		errs = append(errs, fmt.Errorf("validation: %v", err))
	} else {
		g.sec.validator = v
		g.sec.collectors = append(g.sec.collectors, v.Collector())
	}
	g.sec.collectors = append(g.sec.collectors, g.pool.collectors()...)
	if err := g.buildCache(); err != nil {
		errs = append(errs, err)
	}
	services := map[string]*ServiceConfig{}
	for i := range cfg.Services {
		services[cfg.Services[i].Name] = &cfg.Services[i]
	}
	specs := map[string]*chainSpec{}
	var order []string
	for _, u := range g.uses {
		s := specs[u.key]
		if s == nil {
			s = &chainSpec{final: router.Dispatch, names: slices.Clone(cfg.Security.Policies)}
			if u.route.Handler != nil { // an aggregate
				s.final, s.aggregate = u.route.Handler, true
			}
			if !u.own {
				s.name = strings.TrimPrefix(methodPath(u.route.Method), "/")
				s.method = u.route.Method
				if svc := services[string(u.route.Method.Parent().FullName())]; svc != nil {
					s.names = append(s.names, svc.Policies...)
					s.validation, s.serviceCache = svc.Validation, svc.Cache
				}
			} else {
				s.name = u.route.HTTPMethod + " " + u.route.Template.Source
				s.method = u.route.Method // an aggregate's input
			}
			specs[u.key] = s
			order = append(order, u.key)
		}
		if u.rc != nil {
			s.names = append(s.names, u.rc.Policies...)
			if vc := u.rc.Validation; vc != nil {
				if s.validation != nil && !sameValidation(s.validation, vc) {
					errs = append(errs, fmt.Errorf("%s: its service and the routes calling it set different validation; a method has one chain, so set it once", s.name))
				}
				s.validation = vc
			}
			if mc := u.rc.Cache; mc != nil {
				if s.routeCache != nil && !reflect.DeepEqual(s.routeCache, mc) {
					errs = append(errs, fmt.Errorf("%s: the routes calling it set different cache settings; a method has one chain, so set it once", s.name))
				}
				s.routeCache = mc
			}
		}
		s.routes = append(s.routes, u.route)
		s.ways = append(s.ways, u.way)
	}
	// A problem shared by many chains is reported once, with a count.
	var problems []string
	chainsOf := map[string][]string{}
	for _, key := range order {
		s := specs[key]
		h, params, cp, steps, err := g.chain(s)
		if err != nil {
			if chainsOf[err.Error()] == nil {
				problems = append(problems, err.Error())
			}
			chainsOf[err.Error()] = append(chainsOf[err.Error()], s.name)
			continue
		}
		for _, r := range s.routes {
			r.Handler, r.CredentialParams = h, params
			g.sec.cors[r] = cp
			if !s.aggregate {
				r.Retry = g.retry(r)
			}
		}
		g.methods[s.name] = &methodInfo{Method: s.name, Ways: s.ways, Chain: steps}
	}
	for _, p := range problems {
		cs := chainsOf[p]
		if len(cs) == 1 {
			errs = append(errs, fmt.Errorf("%s: %s", cs[0], p))
		} else {
			errs = append(errs, fmt.Errorf("%s (%d methods, such as %s)", p, len(cs), cs[0]))
		}
	}
	return errors.Join(errs...)
}

// chain builds the handler of one chain spec, in the design's order: call
// metrics, the cors origin check, the WebSocket query-token rule, network
// rules (IP filters, rate limits keyed without identity), the MQTT
// topic-owner rule, authentication, authorisation (the default gate, when
// no authorize policy is named, requires an identity), rate limits keyed by
// identity, identity forwarding, request validation, the response cache,
// then the final handler (dispatch, or an aggregate) wrapped by response
// validation. It
// returns the chain, the query parameters that carry credentials, the cors
// policy and the names of the steps, for `rosetta routes`.
func (g *builder) chain(s *chainSpec) (h router.Handler, params []string, corsPolicy *cors.Policy, steps []string, err error) {
	type named struct {
		name string
		*security.Policy
	}
	var pols []named
	corsName := "same-origin"
	for _, name := range s.names {
		p := g.sec.policies[name]
		if p == nil || slices.ContainsFunc(pols, func(n named) bool { return n.Policy == p }) {
			continue // unknown or failed: reported once elsewhere
		}
		if p.CORS != nil {
			if corsPolicy != nil && corsPolicy != p.CORS {
				return nil, nil, nil, nil, fmt.Errorf("policy %q: a method has one cors policy", name)
			}
			corsPolicy, corsName = p.CORS.(*cors.Policy), name
			continue
		}
		pols = append(pols, named{name, p})
	}
	slices.SortStableFunc(pols, func(a, b named) int { return int(a.Phase) - int(b.Phase) })
	var mws []router.Middleware
	step := func(name string, mw router.Middleware) {
		mws, steps = append(mws, mw), append(steps, name)
	}
	step("observe", g.observeStep(s.name))
	step("cors("+corsName+")", cors.Check(corsPolicy))
	step("query-token", querytoken.Step(g.cfg.WebSocket.AllowQueryToken, ingress.NewForwarder(g.cfg.HTTP.ForwardHeaders).Forwards("Authorization")))
	var challenges []string
	authn, ownerAdded := false, false
	needGate := !slices.ContainsFunc(pols, func(p named) bool { return p.Authorize != nil })
	gate := func(name string, p *security.Policy) error {
		build := p.Authorize
		if build == nil { // the default gate: an identity is required
			build = func(ch []string) (router.Middleware, error) {
				gt, err := authz.New(authz.Config{}, ch)
				if err != nil {
					return nil, err
				}
				return gt.Wrap, nil
			}
		}
		mw, err := build(challenges)
		if err != nil {
			return err
		}
		step(name, mw)
		return nil
	}
	for _, p := range pols {
		if !ownerAdded && p.Phase >= security.PhaseAuthenticate {
			step("mqtt-owner", owner.Step)
			ownerAdded = true
		}
		if authn && needGate && p.Phase > security.PhaseAuthenticate {
			needGate = false
			if err := gate("identity-required", &security.Policy{}); err != nil {
				return nil, nil, nil, nil, err
			}
		}
		switch {
		case p.Authorize != nil:
			if !authn && !p.Anonymous {
				return nil, nil, nil, nil, fmt.Errorf("policy %q authorises, but no authentication policy comes before it", p.name)
			}
			if err := gate(p.name, p.Policy); err != nil {
				return nil, nil, nil, nil, err
			}
		default:
			if p.Phase == security.PhaseAuthenticate {
				authn = true
				for _, q := range p.CredentialParams {
					if !slices.Contains(params, q) {
						params = append(params, q)
					}
				}
				if p.Challenge != "" {
					challenges = append(challenges, p.Challenge)
				}
			}
			step(p.name, p.Wrap)
		}
	}
	if !ownerAdded {
		step("mqtt-owner", owner.Step)
	}
	if authn && needGate {
		if err := gate("identity-required", &security.Policy{}); err != nil {
			return nil, nil, nil, nil, err
		}
	}
	if id := g.sec.identity; id != nil {
		step("identity-headers", id.Wrap)
	}
	if slices.ContainsFunc(s.routes, func(r *router.Route) bool { _, ok := r.Invoker.(*router.Split); return ok }) {
		step("split", router.SplitStep) // after authentication: the sticky key may be the identity
	}
	final := s.final
	if s.method != nil && g.sec.validator != nil {
		vc := s.validation
		if vc == nil {
			vc = &ValidationConfig{}
		}
		if vc.Requests == nil || *vc.Requests {
			if mw := g.sec.validator.Requests(s.method); mw != nil {
				step("validate", mw)
			}
		}
		mode := validate.ResponseMode(vc.Responses)
		switch mode {
		case validate.ResponsesOff, validate.ResponsesLog, validate.ResponsesFail:
		default:
			return nil, nil, nil, nil, fmt.Errorf("validation.responses %q: want log or fail", vc.Responses)
		}
		if !s.aggregate {
			if mw := g.sec.validator.Responses(s.method, mode); mw != nil {
				final = mw(final)
				steps = append(steps, "validate-responses("+vc.Responses+")")
			}
		}
	}
	if name, mw, err := g.cacheStep(s); err != nil {
		return nil, nil, nil, nil, err
	} else if mw != nil { // the last step: before the response validation that wraps dispatch
		mws = append(mws, mw)
		steps = slices.Insert(steps, len(mws)-1, name)
	}
	if !s.aggregate {
		steps = append(steps, "dispatch")
	} else {
		steps = append(steps, "aggregate")
	}
	return router.Chain(final, mws...), params, corsPolicy, steps, nil
}

// checkReferences reports each policy name that names no policy, once,
// with where it is used.
func checkReferences(cfg *Config) []error {
	var errs []error
	check := func(where string, names []string) {
		for _, n := range names {
			if _, ok := cfg.Policies[n]; !ok {
				errs = append(errs, fmt.Errorf("%s: unknown policy %q", where, n))
			}
		}
	}
	check("security.policies", cfg.Security.Policies)
	for _, svc := range cfg.Services {
		check("service "+svc.Name, svc.Policies)
	}
	for i, rc := range cfg.Routes {
		check(fmt.Sprintf("routes[%d]", i), rc.Policies)
	}
	return errs
}

// use is one route and the chain it runs: the chain of its method, or of
// its own route configuration for a route without a schema method (an
// HTTP proxy, a watch, an aggregate).
type use struct {
	route *router.Route
	key   string
	rc    *RouteConfig
	// way says how the route reaches its method, for `rosetta routes`.
	way string
	// own is set for a route with a chain of its own (no schema method).
	own bool
}

// retry returns the retry policy of route's upstream when the route's calls
// are safe to repeat (see RetryConfig), else nil.
func (g *builder) retry(r *router.Route) *router.Retry {
	p := g.retries[r.Upstream]
	if p == nil || r.Method == nil || r.Method.IsStreamingClient() || r.Method.IsStreamingServer() {
		return nil
	}
	level := descriptorpb.MethodOptions_IDEMPOTENCY_UNKNOWN
	if opts, ok := r.Method.Options().(*descriptorpb.MethodOptions); ok {
		level = opts.GetIdempotencyLevel()
	}
	if level != descriptorpb.MethodOptions_IDEMPOTENCY_UNKNOWN || r.HTTPMethod == "GET" || r.HTTPMethod == "HEAD" {
		return p
	}
	return nil
}
