package jwt

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"time"

	gojwt "github.com/golang-jwt/jwt/v5"

	"github.com/rosettagw/rosetta/security"
)

// Config is the jwt policy's configuration: one issuer written inline, or
// several under issuers.
type Config struct {
	IssuerConfig `yaml:",inline"`
	// Issuers are further trusted issuers; a token is verified by the one
	// its iss claim names.
	Issuers []IssuerConfig `yaml:"issuers"`
	// Leeway is the clock skew allowed when checking exp, nbf and iat.
	Leeway time.Duration `yaml:"leeway"`
	// ScopeClaim names the claim holding the caller's scopes, a
	// space-separated string or a list (default "scope", then "scp").
	ScopeClaim string `yaml:"scope_claim"`
	// Realm is the realm of the WWW-Authenticate challenge (default
	// "rosetta").
	Realm string `yaml:"realm"`
}

// IssuerConfig is one trusted token issuer.
type IssuerConfig struct {
	// Issuer is the exact iss claim of its tokens.
	Issuer string `yaml:"issuer"`
	// Audience lists the accepted aud values; a token must name one.
	Audience []string `yaml:"audience"`
	// Algorithms are the only signature algorithms accepted from this
	// issuer, whatever a token's header says.
	Algorithms []string `yaml:"algorithms"`
	// JWKSURL is the issuer's published key set (https, or http on a
	// loopback address).
	JWKSURL string `yaml:"jwks_url"`
	// KeyFiles are local keys: PEM public keys or certificates, or JWK /
	// JWK Set files (which may hold HMAC secrets as "oct" keys).
	KeyFiles []string `yaml:"key_files"`
	// JWKSCacheTTL is how long fetched keys are used before they are
	// fetched again (default 10m).
	JWKSCacheTTL time.Duration `yaml:"jwks_cache_ttl"`
	// JWKSMinRefreshInterval is the least time between two fetches, when a
	// token names an unknown kid (default 30s).
	JWKSMinRefreshInterval time.Duration `yaml:"jwks_min_refresh_interval"`
}

// Options are what the policy needs besides its configuration.
type Options struct {
	// Logger receives JWKS fetch failures (default slog.Default()).
	Logger *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Algorithms lists the signature algorithms an issuer may be configured
// with.
var Algorithms = []string{"HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

// New returns the verifier cfg describes. Key files are read now; JWKS URLs
// are fetched on first use.
func New(cfg Config, opts Options) (*Verifier, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	all := cfg.Issuers
	if cfg.Issuer != "" || cfg.JWKSURL != "" || len(cfg.KeyFiles) > 0 || len(cfg.Algorithms) > 0 || len(cfg.Audience) > 0 {
		all = append([]IssuerConfig{cfg.IssuerConfig}, all...)
	}
	if len(all) == 0 {
		return nil, fmt.Errorf("jwt needs an issuer")
	}
	if cfg.Leeway < 0 {
		return nil, fmt.Errorf("leeway must not be negative")
	}
	v := &Verifier{byIss: map[string]*issuer{}, scopeClaim: cfg.ScopeClaim, realm: cfg.Realm}
	if v.realm == "" {
		v.realm = "rosetta"
	}
	client := &http.Client{Timeout: jwksTimeout, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if len(via) >= 3 {
			return fmt.Errorf("too many redirects")
		}
		if req.URL.Scheme != "https" && !isLoopback(req.URL.Hostname()) {
			return fmt.Errorf("redirected to a plain-http JWKS URL")
		}
		return nil
	}}
	for i, ic := range all {
		is, err := newIssuer(ic, cfg.Leeway, opts, client)
		if err != nil {
			return nil, fmt.Errorf("issuer %d (%q): %w", i, ic.Issuer, err)
		}
		if _, dup := v.byIss[ic.Issuer]; dup {
			return nil, fmt.Errorf("issuer %q configured twice", ic.Issuer)
		}
		v.byIss[ic.Issuer] = is
		v.issuers = append(v.issuers, is)
	}
	return v, nil
}

func newIssuer(ic IssuerConfig, leeway time.Duration, opts Options, client *http.Client) (*issuer, error) {
	if ic.Issuer == "" {
		return nil, fmt.Errorf("issuer is required")
	}
	if len(ic.Audience) == 0 {
		return nil, fmt.Errorf("audience is required")
	}
	if len(ic.Algorithms) == 0 {
		return nil, fmt.Errorf("algorithms is required (e.g. [RS256])")
	}
	for _, a := range ic.Algorithms {
		if !slices.Contains(Algorithms, a) {
			return nil, fmt.Errorf("unknown algorithm %q (known: %v)", a, Algorithms)
		}
	}
	if ic.JWKSURL == "" && len(ic.KeyFiles) == 0 {
		return nil, fmt.Errorf("set jwks_url or key_files")
	}
	is := &issuer{parser: gojwt.NewParser(
		gojwt.WithValidMethods(ic.Algorithms),
		gojwt.WithIssuer(ic.Issuer),
		gojwt.WithAudience(ic.Audience...),
		gojwt.WithExpirationRequired(),
		gojwt.WithIssuedAt(),
		gojwt.WithLeeway(leeway),
		gojwt.WithTimeFunc(opts.Now),
		gojwt.WithStrictDecoding(),
	)}
	for _, f := range ic.KeyFiles {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		keys, err := parseKeyFile(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %v", f, err)
		}
		is.static = append(is.static, keys...)
	}
	if ic.JWKSURL != "" {
		u, err := url.Parse(ic.JWKSURL)
		if err != nil {
			return nil, fmt.Errorf("jwks_url: %v", err)
		}
		if u.Scheme != "https" && !(u.Scheme == "http" && isLoopback(u.Hostname())) {
			return nil, fmt.Errorf("jwks_url must be https (plain http only on a loopback address)")
		}
		is.remote = &remoteKeys{
			url: ic.JWKSURL, client: client, now: opts.Now, log: opts.Logger,
			ttl: ic.JWKSCacheTTL, minInterval: ic.JWKSMinRefreshInterval,
		}
		if is.remote.ttl <= 0 {
			is.remote.ttl = 10 * time.Minute
		}
		if is.remote.minInterval <= 0 {
			is.remote.minInterval = 30 * time.Second
		}
	}
	return is, nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func init() {
	security.Register(security.Kind{
		Name:   "jwt",
		Config: func() any { return new(Config) },
		Build: func(c any, env security.Env) (*security.Policy, error) {
			cfg := *c.(*Config)
			cfg.KeyFiles = resolve(env, cfg.KeyFiles)
			cfg.Issuers = slices.Clone(cfg.Issuers)
			for i := range cfg.Issuers {
				cfg.Issuers[i].KeyFiles = resolve(env, cfg.Issuers[i].KeyFiles)
			}
			v, err := New(cfg, Options{Logger: env.Logger})
			if err != nil {
				return nil, err
			}
			return &security.Policy{Phase: security.PhaseAuthenticate, Wrap: v.Wrap, Challenge: v.Challenge()}, nil
		},
	})
}

func resolve(env security.Env, paths []string) []string {
	out := make([]string, len(paths))
	for i, p := range paths {
		out[i] = env.Path(p)
	}
	return out
}
