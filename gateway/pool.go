package gateway

import (
	"crypto/sha256"
	"fmt"
	"os"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"go.yaml.in/yaml/v3"

	"github.com/rosettagw/rosetta/discovery"
)

// Pool holds the long-lived state that successive generations share:
// upstream clients (and their connections), the Redis client, built
// policies (rate-limit counters, JWKS caches) and the MQTT state store. A
// generation acquires each piece by its configuration; when the next
// generation asks for a piece with the same configuration, and the files it
// read are unchanged, it gets the same value, so a reload keeps the
// connections and counters of everything it did not change. A piece is
// closed when the last generation using it is released.
type Pool struct {
	mu    sync.Mutex
	items map[string]*pooled
	// splitRequests counts the calls of every split, across reloads.
	splitRequests *prometheus.CounterVec
	// discovery counts the updates and errors of every discovery watch.
	discovery *discovery.Metrics
}

// NewPool returns an empty pool.
func NewPool() *Pool {
	return &Pool{items: map[string]*pooled{}, splitRequests: newSplitRequests(), discovery: discovery.NewMetrics()}
}

// collectors are the pool's own metrics.
func (p *Pool) collectors() []prometheus.Collector {
	return append([]prometheus.Collector{p.splitRequests}, p.discovery.Collectors()...)
}

// pooled is one shared piece of state.
type pooled struct {
	pool    *Pool
	key     string
	value   any
	closeFn func()
	// files are the files read to build the value, with the hash of their
	// content then: a change of any makes a new value.
	files map[string][sha256.Size]byte
	refs  int
}

// poolEnv is what a pooled value's constructor gets.
type poolEnv struct {
	// path resolves a path of the configuration and records the file as one
	// the value depends on.
	path func(string) string
}

// acquire returns the pooled value named name and configured by spec,
// making it with build when the pool has none, or when a file the pooled
// one was made from has changed since. The files are recorded in cfg as
// files of the configuration.
func (p *Pool) acquire(cfg *Config, name string, spec any, build func(env *poolEnv) (any, func(), error)) (*pooled, error) {
	raw, err := yaml.Marshal(spec)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", name, err)
	}
	key := name + "\x00" + string(raw)
	p.mu.Lock()
	if it := p.items[key]; it != nil && it.unchanged() {
		it.refs++
		p.mu.Unlock()
		for f := range it.files {
			cfg.files[f] = true
		}
		return it, nil
	}
	p.mu.Unlock()
	it := &pooled{pool: p, key: key, files: map[string][sha256.Size]byte{}, refs: 1}
	env := &poolEnv{path: func(f string) string {
		f = cfg.path(f)
		if f != "" {
			it.files[f] = hashFile(f)
		}
		return f
	}}
	v, closeFn, err := build(env)
	if err != nil {
		return nil, err
	}
	it.value, it.closeFn = v, closeFn
	p.mu.Lock()
	p.items[key] = it // an older value of the key stays with the generations using it
	p.mu.Unlock()
	for f := range it.files {
		cfg.files[f] = true
	}
	return it, nil
}

// unchanged reports whether the files the value was made from still hold
// what they held then.
func (it *pooled) unchanged() bool {
	for f, h := range it.files {
		if hashFile(f) != h {
			return false
		}
	}
	return true
}

// release gives up one generation's use of the value, closing it after the
// last.
func (it *pooled) release() {
	p := it.pool
	p.mu.Lock()
	it.refs--
	last := it.refs == 0
	if last && p.items[it.key] == it {
		delete(p.items, it.key)
	}
	p.mu.Unlock()
	if last && it.closeFn != nil {
		it.closeFn()
	}
}

// hashFile hashes a file's content; a file that cannot be read hashes as
// its error, so that its coming back counts as a change.
func hashFile(path string) [sha256.Size]byte {
	b, err := os.ReadFile(path)
	if err != nil {
		return sha256.Sum256([]byte("unreadable: " + err.Error()))
	}
	return sha256.Sum256(b)
}
