package cors

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Config is the cors policy's configuration for the routes that reference
// it.
type Config struct {
	// AllowedOrigins are the origins ("https://app.example") allowed to call
	// the route, or "*" for any.
	AllowedOrigins []string `yaml:"allowed_origins"`
	// AllowedMethods are the methods a preflight may ask for (default: the
	// method of the route asked about).
	AllowedMethods []string `yaml:"allowed_methods"`
	// AllowedHeaders are the request headers a preflight may ask for
	// (Content-Type is always allowed).
	AllowedHeaders []string `yaml:"allowed_headers"`
	// ExposedHeaders are the response headers scripts may read.
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
	p := &Policy{origins: map[string]bool{}, methods: map[string]bool{}, headers: map[string]bool{"content-type": true}, credentials: cfg.AllowCredentials}
	for _, o := range cfg.AllowedOrigins {
		if o == "*" {
			if cfg.AllowCredentials {
				return nil, fmt.Errorf(`allowed_origins "*" cannot be combined with allow_credentials`)
			}
			p.anyOrigin = true
			continue
		}
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Path != "" || u.RawQuery != "" || u.User != nil {
			return nil, fmt.Errorf("allowed origin %q: want scheme://host[:port]", o)
		}
		p.origins[strings.ToLower(o)] = true
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
	canon := make([]string, len(cfg.ExposedHeaders))
	for i, h := range cfg.ExposedHeaders {
		canon[i] = http.CanonicalHeaderKey(h)
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
