package authz

import (
	"fmt"

	"github.com/rosettagw/rosetta/router"
	"github.com/rosettagw/rosetta/security"
)

// Config is the authorize policy's configuration.
type Config struct {
	// Anonymous lets calls without credentials through.
	Anonymous bool `yaml:"anonymous"`
	// Scopes must all be granted to the caller.
	Scopes []string `yaml:"scopes"`
	// Roles lists roles of which the caller must hold at least one, read
	// from the JWT claim RolesClaim.
	Roles []string `yaml:"roles"`
	// RolesClaim is the claim holding the caller's roles, a list or a
	// space-separated string; dots walk into objects
	// ("realm_access.roles"). Default "roles".
	RolesClaim string `yaml:"roles_claim"`
}

// New returns the gate cfg describes; challenges are the WWW-Authenticate
// challenges of the authentication policies before it, sent when a call
// without credentials is refused.
func New(cfg Config, challenges []string) (*Gate, error) {
	if cfg.Anonymous && (len(cfg.Scopes) > 0 || len(cfg.Roles) > 0) {
		return nil, fmt.Errorf("anonymous access cannot require scopes or roles")
	}
	if cfg.RolesClaim == "" {
		cfg.RolesClaim = "roles"
	}
	return &Gate{cfg: cfg, challenges: challenges}, nil
}

func init() {
	security.Register(security.Kind{
		Name:   "authorize",
		Config: func() any { return new(Config) },
		Build: func(c any, _ security.Env) (*security.Policy, error) {
			cfg := *c.(*Config)
			if _, err := New(cfg, nil); err != nil {
				return nil, err
			}
			return &security.Policy{
				Phase:     security.PhaseAuthorize,
				Anonymous: cfg.Anonymous,
				Authorize: func(challenges []string) (router.Middleware, error) {
					g, err := New(cfg, challenges)
					if err != nil {
						return nil, err
					}
					return g.Wrap, nil
				},
			}, nil
		},
	})
}
