// Package ratelimit is the rate_limit policy: GCRA limits (a rate and a
// burst) on a key built from the call (client address, identity, claim,
// header, MQTT client id, route), kept in this process (sharded, bounded,
// idle keys dropped) or in Redis (one atomic script per decision, on Redis's
// clock), with a chosen behaviour while Redis is unreachable.
//
// Every limited call gets the IETF RateLimit-Policy and RateLimit headers
// (through router.Call.ResponseHeader); a refused one also gets Retry-After
// and fails with RESOURCE_EXHAUSTED carrying a google.rpc.RetryInfo.
package ratelimit

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/rosettagw/rosetta/router"
	"github.com/rosettagw/rosetta/security"
	"github.com/rosettagw/rosetta/security/clientip"
)

// Limiter limits calls.
type Limiter struct {
	name         string
	limits       []*limit
	fallback     []*limit // limits scaled to this replica's share
	key          []keyPart
	store        store
	local        *local // the store, or the fallback of a Redis store
	onError      string // for a Redis store: local, open or closed
	shadow       bool
	policyHeader []string // the RateLimit-Policy header, shared by every answer
	ips          *clientip.Resolver
	log          *slog.Logger

	// redisRetryAt is when a failing Redis is tried again (Unix ns).
	redisRetryAt  atomic.Int64
	redisDown     atomic.Bool
	lastShadowLog atomic.Int64
	stats         counters
}

// Stats counts a limiter's decisions.
type Stats struct {
	// Allowed and Refused count enforced decisions; Shadowed counts the
	// refusals a shadow limit let through.
	Allowed, Refused, Shadowed int64
	// StoreErrors counts failed Redis decisions; FailedOpen, FailedClosed
	// and Fallbacks count how each call was then decided.
	StoreErrors, FailedOpen, FailedClosed, Fallbacks int64
	// Evictions counts active keys the local store dropped to stay within
	// max_keys.
	Evictions int64
}

type counters struct {
	allowed, refused, shadowed, storeErrors, failedOpen, failedClosed, fallbacks atomic.Int64
}

// Stats returns the limiter's counts so far.
func (l *Limiter) Stats() Stats {
	c := &l.stats
	return Stats{
		Allowed: c.allowed.Load(), Refused: c.refused.Load(), Shadowed: c.shadowed.Load(),
		StoreErrors: c.storeErrors.Load(), FailedOpen: c.failedOpen.Load(), FailedClosed: c.failedClosed.Load(), Fallbacks: c.fallbacks.Load(),
		Evictions: l.local.evictions.Load(),
	}
}

// redisBackoff is how long a failed Redis is left alone before it is tried
// again; meanwhile calls are decided by the failure mode at once.
const redisBackoff = time.Second

// NeedsIdentity reports whether the key names the caller (subject or a
// claim), so that the limiter must run after authentication; other keys
// can limit calls before their credentials cost a verification.
func (l *Limiter) NeedsIdentity() bool {
	for _, p := range l.key {
		if p.kind == "subject" || p.kind == "claim" {
			return true
		}
	}
	return false
}

// Wrap is the limiter as a router.Middleware. A streaming call takes one
// unit when it starts, which covers its first client message, and one for
// each further message: a refused message ends the stream with
// RESOURCE_EXHAUSTED.
func (l *Limiter) Wrap(next router.Handler) router.Handler {
	return router.HandlerFunc(func(ctx context.Context, c *router.Call) error {
		if err := l.check(ctx, c, true); err != nil {
			return err
		}
		if c.Stream != nil {
			c.Stream = &limitedStream{Stream: c.Stream, l: l, c: c, ctx: ctx}
		}
		return next.Handle(ctx, c)
	})
}

// limitedStream limits the client messages of a stream.
type limitedStream struct {
	router.Stream
	l       *Limiter
	c       *router.Call
	ctx     context.Context
	started bool
}

// Recv returns the next client message once the limiter allows it.
func (s *limitedStream) Recv() ([]byte, error) {
	msg, err := s.Stream.Recv()
	if err != nil || !s.started {
		s.started = true
		return msg, err
	}
	if err := s.l.check(s.ctx, s.c, false); err != nil {
		return nil, err
	}
	return msg, nil
}

// check decides one call (or message) and, with headers, sets the
// RateLimit headers of the answer; mid-stream decisions do not, as the
// answer's header may already be on its way.
func (l *Limiter) check(ctx context.Context, c *router.Call, headers bool) error {
	key := l.keyOf(c)
	var kbuf [4]string
	var ubuf [4]time.Duration
	keys := kbuf[:0]
	var used []time.Duration
	if n := len(l.limits); n > len(ubuf) {
		used = make([]time.Duration, n)
	} else {
		used = ubuf[:n]
	}
	for _, lim := range l.limits {
		keys = append(keys, "rosetta:rl:"+l.name+":"+lim.name+":"+key)
	}
	limits, allowed, err := l.decide(ctx, keys, used)
	if err != nil {
		return err
	}
	if limits == nil { // failed open
		return nil
	}
	if !allowed && l.shadow {
		l.stats.shadowed.Add(1)
		if now := time.Now().UnixNano(); now-l.lastShadowLog.Load() >= int64(time.Second) {
			l.lastShadowLog.Store(now)
			l.log.Info("rate limit (shadow) would refuse a call", "policy", l.name, "route", routeName(c))
		}
		return nil
	}
	var wait time.Duration
	for i, lim := range limits {
		wait = max(wait, lim.retryAfter(used[i]))
	}
	if headers {
		state := make([]byte, 0, 32*len(limits))
		for i, lim := range limits {
			if i > 0 {
				state = append(state, ", "...)
			}
			state = strconv.AppendQuote(state, lim.name)
			state = strconv.AppendInt(append(state, ";r="...), int64(lim.remaining(used[i])), 10)
			state = strconv.AppendInt(append(state, ";t="...), ceilSeconds(used[i]), 10)
		}
		if c.ResponseHeader == nil {
			c.ResponseHeader = map[string][]string{}
		}
		c.ResponseHeader["ratelimit-policy"] = l.policyHeader
		c.ResponseHeader["ratelimit"] = []string{string(state)}
		if !allowed {
			c.ResponseHeader["retry-after"] = []string{strconv.FormatInt(ceilSeconds(wait), 10)}
		}
	}
	if allowed {
		l.stats.allowed.Add(1)
		return nil
	}
	l.stats.refused.Add(1)
	return security.Deny(codes.ResourceExhausted, "RATE_LIMITED", "rate limit exceeded; retry in "+wait.Round(time.Millisecond).String(),
		&errdetails.RetryInfo{RetryDelay: durationpb.New(wait)})
}

// decide asks the store, or, while Redis fails, decides by the failure
// mode. It returns the limits decided on (the shares of the fallback, or
// nil when failing open).
func (l *Limiter) decide(ctx context.Context, keys []string, used []time.Duration) ([]*limit, bool, error) {
	if l.store == l.local {
		allowed, err := l.local.take(ctx, keys, l.limits, used)
		return l.limits, allowed, err
	}
	if time.Now().UnixNano() >= l.redisRetryAt.Load() {
		allowed, err := l.store.take(ctx, keys, l.limits, used)
		if err == nil {
			if l.redisDown.CompareAndSwap(true, false) {
				l.log.Info("rate limit store reachable again", "policy", l.name)
			}
			return l.limits, allowed, nil
		}
		if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
			return nil, false, ctx.Err() // the caller went away, Redis did not fail
		}
		l.stats.storeErrors.Add(1)
		l.redisRetryAt.Store(time.Now().Add(redisBackoff).UnixNano())
		if l.redisDown.CompareAndSwap(false, true) {
			l.log.Warn("rate limit store unreachable", "policy", l.name, "on_redis_error", l.onError, "error", err)
		}
	}
	switch l.onError {
	case "open":
		l.stats.failedOpen.Add(1)
		return nil, true, nil
	case "closed":
		l.stats.failedClosed.Add(1)
		return nil, false, security.Deny(codes.Unavailable, "RATE_LIMIT_STORE_UNAVAILABLE", "the rate limiter is unavailable")
	}
	l.stats.fallbacks.Add(1)
	allowed, err := l.local.take(ctx, keys, l.fallback, used)
	return l.fallback, allowed, err
}

// maxKeyBytes bounds a key; longer ones are hashed.
const maxKeyBytes = 128

// keyOf builds the call's key from the configured parts.
func (l *Limiter) keyOf(c *router.Call) string {
	if len(l.key) == 1 && l.key[0].kind == "global" {
		return "global"
	}
	var b strings.Builder
	for i, p := range l.key {
		if i > 0 {
			b.WriteByte('|')
		}
		b.WriteString(p.value(c, l.ips))
	}
	if b.Len() > maxKeyBytes {
		sum := sha256.Sum256([]byte(b.String()))
		return "sha256:" + hex.EncodeToString(sum[:])
	}
	return b.String()
}

// keyPart is one part of a key.
type keyPart struct {
	kind string // ip, subject, claim, header, client_id, route, global
	arg  string // the claim's path or the header's name
}

func parseKey(s string) ([]keyPart, error) {
	if s == "" {
		s = "ip"
	}
	var out []keyPart
	for part := range strings.SplitSeq(s, "+") {
		kind, arg, _ := strings.Cut(strings.TrimSpace(part), ":")
		switch {
		case (kind == "claim" || kind == "header") && arg != "":
			if kind == "header" {
				arg = strings.ToLower(arg)
			}
		case arg == "" && (kind == "ip" || kind == "subject" || kind == "client_id" || kind == "route" || kind == "global"):
		default:
			return nil, fmt.Errorf("key part %q: want ip, subject, claim:NAME, header:NAME, client_id, route or global", part)
		}
		out = append(out, keyPart{kind: kind, arg: arg})
	}
	return out, nil
}

func (p keyPart) value(c *router.Call, ips *clientip.Resolver) string {
	switch p.kind {
	case "ip":
		if a := ips.ClientIP(c); a.IsValid() {
			return a.String()
		}
		return "unknown"
	case "subject":
		if c.Identity != nil {
			return c.Identity.Method + ":" + c.Identity.Subject
		}
	case "claim":
		if c.Identity != nil {
			var v any = c.Identity.Claims
			for part := range strings.SplitSeq(p.arg, ".") {
				m, _ := v.(map[string]any)
				v = m[part]
			}
			if v != nil {
				return fmt.Sprint(v)
			}
		}
	case "header":
		if v := c.Incoming.Get(p.arg); len(v) > 0 {
			return v[0]
		}
	case "client_id":
		if c.Credentials != nil {
			return c.Credentials.ClientID
		}
	case "route":
		return routeName(c)
	case "global":
		return "global"
	}
	return ""
}

func routeName(c *router.Call) string {
	if c.Route == nil {
		return ""
	}
	return c.Route.HTTPMethod + " " + c.Route.Target
}
