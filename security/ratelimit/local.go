package ratelimit

import (
	"context"
	"hash/maphash"
	"math/bits"
	"sync"
	"sync/atomic"
	"time"
)

// shards is the number of independently locked parts of a local store.
const shards = 64

// sweepEvery is how often, at most, a shard drops its idle keys.
const sweepEvery = time.Minute

// local is the in-memory store: a sharded map of theoretical arrival times
// holding at most maxKeys keys. A key whose arrival time has passed holds no
// information (GCRA treats it as new), so idle keys are dropped freely; when
// a shard is full of active keys, the one closest to idle is evicted
// (counted in evictions).
type local struct {
	now       func() time.Time
	perShard  int
	seed      maphash.Seed
	shards    [shards]shard
	evictions atomic.Int64
}

type shard struct {
	mu        sync.Mutex
	tats      map[string]int64
	lastSweep int64
}

func newLocal(maxKeys int, now func() time.Time) *local {
	l := &local{now: now, perShard: max(1, maxKeys/shards), seed: maphash.MakeSeed()}
	for i := range l.shards {
		l.shards[i].tats = map[string]int64{}
	}
	return l
}

func (l *local) take(_ context.Context, keys []string, limits []*limit, used []time.Duration) (bool, error) {
	now := l.now().UnixNano()
	// Lock the shards of the keys in index order, each once.
	var buf [8]uint8
	held := buf[:0]
	var mask uint64
	for _, k := range keys {
		i := uint8(maphash.String(l.seed, k) % shards)
		held = append(held, i)
		mask |= 1 << i
	}
	for m := mask; m != 0; m &= m - 1 {
		l.shards[bits.TrailingZeros64(m)].mu.Lock()
	}
	defer func() {
		for m := mask; m != 0; m &= m - 1 {
			l.shards[bits.TrailingZeros64(m)].mu.Unlock()
		}
	}()
	allowed := true
	for i, k := range keys {
		if _, ok := gcra(l.shards[held[i]].tats[k], now, limits[i]); !ok {
			allowed = false
		}
	}
	for i, k := range keys {
		sh := &l.shards[held[i]]
		tat := max(sh.tats[k], now)
		if allowed {
			tat, _ = gcra(tat, now, limits[i])
			l.store(sh, k, tat, now)
		}
		used[i] = time.Duration(tat - now)
	}
	return allowed, nil
}

// store records tat for k in sh, making room when the shard is full.
func (l *local) store(sh *shard, k string, tat, now int64) {
	if _, ok := sh.tats[k]; !ok {
		full := len(sh.tats) >= l.perShard
		if now-sh.lastSweep >= int64(sweepEvery) || full && now-sh.lastSweep >= int64(time.Second) {
			sh.lastSweep = now
			for key, t := range sh.tats {
				if t <= now {
					delete(sh.tats, key)
				}
			}
		}
		if len(sh.tats) >= l.perShard {
			l.evict(sh)
		}
	}
	sh.tats[k] = tat
}

// evict drops the key closest to idle among a few (map order is random).
func (l *local) evict(sh *shard) {
	victim, least, n := "", int64(0), 0
	for key, t := range sh.tats {
		if n == 0 || t < least {
			victim, least = key, t
		}
		if n++; n == 8 {
			break
		}
	}
	delete(sh.tats, victim)
	l.evictions.Add(1)
}

// len returns the number of keys held.
func (l *local) len() int {
	n := 0
	for i := range l.shards {
		l.shards[i].mu.Lock()
		n += len(l.shards[i].tats)
		l.shards[i].mu.Unlock()
	}
	return n
}
