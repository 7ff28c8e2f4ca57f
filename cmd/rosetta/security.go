package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rosettagw/rosetta/router"
	"github.com/rosettagw/rosetta/security/apikey"
	"github.com/rosettagw/rosetta/security/authz"
	"github.com/rosettagw/rosetta/security/clientip"
	"github.com/rosettagw/rosetta/security/cors"
	"github.com/rosettagw/rosetta/security/identity"
	"github.com/rosettagw/rosetta/security/ipfilter"
	"github.com/rosettagw/rosetta/security/jwt"
	"github.com/rosettagw/rosetta/security/limits"
	"github.com/rosettagw/rosetta/security/mtls"
	"github.com/rosettagw/rosetta/security/ratelimit"
	"github.com/rosettagw/rosetta/security/servertls"
)

// SecurityConfig is the security section: what applies to every route and
// to the HTTP listener.
type SecurityConfig struct {
	// Policies names the policies every route runs, before its own.
	Policies []string `yaml:"policies"`
	// TrustedProxies are the prefixes of the proxies whose Forwarded and
	// X-Forwarded-For headers are believed.
	TrustedProxies []string `yaml:"trusted_proxies"`
	// IdentityHeaders maps upstream metadata keys to identity fields
	// ("subject", "method", "scopes", "claim:NAME"); clients' copies of
	// these keys are dropped on every route.
	IdentityHeaders identity.Config `yaml:"identity_headers"`
	// TLS makes the HTTP listener speak TLS, optionally with client
	// certificates.
	TLS *servertls.Config `yaml:"tls"`
	// Limits bound the URL and headers of HTTP requests.
	Limits limits.Config `yaml:"limits"`
}

// PolicyConfig is one named policy of the policies section; exactly one
// field is set.
type PolicyConfig struct {
	JWT       *jwt.Config       `yaml:"jwt"`
	APIKey    *apikey.Config    `yaml:"api_key"`
	MTLS      *mtls.Config      `yaml:"mtls"`
	Authorize *authz.Config     `yaml:"authorize"`
	IPFilter  *ipfilter.Config  `yaml:"ip_filter"`
	CORS      *cors.Config      `yaml:"cors"`
	RateLimit *ratelimit.Config `yaml:"rate_limit"`
}

// RedisConfig is the redis section: the Redis shared by the gateways (rate
// limits with store: redis).
type RedisConfig struct {
	Addr string `yaml:"addr"`
	// PasswordFile holds the password (the file, not the config, holds the
	// secret).
	PasswordFile string `yaml:"password_file"`
	DB           int    `yaml:"db"`
	// Timeout bounds one rate-limit decision (default 100ms); a slower
	// Redis counts as unreachable.
	Timeout Duration `yaml:"timeout"`
}

// The phases of a chain: whatever order policies are listed in, a route runs
// network rules (and rate limits keyed without the caller's identity)
// first, then authentication, authorisation, rate limits keyed by identity,
// and identity forwarding.
const (
	phaseNetwork = iota
	phaseAuthenticate
	phaseAuthorize
	phaseIdentityLimit
)

// policy is one built named policy.
type policy struct {
	name  string
	phase int
	// wrap is the policy's middleware; nil for authorize (built per chain,
	// with the chain's challenges) and CORS (not a middleware).
	wrap router.Middleware
	// challenge is an authentication policy's WWW-Authenticate challenge.
	challenge string
	// params are the query parameters the policy reads credentials from.
	params    []string
	authorize *authz.Config
	cors      *cors.Policy
	// limiter is a rate-limit policy's limiter, for its metrics.
	limiter *ratelimit.Limiter
}

// securityParts is what the security section adds to a generation.
type securityParts struct {
	policies map[string]*policy
	global   []string
	identity *identity.Headers
	tls      *tls.Config
	limits   limits.Config
	// cors holds the CORS policy of the HTTP routes that have one.
	cors map[*router.Route]*cors.Policy
	// redis is the client of the redis section, when there is one.
	redis redis.UniversalClient
}

// close releases the Redis connections.
func (s *securityParts) close() {
	if s != nil && s.redis != nil {
		s.redis.Close()
	}
}

// applySecurity builds the policies and puts each route's chain in front of
// its handler: the global policies, then its service's, then its own.
func (g *gateway) applySecurity(cfg *Config) error {
	s, err := buildPolicies(cfg)
	g.security = s
	errs := []error{err}
	errs = append(errs, checkReferences(cfg)...)
	routePolicies := map[string][]string{} // by "METHOD template" or MQTT filter
	for _, rc := range cfg.Routes {
		names := slices.Concat(servicePolicies(cfg, strings.SplitN(rc.Call, "/", 2)[0]), rc.Policies)
		if rc.MQTT != "" {
			routePolicies["mqtt "+rc.MQTT] = names
		} else if m, p, err := rc.methodPath(); err == nil {
			routePolicies[m+" "+p] = names
		}
		if rc.Call != "" && (rc.Publish != "" || rc.State != "") { // also served as a gRPC method
			routePolicies["/"+rc.Call] = names
		}
	}
	// A problem shared by many routes is reported once, with a count.
	var problems []string
	routesOf := map[string][]*router.Route{}
	wrap := func(r *router.Route, names []string, http bool) {
		if err := s.wrap(r, names, http); err != nil {
			if routesOf[err.Error()] == nil {
				problems = append(problems, err.Error())
			}
			routesOf[err.Error()] = append(routesOf[err.Error()], r)
		}
	}
	for _, r := range g.table.Routes() {
		names, ok := routePolicies[r.HTTPMethod+" "+r.Template.Source]
		if !ok && r.Method != nil {
			names = servicePolicies(cfg, string(r.Method.Parent().FullName()))
		}
		wrap(r, names, true)
	}
	for _, r := range g.methods {
		names, ok := routePolicies[r.Target]
		if !ok {
			names = servicePolicies(cfg, string(r.Method.Parent().FullName()))
		}
		wrap(r, names, false)
	}
	if g.mqtt != nil {
		for _, rule := range g.mqtt.rules {
			wrap(rule.Route, routePolicies["mqtt "+rule.Filter], false)
		}
	}
	for _, p := range problems {
		rs := routesOf[p]
		if len(rs) == 1 {
			errs = append(errs, fmt.Errorf("route %s: %s", rs[0], p))
		} else {
			errs = append(errs, fmt.Errorf("%s (%d routes, such as %s)", p, len(rs), rs[0]))
		}
	}
	return errors.Join(errs...)
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

func servicePolicies(cfg *Config, service string) []string {
	for _, svc := range cfg.Services {
		if svc.Name == service {
			return svc.Policies
		}
	}
	return nil
}

// buildPolicies builds every named policy and the listener settings.
func buildPolicies(cfg *Config) (*securityParts, error) {
	sc := cfg.Security
	var errs []error
	if sc.Limits.MaxConnsPerClient < 0 || sc.Limits.MaxURLBytes < 0 || sc.Limits.MaxHeaderBytes < 0 || sc.Limits.JSONDepth < 0 {
		errs = append(errs, fmt.Errorf("security.limits: bounds must not be negative"))
	}
	if sc.Limits.JSONDepth > limits.MaxJSONDepth {
		errs = append(errs, fmt.Errorf("security.limits.json_depth: at most %d", limits.MaxJSONDepth))
	}
	s := &securityParts{policies: map[string]*policy{}, global: sc.Policies, limits: sc.Limits, cors: map[*router.Route]*cors.Policy{}}
	trusted, err := ipfilter.ParsePrefixes(sc.TrustedProxies)
	if err != nil {
		errs = append(errs, fmt.Errorf("security.trusted_proxies: %v", err))
	}
	ips := clientip.New(trusted)
	if len(sc.IdentityHeaders) > 0 {
		if s.identity, err = identity.New(sc.IdentityHeaders); err != nil {
			errs = append(errs, fmt.Errorf("security.identity_headers: %v", err))
		}
	}
	if sc.TLS != nil {
		tc := *sc.TLS
		tc.CertFile, tc.KeyFile, tc.ClientCAFile = cfg.path(tc.CertFile), cfg.path(tc.KeyFile), cfg.path(tc.ClientCAFile)
		if s.tls, err = servertls.New(tc, nil); err != nil {
			errs = append(errs, fmt.Errorf("security.tls: %v", err))
		}
	}
	var redisClient redis.UniversalClient
	if cfg.Redis.Addr != "" {
		opts := &redis.Options{Addr: cfg.Redis.Addr, DB: cfg.Redis.DB, DialTimeout: time.Second, MaxRetries: -1}
		if f := cfg.Redis.PasswordFile; f != "" {
			pw, err := os.ReadFile(cfg.path(f))
			if err != nil {
				errs = append(errs, fmt.Errorf("redis.password_file: %v", err))
			}
			opts.Password = strings.TrimRight(string(pw), "\r\n")
		}
		redisClient = redis.NewClient(opts)
		s.redis = redisClient
	}
	for _, name := range slices.Sorted(maps.Keys(cfg.Policies)) {
		p, err := buildPolicy(cfg, name, cfg.Policies[name], ips, redisClient)
		if err != nil {
			errs = append(errs, fmt.Errorf("policies.%s: %v", name, err))
		}
		s.policies[name] = p // nil when it failed: routes skip it, the error is reported once
	}
	return s, errors.Join(errs...)
}

func buildPolicy(cfg *Config, name string, pc *PolicyConfig, ips *clientip.Resolver, redisClient redis.UniversalClient) (*policy, error) {
	if pc == nil {
		return nil, fmt.Errorf("empty policy")
	}
	p := &policy{name: name}
	n := 0
	if c := pc.JWT; c != nil {
		n++
		jc := *c
		jc.KeyFiles = resolvePaths(cfg, jc.KeyFiles)
		jc.Issuers = slices.Clone(jc.Issuers)
		for i := range jc.Issuers {
			jc.Issuers[i].KeyFiles = resolvePaths(cfg, jc.Issuers[i].KeyFiles)
		}
		v, err := jwt.New(jc, jwt.Options{})
		if err != nil {
			return nil, err
		}
		p.phase, p.wrap, p.challenge = phaseAuthenticate, v.Wrap, v.Challenge()
	}
	if c := pc.APIKey; c != nil {
		n++
		k, err := apikey.New(*c)
		if err != nil {
			return nil, err
		}
		p.phase, p.wrap, p.challenge, p.params = phaseAuthenticate, k.Wrap, k.Challenge(), k.CredentialParams()
	}
	if c := pc.MTLS; c != nil {
		n++
		m, err := mtls.New(*c)
		if err != nil {
			return nil, err
		}
		p.phase, p.wrap = phaseAuthenticate, m.Wrap
	}
	if c := pc.Authorize; c != nil {
		n++
		if _, err := authz.New(*c, nil); err != nil {
			return nil, err
		}
		p.phase, p.authorize = phaseAuthorize, c
	}
	if c := pc.IPFilter; c != nil {
		n++
		f, err := ipfilter.New(*c, ips)
		if err != nil {
			return nil, err
		}
		p.phase, p.wrap = phaseNetwork, f.Wrap
	}
	if c := pc.RateLimit; c != nil {
		n++
		l, err := ratelimit.New(*c, ratelimit.Options{Name: name, Redis: redisClient, RedisTimeout: time.Duration(cfg.Redis.Timeout), IPs: ips})
		if err != nil {
			return nil, err
		}
		p.phase, p.wrap, p.limiter = phaseNetwork, l.Wrap, l
		if l.NeedsIdentity() {
			p.phase = phaseIdentityLimit
		}
	}
	if c := pc.CORS; c != nil {
		n++
		cp, err := cors.New(*c)
		if err != nil {
			return nil, err
		}
		p.cors = cp
	}
	if n != 1 {
		return nil, fmt.Errorf("set exactly one of jwt, api_key, mtls, authorize, ip_filter, cors, rate_limit")
	}
	return p, nil
}

func resolvePaths(cfg *Config, ps []string) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = cfg.path(p)
	}
	return out
}

// wrap puts the chain of the global policies and names in front of r's
// handler. A route with an authentication policy and no authorize policy
// gets the default one: an identity is required. Names that name no built
// policy are skipped: buildPolicies and checkReferences report them.
func (s *securityParts) wrap(r *router.Route, names []string, isHTTP bool) error {
	var chain []*policy
	for _, name := range append(slices.Clone(s.global), names...) {
		if p := s.policies[name]; p != nil && !slices.Contains(chain, p) {
			chain = append(chain, p)
		}
	}
	slices.SortStableFunc(chain, func(a, b *policy) int { return a.phase - b.phase })
	var mws []router.Middleware
	var challenges []string
	authn := false
	// Without an authorize policy, the default gate follows the last
	// authentication policy.
	needGate := !slices.ContainsFunc(chain, func(p *policy) bool { return p.authorize != nil })
	gate := func(cfg authz.Config) error {
		g, err := authz.New(cfg, challenges)
		if err != nil {
			return err
		}
		mws = append(mws, g.Wrap)
		return nil
	}
	for _, p := range chain {
		if authn && needGate && p.phase > phaseAuthenticate {
			needGate = false
			if err := gate(authz.Config{}); err != nil {
				return err
			}
		}
		switch {
		case p.cors != nil:
			if !isHTTP {
				continue
			}
			if s.cors[r] != nil {
				return fmt.Errorf("policy %q: a route has one CORS policy", p.name)
			}
			s.cors[r] = p.cors
		case p.authorize != nil:
			if !authn && !p.authorize.Anonymous {
				return fmt.Errorf("policy %q authorises, but no authentication policy comes before it", p.name)
			}
			if err := gate(*p.authorize); err != nil {
				return err
			}
		default:
			if p.phase == phaseAuthenticate {
				authn = true
				for _, q := range p.params {
					if !slices.Contains(r.CredentialParams, q) {
						r.CredentialParams = append(r.CredentialParams, q)
					}
				}
				if p.challenge != "" {
					challenges = append(challenges, p.challenge)
				}
			}
			mws = append(mws, p.wrap)
		}
	}
	if authn && needGate {
		if err := gate(authz.Config{}); err != nil {
			return err
		}
	}
	if s.identity != nil {
		mws = append(mws, s.identity.Wrap)
	}
	if len(mws) > 0 {
		r.Handler = router.Chain(r.Handler, mws...)
	}
	return nil
}

// listener bounds the connections per client and makes ln speak TLS, as
// the security section configures.
func (s *securityParts) listener(ln net.Listener) net.Listener {
	if s == nil {
		return ln
	}
	if n := s.limits.MaxConnsPerClient; n > 0 {
		ln = limits.Listener(ln, n, nil)
	}
	if s.tls != nil {
		ln = tls.NewListener(ln, s.tls)
	}
	return ln
}

// httpHandler puts the HTTP-level policies in front of h: request limits,
// then CORS preflights and headers for the routes of table with a policy.
func (s *securityParts) httpHandler(g *gateway, h http.Handler) http.Handler {
	if s == nil {
		return h
	}
	if len(s.cors) > 0 {
		h = cors.Handler(h, func(method string, r *http.Request) *cors.Policy {
			m := g.table.Lookup(method, r.URL.EscapedPath(), nil)
			if m.Route == nil {
				return nil
			}
			return s.cors[m.Route]
		})
	}
	return limits.Handler(h, s.limits)
}
