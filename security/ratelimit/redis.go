package ratelimit

import (
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/rosettagw/rosetta/tracing"

	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// takeScript is one atomic GCRA decision over several keys, on Redis's own
// clock (TIME), so that the gateways' clock skew does not matter. ARGV holds
// each limit's emission interval and tolerance in microseconds. It returns
// whether the call is allowed, then for each key how far its arrival time is
// ahead of now, in microseconds.
var takeScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local ok = 1
local tats = {}
for i = 1, #KEYS do
  local tat = tonumber(redis.call('GET', KEYS[i]) or 0)
  if tat < now then tat = now end
  tats[i] = tat
  if tat + tonumber(ARGV[2*i-1]) - now > tonumber(ARGV[2*i]) then ok = 0 end
end
local out = {ok}
for i = 1, #KEYS do
  local tat = tats[i]
  if ok == 1 then
    tat = tat + tonumber(ARGV[2*i-1])
    redis.call('SET', KEYS[i], string.format('%.0f', tat), 'PX', math.ceil((tat - now) / 1000) + 1)
  end
  out[i+1] = tat - now
end
return out
`)

// redisStore keeps the arrival times in Redis, shared by every gateway.
type redisStore struct {
	client  redis.UniversalClient
	timeout time.Duration
}

func (r *redisStore) take(ctx context.Context, keys []string, limits []*limit, used []time.Duration) (_ bool, err error) {
	if tracing.Active(ctx) {
		var span trace.Span
		ctx, span = tracing.Start(ctx, "rate limit", trace.SpanKindClient, attribute.String("db.system.name", "redis"), attribute.Int("rosetta.keys", len(keys)))
		defer func() { tracing.End(span, err) }()
	}
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	args := make([]any, 0, 2*len(limits))
	for _, l := range limits {
		args = append(args, l.interval.Microseconds(), l.tau.Microseconds())
	}
	res, err := takeScript.Run(ctx, r.client, keys, args...).Int64Slice()
	if err != nil {
		return false, err
	}
	if len(res) != len(keys)+1 {
		return false, fmt.Errorf("rate limit script returned %d values for %d keys", len(res), len(keys))
	}
	for i := range keys {
		used[i] = time.Duration(res[i+1]) * time.Microsecond
	}
	return res[0] == 1, nil
}
