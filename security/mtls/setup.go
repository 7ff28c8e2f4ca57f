package mtls

import (
	"fmt"

	"github.com/rosettagw/rosetta/security"
)

// Config is the mtls policy's configuration.
type Config struct {
	// Identity says which part of the client certificate names the caller:
	// "subject_cn" (default), "subject" (the whole distinguished name),
	// "san_dns", "san_uri" or "san_email" (the first such SAN).
	Identity string `yaml:"identity"`
}

// New returns the policy cfg describes.
func New(cfg Config) (*Certs, error) {
	switch cfg.Identity {
	case "":
		cfg.Identity = "subject_cn"
	case "subject_cn", "subject", "san_dns", "san_uri", "san_email":
	default:
		return nil, fmt.Errorf("identity %q: want subject_cn, subject, san_dns, san_uri or san_email", cfg.Identity)
	}
	return &Certs{from: cfg.Identity}, nil
}

func init() {
	security.Register(security.Kind{
		Name:   "mtls",
		Config: func() any { return new(Config) },
		Build: func(c any, _ security.Env) (*security.Policy, error) {
			m, err := New(*c.(*Config))
			if err != nil {
				return nil, err
			}
			return &security.Policy{Phase: security.PhaseAuthenticate, Wrap: m.Wrap}, nil
		},
	})
}
