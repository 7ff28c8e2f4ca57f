package gateway

import (
	"context"
	"fmt"
	"testing"

	"github.com/redis/go-redis/v9"
)

// TestRedisClientHonoursDeadlines checks that the redis section's client
// bounds its reads and writes by the caller's deadline, which carries
// redis.timeout: go-redis ignores context deadlines on I/O unless told, so
// a Redis behind a slow link held every rate-limited call for go-redis's
// own read timeout (seconds) instead (seen in the soak, RELIABILITY.md:
// calls of 2 s under +1 s of latency with a 500 ms timeout).
func TestRedisClientHonoursDeadlines(t *testing.T) {
	cfg, err := ParseConfig(fmt.Appendf(nil, "schemas: [{descriptor_set: %q}]\nredis: {addr: 127.0.0.1:1, timeout: 100ms}\n", "../proto/library.binpb"))
	if err != nil {
		t.Fatal(err)
	}
	g, err := Build(context.Background(), cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	c, ok := g.sec.redis.(*redis.Client)
	if !ok {
		t.Fatalf("redis client is a %T", g.sec.redis)
	}
	if !c.Options().ContextTimeoutEnabled {
		t.Error("the Redis client ignores the deadline of its callers' contexts")
	}
}
