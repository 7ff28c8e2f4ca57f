package ratelimit

import (
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rosettagw/rosetta/security"
	"github.com/rosettagw/rosetta/security/clientip"
)

// Config is the rate_limit policy's configuration: one limit written
// inline, or several under limits, all applied to the same key.
type Config struct {
	LimitConfig `yaml:",inline"`
	Limits      []LimitConfig `yaml:"limits"`
	// Key says whose calls share a limit: parts joined by "+" among ip,
	// subject (the authenticated caller: JWT sub, API key identity,
	// certificate name), claim:NAME, header:NAME, client_id (MQTT), route
	// and global. Default ip.
	Key string `yaml:"key"`
	// Store is local (default: this process only) or redis (shared by
	// every gateway using the same Redis).
	Store string `yaml:"store"`
	// OnRedisError is what a redis limit does while Redis is unreachable:
	// local (default: limit in this process at its share, 1/replicas of
	// the rate and burst), open (let calls through) or closed (refuse them
	// with UNAVAILABLE).
	OnRedisError string `yaml:"on_redis_error"`
	// Replicas is the number of gateways sharing a redis limit (default 1).
	Replicas int `yaml:"replicas"`
	// MaxKeys bounds the keys a local store holds (default 100000).
	MaxKeys int `yaml:"max_keys"`
	// Shadow counts and logs the calls the limit would refuse without
	// refusing them, to trial a limit.
	Shadow bool `yaml:"shadow"`
}

// LimitConfig is one GCRA limit.
type LimitConfig struct {
	// Name names the limit in headers and logs (default "default").
	Name string `yaml:"name"`
	// Rate is "COUNT/PERIOD": 10/s, 600/min, 10000/day, 5/500ms.
	Rate string `yaml:"rate"`
	// Burst is how many calls may come at once (default COUNT).
	Burst int `yaml:"burst"`
}

// Options are what the policy needs besides its configuration.
type Options struct {
	// Name is the policy's name; it prefixes the Redis keys.
	Name string
	// Redis is the shared store's client (required by store: redis).
	Redis redis.UniversalClient
	// RedisTimeout bounds one decision in Redis (default 100ms).
	RedisTimeout time.Duration
	// IPs finds client addresses for the ip key.
	IPs *clientip.Resolver
	// Logger receives shadow refusals and Redis outages (default
	// slog.Default()).
	Logger *slog.Logger
	// Now is the local stores' clock (default time.Now).
	Now func() time.Time
}

// New returns the limiter cfg describes.
func New(cfg Config, opts Options) (*Limiter, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.IPs == nil {
		opts.IPs = &clientip.Resolver{}
	}
	if opts.RedisTimeout <= 0 {
		opts.RedisTimeout = 100 * time.Millisecond
	}
	lcs := cfg.Limits
	if cfg.Rate != "" || cfg.Burst != 0 || cfg.Name != "" {
		lcs = append([]LimitConfig{cfg.LimitConfig}, lcs...)
	}
	if len(lcs) == 0 {
		return nil, fmt.Errorf("rate_limit needs a rate")
	}
	if cfg.Replicas == 0 {
		cfg.Replicas = 1
	}
	if cfg.Replicas < 0 {
		return nil, fmt.Errorf("replicas must be positive")
	}
	if cfg.MaxKeys == 0 {
		cfg.MaxKeys = 100000
	}
	if cfg.MaxKeys < shards {
		return nil, fmt.Errorf("max_keys must be at least %d", shards)
	}
	l := &Limiter{name: opts.Name, ips: opts.IPs, shadow: cfg.Shadow, log: opts.Logger}
	names := map[string]bool{}
	var policy []string
	for i, lc := range lcs {
		lim, err := parseLimit(lc)
		if err != nil {
			return nil, fmt.Errorf("limits[%d]: %v", i, err)
		}
		if names[lim.name] {
			return nil, fmt.Errorf("limit %q twice", lim.name)
		}
		names[lim.name] = true
		l.limits = append(l.limits, lim)
		l.fallback = append(l.fallback, lim.share(cfg.Replicas))
		policy = append(policy, fmt.Sprintf("%q;q=%d;w=%d", lim.name, lim.burst, ceilSeconds(lim.tau)))
	}
	l.policyHeader = []string{strings.Join(policy, ", ")}
	var err error
	if l.key, err = parseKey(cfg.Key); err != nil {
		return nil, err
	}
	l.local = newLocal(cfg.MaxKeys, opts.Now)
	switch cfg.Store {
	case "", "local":
		l.store = l.local
	case "redis":
		if opts.Redis == nil {
			return nil, fmt.Errorf("store redis needs the redis section")
		}
		l.store = &redisStore{client: opts.Redis, timeout: opts.RedisTimeout}
		switch cfg.OnRedisError {
		case "", "local", "open", "closed":
			l.onError = cfg.OnRedisError
		default:
			return nil, fmt.Errorf("on_redis_error %q: want local, open or closed", cfg.OnRedisError)
		}
		if l.onError == "" {
			l.onError = "local"
		}
	default:
		return nil, fmt.Errorf("store %q: want local or redis", cfg.Store)
	}
	if cfg.Store != "redis" && (cfg.OnRedisError != "" || cfg.Replicas != 1) {
		return nil, fmt.Errorf("on_redis_error and replicas apply to store: redis")
	}
	return l, nil
}

// parseLimit parses "COUNT/PERIOD" and the burst.
func parseLimit(lc LimitConfig) (*limit, error) {
	count, per, ok := strings.Cut(lc.Rate, "/")
	n, err := strconv.Atoi(count)
	if !ok || err != nil || n <= 0 {
		return nil, fmt.Errorf("rate %q: want COUNT/PERIOD, such as 10/s or 10000/day", lc.Rate)
	}
	var period time.Duration
	switch per {
	case "s":
		period = time.Second
	case "m", "min":
		period = time.Minute
	case "h":
		period = time.Hour
	case "d", "day":
		period = 24 * time.Hour
	default:
		if period, err = time.ParseDuration(per); err != nil || period <= 0 {
			return nil, fmt.Errorf("rate %q: unknown period %q (want s, min, h, day or a duration)", lc.Rate, per)
		}
	}
	l := &limit{name: lc.Name, interval: period / time.Duration(n), burst: lc.Burst}
	if l.name == "" {
		l.name = "default"
	}
	if l.interval < time.Microsecond {
		return nil, fmt.Errorf("rate %q is above one call per microsecond", lc.Rate)
	}
	if l.burst == 0 {
		l.burst = n
	}
	if l.burst < 0 {
		return nil, fmt.Errorf("burst must be positive")
	}
	l.tau = l.interval * time.Duration(l.burst)
	return l, nil
}

func ceilSeconds(d time.Duration) int64 {
	return max(1, int64((d+time.Second-1)/time.Second))
}

func init() {
	security.Register(security.Kind{
		Name:   "rate_limit",
		Config: func() any { return new(Config) },
		Build: func(c any, env security.Env) (*security.Policy, error) {
			l, err := New(*c.(*Config), Options{Name: env.Name, Redis: env.Redis, RedisTimeout: env.RedisTimeout, IPs: env.IPs, Logger: env.Logger})
			if err != nil {
				return nil, err
			}
			phase := security.PhaseNetwork
			if l.NeedsIdentity() {
				phase = security.PhaseIdentityLimit
			}
			return &security.Policy{Phase: phase, Wrap: l.Wrap, Metrics: l.Collector()}, nil
		},
	})
}
