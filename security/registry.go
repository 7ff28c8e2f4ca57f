package security

import (
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/rosettagw/rosetta/router"
	"github.com/rosettagw/rosetta/security/clientip"
)

// Phase orders the steps of a method's chain: whatever order policies are
// listed in, network rules (and rate limits keyed without the caller's
// identity, so that a flood is refused before any token is verified) run
// first, then authentication, authorisation, and rate limits keyed by
// identity.
type Phase int

// The phases, in chain order.
const (
	PhaseNetwork Phase = iota
	PhaseAuthenticate
	PhaseAuthorize
	PhaseIdentityLimit
	// PhaseBrowser is the phase of a cors policy: not a step of its own
	// (the chain's origin check reads it), and one per method.
	PhaseBrowser
)

// Policy is one built named policy, as a Kind's Build returns it.
type Policy struct {
	// Phase places the policy in a chain.
	Phase Phase
	// Wrap is the policy's step; nil for authorisation (Authorize builds
	// it per chain) and cors.
	Wrap router.Middleware
	// Challenge is an authentication policy's WWW-Authenticate challenge.
	Challenge string
	// CredentialParams are the query parameters the policy reads
	// credentials from: the ingresses keep them out of what is decoded and
	// forwarded.
	CredentialParams []string
	// Authorize builds an authorisation policy's step, given the
	// challenges of the authentication policies before it in a chain.
	Authorize func(challenges []string) (router.Middleware, error)
	// Anonymous says an authorisation policy admits callers without
	// identity, so it needs no authentication policy before it.
	Anonymous bool
	// CORS is a cors policy's origin rules (a *cors.Policy).
	CORS OriginPolicy
	// Metrics are the counts the policy exports, if any; they are
	// registered with the gateway's metrics for as long as the policy
	// serves.
	Metrics prometheus.Collector
	// Close releases what the policy holds (nil: nothing).
	Close func()
}

// OriginPolicy is a cors policy as the chain's origin check sees it.
type OriginPolicy interface {
	// AllowsOrigin reports whether pages of origin may call.
	AllowsOrigin(origin string) bool
}

// Env is what a policy's Build gets besides its own configuration.
type Env struct {
	// Name is the policy's name in the configuration.
	Name string
	// Path resolves a path of the configuration (relative to its file)
	// and records it as one the policy depends on: a change of the file
	// reloads the configuration.
	Path func(string) string
	// IPs finds each call's client address.
	IPs *clientip.Resolver
	// Redis is the client of the redis section, or nil.
	Redis redis.UniversalClient
	// RedisTimeout bounds one decision in Redis.
	RedisTimeout time.Duration
	// Logger receives the policy's own log lines.
	Logger *slog.Logger
}

// Kind is one kind of policy: the key that names it under a policy's name
// in the configuration, its configuration type and its constructor. Each
// policy package registers its kind from an init function in its setup.go,
// as CoreDNS plugins do.
type Kind struct {
	// Name is the configuration key: jwt, api_key, ip_filter, ...
	Name string
	// Config returns a pointer to a new zero configuration to decode into.
	Config func() any
	// Build makes the policy from the configuration Config returned,
	// decoded.
	Build func(cfg any, env Env) (*Policy, error)
}

var (
	kindsMu sync.RWMutex
	kinds   = map[string]Kind{}
)

// Register adds a kind of policy; it panics when the name is taken, as
// registering twice is a programming error.
func Register(k Kind) {
	kindsMu.Lock()
	defer kindsMu.Unlock()
	if _, dup := kinds[k.Name]; dup {
		panic(fmt.Sprintf("security: policy kind %q registered twice", k.Name))
	}
	kinds[k.Name] = k
}

// LookupKind returns the kind registered under name.
func LookupKind(name string) (Kind, bool) {
	kindsMu.RLock()
	defer kindsMu.RUnlock()
	k, ok := kinds[name]
	return k, ok
}

// KindNames lists the registered kinds, sorted.
func KindNames() []string {
	kindsMu.RLock()
	defer kindsMu.RUnlock()
	names := make([]string, 0, len(kinds))
	for n := range kinds {
		names = append(names, n)
	}
	sort.Strings(names)
	return slices.Clip(names)
}
