// Package cache is the gateway's response cache: a step of a method's
// chain that serves the stored answer of a side-effect-free call instead
// of calling the upstream, and stores the upstream's successful answers.
//
// The step runs after the policies (a refused call is never answered from
// the cache, and the caller's identity is known) and before dispatch. One
// cache serves a method however it is reached (REST, gRPC, gRPC-Web,
// Connect, WebSocket, MQTT): the key is built from the decoded request
// message in deterministic protobuf wire form, not from the protocol's
// bytes. The key also holds the method, its target and upstream, the
// values of the rule's Vary headers and the caller's identity, so that
// one caller's answer is never served to another.
//
// Entries live in memory (bounded by bytes, least recently used evicted
// first) or in Redis, shared by replicas. Concurrent identical misses are
// coalesced into one upstream call. Cache-Control is honoured from the
// client (no-store, no-cache, max-age) and from the upstream (no-store,
// no-cache, private, max-age and s-maxage cap the TTL).
package cache

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/rosettagw/rosetta/router"
)

// The response headers (metadata keys) the step sets on every call it
// handles.
const (
	// XCache is HIT when the answer came from the cache, MISS otherwise.
	XCache = "x-cache"
	// CacheStatus is the RFC 9211 Cache-Status field: "rosetta; hit;
	// ttl=N", "rosetta; fwd=miss; stored", "rosetta; fwd=miss; collapsed"
	// (the answer of an identical call in flight), "rosetta; fwd=request"
	// (the client's Cache-Control forbade a stored answer).
	CacheStatus = "cache-status"
)

// Config configures a Cache.
type Config struct {
	// MaxBytes bounds the in-memory store (Redis is bounded by its own
	// maxmemory).
	MaxBytes int64
	// MaxEntryBytes bounds one answer; a larger one is not stored.
	MaxEntryBytes int64
	// Redis, when set, holds the entries instead of memory, shared by
	// every gateway using it; RedisTimeout bounds each operation.
	Redis        redis.UniversalClient
	RedisTimeout time.Duration
	// Logger receives store failures (nil: discarded).
	Logger *slog.Logger
}

// Cache is a response cache: a store, its metrics and the calls in
// flight. One Cache serves every method that has a Rule.
type Cache struct {
	store    Store
	maxEntry int64
	log      *slog.Logger
	flights  flights
	metrics  *metrics
	// lastWarn throttles the log lines of a failing store (unix nanos).
	lastWarn atomic.Int64
}

// New returns a cache.
func New(cfg Config) *Cache {
	c := &Cache{maxEntry: cfg.MaxEntryBytes, log: cfg.Logger, flights: flights{m: map[string]*flight{}}}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	var mem *Memory
	if cfg.Redis != nil {
		c.store = NewRedis(cfg.Redis, cfg.RedisTimeout)
	} else {
		mem = NewMemory(cfg.MaxBytes, func() { c.metrics.evictions.Inc() })
		c.store = mem
	}
	c.metrics = newMetrics(mem)
	return c
}

// Rule says how the calls of one method are cached.
type Rule struct {
	// Name is the method, "package.Service/Method": the metrics label, and
	// the start of every key of the method (what Purge matches).
	Name string
	// TTL is how long an answer is served.
	TTL time.Duration
	// Vary are request headers (lower case) whose values are part of the
	// key.
	Vary []string
	// Input is the method's request message, for the deterministic form of
	// requests (nil: the decoded bytes as they are).
	Input protoreflect.MessageDescriptor
}

// Purge removes the entries of the methods whose name starts with prefix
// ("" removes every entry; "pkg.Service/" the service's) and returns how
// many it removed.
func (c *Cache) Purge(ctx context.Context, prefix string) (int, error) {
	return c.store.Purge(ctx, prefix)
}

// Step returns the chain step that caches the calls of r's method. A call
// of a unary method that its ingress carries as a Stream (a WebSocket
// call) is answered as a unary call (asUnary). Calls of a streaming method,
// and calls without a decodable request, go on untouched.
func (c *Cache) Step(r Rule) router.Middleware {
	m := c.metrics.of(r.Name)
	var msgType protoreflect.MessageType
	if r.Input != nil {
		msgType = dynamicpb.NewMessageType(r.Input)
	}
	return func(next router.Handler) router.Handler {
		unary := router.HandlerFunc(func(ctx context.Context, call *router.Call) error {
			req := parseControl(call.Incoming.Get("cache-control"))
			if req.noStore {
				m.bypass.Inc()
				setStatus(call, "MISS", "rosetta; fwd=request")
				return next.Handle(ctx, call)
			}
			msg, err := call.Decode()
			if err != nil {
				return err
			}
			call.Decode = func() ([]byte, error) { return msg, nil }
			key, ok := c.key(r, msgType, call, msg)
			if !ok { // the request does not decode as its message: the upstream says why
				m.bypass.Inc()
				setStatus(call, "MISS", "rosetta; fwd=bypass")
				return next.Handle(ctx, call)
			}
			if req.noCache || (req.hasMaxAge && req.maxAge == 0) {
				m.miss.Inc()
				err := next.Handle(ctx, call)
				detail := "rosetta; fwd=request"
				if c.keep(ctx, r, m, key, call.Reply, err) {
					detail += "; stored"
				}
				setStatus(call, "MISS", detail)
				return err
			}
			e, err := c.store.Get(ctx, key)
			if err != nil {
				c.failed("get", err)
			}
			if e != nil && (!req.hasMaxAge || time.Since(e.Stored) <= req.maxAge) {
				m.hit.Inc()
				call.Reply = e.reply()
				setStatus(call, "HIT", "rosetta; hit; ttl="+strconv.Itoa(int(time.Until(e.Expires).Seconds())))
				call.ResponseHeader.Set("age", strconv.Itoa(int(time.Since(e.Stored).Seconds())))
				return nil
			}
			m.miss.Inc()
			return c.fetch(ctx, r, m, key, call, next)
		})
		return router.HandlerFunc(func(ctx context.Context, call *router.Call) error {
			switch {
			case call.Stream != nil && !call.Route.IsStreaming():
				return asUnary(ctx, call, unary)
			case call.Stream != nil || call.Decode == nil:
				return next.Handle(ctx, call)
			}
			return unary.Handle(ctx, call)
		})
	}
}

// asUnary answers a call of a unary method that its ingress carries as a
// Stream (a WebSocket call) as the other protocols' calls of the method
// are answered: it reads the one request message, lets unary answer it
// as a unary call (from the cache, or from the upstream's unary call, the
// route's timeout and retries applying), and sends the answer down the
// stream.
func asUnary(ctx context.Context, call *router.Call, unary router.Handler) error {
	st := call.Stream
	req, err := st.Recv()
	if errors.Is(err, io.EOF) {
		return status.Error(codes.Unimplemented, "the client sent no request message") // as Dispatch answers it
	}
	if err != nil {
		return err
	}
	call.Stream, call.Decode = nil, func() ([]byte, error) { return req, nil }
	defer func() { call.Stream, call.Decode = st, nil }()
	if err := unary.Handle(ctx, call); err != nil {
		return err
	}
	if err := st.SetHeader(call.Reply.Header); err != nil {
		return err
	}
	return st.Send(call.Reply.Message)
}

// fetch calls the upstream for a miss, or waits for the identical call
// already in flight. A caller that gives up leaves the others waiting;
// the upstream call is cancelled only when every caller has left.
func (c *Cache) fetch(ctx context.Context, r Rule, m *methodMetrics, key string, call *router.Call, next router.Handler) error {
	for {
		own := *call // the flight's own call: the caller may return before it ends
		own.Metadata, own.ResponseHeader, own.Reply, own.Attempts = call.Metadata.Copy(), nil, nil, 0
		f, leader := c.flights.join(ctx, key, func(fctx context.Context) (*router.Reply, int, bool, error) {
			err := next.Handle(fctx, &own)
			return own.Reply, own.Attempts, c.keep(fctx, r, m, key, own.Reply, err), err
		})
		if !leader {
			m.coalesced.Inc()
		}
		select {
		case <-f.done:
		case <-ctx.Done():
			c.flights.leave(key, f)
			return ctx.Err()
		}
		if f.expired && ctx.Err() == nil {
			continue // the flight ran out of its first caller's time, not of ours: call again
		}
		if f.reply != nil {
			call.Reply = &router.Reply{Message: f.reply.Message, HTTPStatus: f.reply.HTTPStatus, ContentType: f.reply.ContentType,
				Header: f.reply.Header.Copy(), Trailer: f.reply.Trailer.Copy()}
		}
		detail := "rosetta; fwd=miss"
		if leader {
			call.Attempts = f.attempts
			if f.stored {
				detail += "; stored"
			}
		} else {
			detail += "; collapsed"
		}
		setStatus(call, "MISS", detail)
		return f.err
	}
}

// keep stores a cacheable answer and reports whether it did: a reply
// without error, from an upstream whose Cache-Control allows a shared
// cache to store it, setting no cookie, within the entry bound. The
// upstream's max-age (or s-maxage) caps the rule's TTL.
func (c *Cache) keep(ctx context.Context, r Rule, m *methodMetrics, key string, reply *router.Reply, err error) bool {
	if err != nil || reply == nil || (reply.HTTPStatus != 0 && reply.HTTPStatus != 200) {
		m.notStored("status")
		return false
	}
	up := parseControl(reply.Header.Get("cache-control"))
	ttl := r.TTL
	if up.hasMaxAge {
		ttl = min(ttl, up.maxAge)
	}
	switch {
	case up.noStore || up.noCache || up.private || ttl <= 0:
		m.notStored("upstream_cache_control")
		return false
	case len(reply.Header.Get("set-cookie")) > 0 || len(reply.Trailer.Get("set-cookie")) > 0:
		m.notStored("set_cookie")
		return false
	}
	now := time.Now()
	e := &Entry{Message: bytes.Clone(reply.Message), Header: reply.Header.Copy(), Trailer: reply.Trailer.Copy(), Stored: now, Expires: now.Add(ttl)}
	if e.Size(key) > c.maxEntry {
		m.notStored("too_large")
		return false
	}
	// The answer is stored even when its caller has gone.
	if err := c.store.Set(context.WithoutCancel(ctx), key, e); err != nil {
		c.failed("set", err)
		return false
	}
	return true
}

// key is the entry key of a call: the method's name, then a hash of what
// distinguishes its answers. It is false when the request does not decode
// as the method's input.
func (c *Cache) key(r Rule, t protoreflect.MessageType, call *router.Call, msg []byte) (string, bool) {
	if t != nil {
		m := t.New().Interface()
		// Required fields are the upstream's business: no check here.
		if err := (proto.UnmarshalOptions{AllowPartial: true}).Unmarshal(msg, m); err != nil {
			return "", false
		}
		var err error
		if msg, err = (proto.MarshalOptions{Deterministic: true, AllowPartial: true}).Marshal(m); err != nil {
			return "", false
		}
	}
	h := sha256.New()
	field := func(s string) {
		var n [binary.MaxVarintLen64]byte
		h.Write(n[:binary.PutUvarint(n[:], uint64(len(s)))])
		h.Write([]byte(s))
	}
	field(call.Target)
	field(call.Route.Upstream)
	if id := call.Identity; id != nil {
		field(id.Method)
		field(id.Subject)
	} else {
		field("")
	}
	for _, v := range r.Vary {
		field(strings.Join(call.Incoming.Get(v), ","))
	}
	h.Write(msg)
	return r.Name + " " + hex.EncodeToString(h.Sum(nil)), true
}

// failed counts a store failure and logs it, at most once every 10s.
func (c *Cache) failed(op string, err error) {
	c.metrics.storeErrors.WithLabelValues(op).Inc()
	now := time.Now().UnixNano()
	if last := c.lastWarn.Load(); now-last > int64(10*time.Second) && c.lastWarn.CompareAndSwap(last, now) {
		c.log.Warn("response cache store failing; calls go upstream", "op", op, "error", err)
	}
}

// reply is the entry as a fresh reply, whose metadata the ingress may
// change.
func (e *Entry) reply() *router.Reply {
	return &router.Reply{Message: e.Message, Header: e.Header.Copy(), Trailer: e.Trailer.Copy()}
}

// setStatus sets X-Cache and Cache-Status on the call's answer.
func setStatus(call *router.Call, xcache, cacheStatus string) {
	if call.ResponseHeader == nil {
		call.ResponseHeader = metadata.MD{}
	}
	call.ResponseHeader.Set(XCache, xcache)
	call.ResponseHeader.Set(CacheStatus, cacheStatus)
}
