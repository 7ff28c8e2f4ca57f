package cors

import (
	"fmt"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rosettagw/rosetta/security"
)

// Config is the cors policy's configuration for the routes that reference
// it.
type Config struct {
	// AllowedOrigins are the origins allowed to call the methods the policy
	// guards, over REST, gRPC-Web, Connect and WebSocket: exact origins
	// ("https://app.example"), path.Match patterns ("https://*.example.com",
	// "http://localhost:*"), or "*" for any. A page of the gateway's own
	// origin always may.
	AllowedOrigins []string `yaml:"allowed_origins"`
	// AllowedMethods are the methods a preflight may ask for (default: the
	// method of the route asked about).
	AllowedMethods []string `yaml:"allowed_methods"`
	// AllowedHeaders are the request headers a preflight may ask for, such
	// as the custom metadata a browser client sends (x-tenant-id). The
	// headers of the gRPC-Web and Connect protocols and Content-Type are
	// always allowed.
	AllowedHeaders []string `yaml:"allowed_headers"`
	// ExposedHeaders are the response headers scripts may read, besides the
	// gRPC-Web and Connect protocol headers (always exposed).
	ExposedHeaders []string `yaml:"exposed_headers"`
	// AllowCredentials lets browsers send cookies and HTTP authentication.
	AllowCredentials bool `yaml:"allow_credentials"`
	// MaxAge is how long a browser may cache a preflight answer.
	MaxAge time.Duration `yaml:"max_age"`
}

// New returns the policy cfg describes.
func New(cfg Config) (*Policy, error) {
	if len(cfg.AllowedOrigins) == 0 {
		return nil, fmt.Errorf("cors needs allowed_origins")
	}
	return build(cfg)
}

// SameOrigin is the policy of methods without a cors policy: only pages of
// the gateway's own origin may call them.
var SameOrigin, _ = build(Config{})

// protocolHeaders are the request headers of the gRPC-Web and Connect
// protocols, always allowed in preflights, with Content-Type.
var protocolHeaders = []string{"content-type", "x-grpc-web", "x-user-agent", "grpc-timeout",
	"connect-protocol-version", "connect-timeout-ms", "connect-accept-encoding", "connect-content-encoding"}

// exposedHeaders are the response headers of the gRPC-Web and Connect
// protocols that clients must read, always exposed.
var exposedHeaders = []string{"Grpc-Status", "Grpc-Message", "Grpc-Status-Details-Bin"}

func build(cfg Config) (*Policy, error) {
	p := &Policy{origins: map[string]bool{}, methods: map[string]bool{}, headers: map[string]bool{}, credentials: cfg.AllowCredentials}
	for _, h := range protocolHeaders {
		p.headers[h] = true
	}
	for _, o := range cfg.AllowedOrigins {
		if o == "*" {
			if cfg.AllowCredentials {
				return nil, fmt.Errorf(`allowed_origins "*" cannot be combined with allow_credentials`)
			}
			p.anyOrigin = true
			continue
		}
		lower := strings.ToLower(o)
		if strings.ContainsAny(o, "*?[") {
			if _, err := path.Match(lower, ""); err != nil || !strings.Contains(lower, "://") {
				return nil, fmt.Errorf("allowed origin %q: want scheme://host[:port], where path.Match patterns may stand for parts", o)
			}
			p.patterns = append(p.patterns, lower)
			continue
		}
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Path != "" || u.RawQuery != "" || u.User != nil {
			return nil, fmt.Errorf("allowed origin %q: want scheme://host[:port]", o)
		}
		p.origins[lower] = true
	}
	for _, m := range cfg.AllowedMethods {
		p.methods[strings.ToUpper(m)] = true
	}
	for _, h := range cfg.AllowedHeaders {
		if h == "*" {
			return nil, fmt.Errorf(`allowed_headers: list the headers; "*" is not supported`)
		}
		p.headers[strings.ToLower(h)] = true
	}
	canon := slices.Clone(exposedHeaders)
	for _, h := range cfg.ExposedHeaders {
		if h = http.CanonicalHeaderKey(h); !slices.Contains(canon, h) {
			canon = append(canon, h)
		}
	}
	p.expose = strings.Join(canon, ", ")
	if cfg.MaxAge < 0 {
		return nil, fmt.Errorf("max_age must not be negative")
	}
	if cfg.MaxAge > 0 {
		p.maxAge = strconv.Itoa(int(cfg.MaxAge / time.Second))
	}
	return p, nil
}

func init() {
	security.Register(security.Kind{
		Name:   "cors",
		Config: func() any { return new(Config) },
		Build: func(c any, _ security.Env) (*security.Policy, error) {
			p, err := New(*c.(*Config))
			if err != nil {
				return nil, err
			}
			return &security.Policy{Phase: security.PhaseBrowser, CORS: p}, nil
		},
	})
}
