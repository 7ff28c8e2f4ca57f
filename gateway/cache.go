package gateway

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rosettagw/rosetta/cache"
	"github.com/rosettagw/rosetta/descriptors"
	"github.com/rosettagw/rosetta/router"
)

// Defaults of the cache section.
const (
	defaultCacheBytes      = 64 << 20
	defaultCacheEntryBytes = 1 << 20
)

// buildCache makes (or takes over from the previous generation) the
// response cache, when the configuration caches anything.
func (g *builder) buildCache() error {
	cfg := g.cfg
	cc := cfg.Cache
	if cc == nil {
		wanted := slices.ContainsFunc(cfg.Services, func(s ServiceConfig) bool { return s.Cache != nil }) ||
			slices.ContainsFunc(cfg.Routes, func(r RouteConfig) bool { return r.Cache != nil })
		if !wanted {
			return nil
		}
		cc = &CacheConfig{}
	}
	spec := struct {
		Store                   string
		MaxBytes, MaxEntryBytes int64
		Redis                   RedisConfig
	}{cmp.Or(cc.Store, "memory"), int64(cmp.Or(cc.MaxBytes, defaultCacheBytes)), int64(cmp.Or(cc.MaxEntryBytes, defaultCacheEntryBytes)), RedisConfig{}}
	switch spec.Store {
	case "memory":
	case "redis":
		if g.sec.redis == nil {
			return fmt.Errorf("cache.store redis: set redis.addr")
		}
		spec.Redis = cfg.Redis
	default:
		return fmt.Errorf("cache.store %q: want memory or redis", cc.Store)
	}
	if spec.MaxEntryBytes > spec.MaxBytes {
		return fmt.Errorf("cache.max_entry_bytes: at most max_bytes (%d)", spec.MaxBytes)
	}
	p, err := g.pool.acquire(cfg, "cache", spec, func(*poolEnv) (any, func(), error) {
		c := cache.Config{MaxBytes: spec.MaxBytes, MaxEntryBytes: spec.MaxEntryBytes, Logger: g.log}
		if spec.Store == "redis" {
			c.Redis, c.RedisTimeout = g.sec.redis, cmp.Or(time.Duration(cfg.Redis.Timeout), 100*time.Millisecond)
		}
		return cache.New(c), nil, nil
	})
	if err != nil {
		return err
	}
	g.held = append(g.held, p)
	g.cache, g.cacheStore = p.value.(*cache.Cache), spec.Store
	g.sec.collectors = append(g.sec.collectors, g.cache.Collector())
	return nil
}

// cacheStep returns the cache step of a chain and its name for `rosetta
// routes` (nil when the method is not cached). A route's cache setting
// caches the method it calls; a service's, and the cache section's ttl,
// the side-effect-free methods (marked NO_SIDE_EFFECTS, or bound to a
// GET).
func (g *builder) cacheStep(s *chainSpec) (string, router.Middleware, error) {
	if s.aggregate || s.method == nil {
		if s.routeCache != nil {
			return "", nil, fmt.Errorf("cache: only the calls of a schema method are cached, not an aggregate's or an HTTP proxy's")
		}
		return "", nil, nil
	}
	unary := !s.method.IsStreamingClient() && !s.method.IsStreamingServer()
	if s.routeCache != nil && !unary {
		return "", nil, fmt.Errorf("cache: only unary methods are cached")
	}
	sideEffectFree := descriptors.NoSideEffects(s.method) ||
		(unary && slices.ContainsFunc(s.routes, func(r *router.Route) bool { return r.HTTPMethod == http.MethodGet }))
	mc := s.routeCache
	if mc == nil && sideEffectFree {
		mc = s.serviceCache
		if mc == nil && g.cfg.Cache != nil && g.cfg.Cache.TTL > 0 {
			mc = &MethodCacheConfig{TTL: g.cfg.Cache.TTL}
		}
	}
	if mc == nil || mc.TTL == 0 || g.cache == nil {
		return "", nil, nil
	}
	all := mc.Vary
	if g.cfg.Cache != nil {
		all = slices.Concat(g.cfg.Cache.Vary, all)
	}
	var vary []string
	for _, h := range all {
		if err := checkHeaderName(h); err != nil {
			return "", nil, fmt.Errorf("cache.vary: %v", err)
		}
		vary = append(vary, strings.ToLower(h))
	}
	slices.Sort(vary)
	vary = slices.Compact(vary)
	rule := cache.Rule{Name: strings.TrimPrefix(methodPath(s.method), "/"), TTL: time.Duration(mc.TTL), Vary: vary, Input: s.method.Input()}
	name := fmt.Sprintf("cache(%s, ttl=%v", g.cacheStore, rule.TTL)
	if len(vary) > 0 {
		name += ", vary=" + strings.Join(vary, ",")
	}
	return name + ", key per identity)", g.cache.Step(rule), nil
}

// checkHeaderName refuses what cannot be an HTTP header name.
func checkHeaderName(h string) error {
	if h == "" || strings.ContainsFunc(h, func(r rune) bool {
		return r <= ' ' || r >= 0x7f || strings.ContainsRune(`"(),/:;<=>?@[\]{}`, r)
	}) {
		return fmt.Errorf("%q is not a header name", h)
	}
	return nil
}

// PurgeCache removes the cached answers of the methods whose name
// ("package.Service/Method") starts with prefix, every answer when prefix
// is empty, and returns how many it removed. With store: redis it removes
// them for every gateway sharing the Redis.
func (g *Generation) PurgeCache(ctx context.Context, prefix string) (int, error) {
	if g.cache == nil {
		return 0, status.Error(codes.FailedPrecondition, "no response cache is configured")
	}
	n, err := g.cache.Purge(ctx, prefix)
	if err != nil {
		return n, status.Error(codes.Unavailable, "purging the cache: "+err.Error())
	}
	return n, nil
}
