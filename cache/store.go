package cache

import (
	"container/list"
	"context"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/metadata"
)

// Entry is one stored answer: the upstream's reply to a unary call, with
// the response metadata that goes back to the client.
type Entry struct {
	// Message is the response message in protobuf wire form.
	Message []byte `json:"m"`
	// Header and Trailer are the upstream's response metadata.
	Header  metadata.MD `json:"h,omitempty"`
	Trailer metadata.MD `json:"t,omitempty"`
	// Stored is when the answer was received; Expires when it stops being
	// served.
	Stored  time.Time `json:"s"`
	Expires time.Time `json:"e"`
}

// Size is what the entry counts against a store's byte bound, its key
// included: the bytes it holds plus a fixed overhead for the bookkeeping.
func (e *Entry) Size(key string) int64 {
	const overhead = 160 // the entry, its list element and map slot
	n := int64(overhead + len(key) + len(e.Message))
	for _, md := range []metadata.MD{e.Header, e.Trailer} {
		for k, vs := range md {
			n += int64(len(k))
			for _, v := range vs {
				n += int64(len(v)) + 16
			}
		}
	}
	return n
}

// Store keeps entries by key. Implementations are safe for concurrent use.
type Store interface {
	// Get returns the entry stored under key, or nil when there is none
	// (or it has expired).
	Get(ctx context.Context, key string) (*Entry, error)
	// Set stores e under key until e.Expires.
	Set(ctx context.Context, key string, e *Entry) error
	// Purge removes the entries whose key starts with prefix ("" removes
	// all) and returns how many it removed.
	Purge(ctx context.Context, prefix string) (int, error)
}

// Memory is a Store in the process's memory, bounded by bytes: storing an
// entry beyond the bound evicts the least recently used entries first.
// An entry larger than the whole bound is not stored.
type Memory struct {
	max int64
	// onEvict, when set, is called (with mu held) for each entry evicted
	// to make room.
	onEvict func()

	mu    sync.Mutex
	bytes int64
	lru   list.List // of *memItem, most recently used first
	items map[string]*list.Element
}

type memItem struct {
	key   string
	entry *Entry
	size  int64
}

// NewMemory returns an empty store holding at most maxBytes (as Entry.Size
// counts them); onEvict (may be nil) is called for each eviction.
func NewMemory(maxBytes int64, onEvict func()) *Memory {
	return &Memory{max: maxBytes, onEvict: onEvict, items: map[string]*list.Element{}}
}

// Get returns the entry under key and marks it used; an expired entry is
// removed and not returned.
func (m *Memory) Get(_ context.Context, key string) (*Entry, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	el := m.items[key]
	if el == nil {
		return nil, nil
	}
	it := el.Value.(*memItem)
	if !time.Now().Before(it.entry.Expires) {
		m.remove(el)
		return nil, nil
	}
	m.lru.MoveToFront(el)
	return it.entry, nil
}

// Set stores e under key, replacing any entry there, and evicts the least
// recently used entries until the store is within its bound. An entry
// larger than the bound is not stored (and the one it would replace is
// dropped).
func (m *Memory) Set(_ context.Context, key string, e *Entry) error {
	size := e.Size(key)
	m.mu.Lock()
	defer m.mu.Unlock()
	if el := m.items[key]; el != nil {
		m.remove(el)
	}
	if size > m.max {
		return nil
	}
	m.items[key] = m.lru.PushFront(&memItem{key: key, entry: e, size: size})
	m.bytes += size
	for m.bytes > m.max {
		m.remove(m.lru.Back())
		if m.onEvict != nil {
			m.onEvict()
		}
	}
	return nil
}

// Purge removes the entries whose key starts with prefix.
func (m *Memory) Purge(_ context.Context, prefix string) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for key, el := range m.items {
		if strings.HasPrefix(key, prefix) {
			m.remove(el)
			n++
		}
	}
	return n, nil
}

// Usage returns the bytes and the number of entries held.
func (m *Memory) Usage() (bytes int64, entries int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.bytes, len(m.items)
}

func (m *Memory) remove(el *list.Element) {
	it := m.lru.Remove(el).(*memItem)
	delete(m.items, it.key)
	m.bytes -= it.size
}
