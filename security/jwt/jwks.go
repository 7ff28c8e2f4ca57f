package jwt

import (
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/rosettagw/rosetta/tracing"

	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"
)

// maxJWKSBytes bounds a JWKS document.
const maxJWKSBytes = 1 << 20

// jwksTimeout bounds one JWKS fetch.
const jwksTimeout = 5 * time.Second

// remoteKeys is a JWKS URL's keys, cached. They are fetched on first use,
// again when older than ttl, and again when a token names a kid the cache
// lacks; never twice within minInterval, so that a stream of tokens with
// bogus kids cannot flood the issuer. Concurrent callers share one fetch. When
// a fetch fails the previous keys stay in use.
type remoteKeys struct {
	url         string
	client      *http.Client
	ttl         time.Duration
	minInterval time.Duration
	now         func() time.Time
	log         *slog.Logger

	mu          sync.Mutex
	keys        []key
	fetchedAt   time.Time     // of the keys in use
	lastAttempt time.Time     // of the latest fetch, successful or not
	inflight    chan struct{} // closed when the fetch in progress ends
	failing     bool          // the latest fetch failed (logged once per outage)
}

// get returns the cached keys, refreshing them first when they are stale
// or when refresh is set (a kid was not found), within the rate limit.
func (r *remoteKeys) get(ctx context.Context, refresh bool) []key {
	r.mu.Lock()
	now := r.now()
	need := refresh || r.keys == nil || now.Sub(r.fetchedAt) >= r.ttl
	if need && r.inflight == nil && (r.lastAttempt.IsZero() || now.Sub(r.lastAttempt) >= r.minInterval) {
		r.lastAttempt = now
		r.inflight = make(chan struct{})
		go r.fetch(trace.ContextWithSpan(context.Background(), trace.SpanFromContext(ctx)), r.inflight) // traced as the call's child
	}
	if wait := r.inflight; need && wait != nil {
		r.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return nil
		}
		r.mu.Lock()
	}
	keys := r.keys
	r.mu.Unlock()
	return keys
}

// fetch downloads the key set and closes done. It runs detached from the
// call that started it (parent holds only its span), so a cancelled call
// does not abort a fetch others wait for.
func (r *remoteKeys) fetch(parent context.Context, done chan struct{}) {
	ctx, cancel := context.WithTimeout(parent, jwksTimeout)
	defer cancel()
	keys, err := r.download(ctx)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.inflight = nil
	close(done)
	if err != nil {
		if !r.failing {
			r.log.Warn("jwks fetch failed; keeping the previous keys", "url", r.url, "error", err)
		}
		r.failing = true
		return
	}
	if r.failing {
		r.log.Info("jwks fetch works again", "url", r.url)
	}
	r.failing = false
	r.keys, r.fetchedAt = keys, r.now()
}

func (r *remoteKeys) download(ctx context.Context) (_ []key, err error) {
	if tracing.Active(ctx) {
		var span trace.Span
		ctx, span = tracing.Start(ctx, "jwks fetch", trace.SpanKindClient, attribute.String("url.full", r.url))
		defer func() { tracing.End(span, err) }()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := r.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("HTTP status %d", resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	if err != nil {
		return nil, err
	}
	if len(body) > maxJWKSBytes {
		return nil, fmt.Errorf("key set larger than %d bytes", maxJWKSBytes)
	}
	return parseJWKS(body, false)
}
