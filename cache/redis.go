package cache

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// redisPrefix starts the key of every entry in Redis.
const redisPrefix = "rosetta:cache:"

// Redis is a Store in Redis, shared by every gateway that uses the same
// server: an answer stored by one replica is served by all. Entries are
// JSON documents that Redis itself expires; Redis's own maxmemory policy
// bounds them.
type Redis struct {
	client redis.UniversalClient
	// timeout bounds each operation; a slower Redis counts as failing.
	timeout time.Duration
}

// NewRedis returns a store in client's Redis, each operation bounded by
// timeout.
func NewRedis(client redis.UniversalClient, timeout time.Duration) *Redis {
	return &Redis{client: client, timeout: timeout}
}

// Get returns the entry under key, or nil.
func (r *Redis) Get(ctx context.Context, key string) (*Entry, error) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	b, err := r.client.Get(ctx, redisPrefix+key).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	e := &Entry{}
	if err := json.Unmarshal(b, e); err != nil {
		return nil, err
	}
	if !time.Now().Before(e.Expires) {
		return nil, nil
	}
	return e, nil
}

// Set stores e under key, expiring at e.Expires.
func (r *Redis) Set(ctx context.Context, key string, e *Entry) error {
	ttl := time.Until(e.Expires)
	if ttl <= 0 {
		return nil
	}
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	return r.client.Set(ctx, redisPrefix+key, b, ttl).Err()
}

// Purge deletes the entries whose key starts with prefix, scanning the
// keyspace in batches.
func (r *Redis) Purge(ctx context.Context, prefix string) (int, error) {
	pattern := redisPrefix + globEscaper.Replace(prefix) + "*"
	n := 0
	var cursor uint64
	for {
		keys, next, err := r.client.Scan(ctx, cursor, pattern, 1000).Result()
		if err != nil {
			return n, err
		}
		if len(keys) > 0 {
			deleted, err := r.client.Unlink(ctx, keys...).Result()
			if err != nil {
				return n, err
			}
			n += int(deleted)
		}
		if cursor = next; cursor == 0 {
			return n, nil
		}
	}
}

// globEscaper escapes the characters of a Redis MATCH pattern.
var globEscaper = strings.NewReplacer(`\`, `\\`, `*`, `\*`, `?`, `\?`, `[`, `\[`, `]`, `\]`)
