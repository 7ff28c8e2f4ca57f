package cache

import (
	"context"
	"fmt"
	"testing"
	"time"
)

func entry(n int) *Entry {
	return &Entry{Message: make([]byte, n), Stored: time.Now(), Expires: time.Now().Add(time.Hour)}
}

// TestMemoryByteBound fills the store beyond its bound: the least recently
// used entries go first, a read counts as a use, and the bytes held never
// exceed the bound.
func TestMemoryByteBound(t *testing.T) {
	ctx := context.Background()
	size := entry(1000).Size("k0")
	evicted := 0
	m := NewMemory(3*size, func() { evicted++ })
	for i := range 3 {
		m.Set(ctx, fmt.Sprintf("k%d", i), entry(1000))
	}
	if b, n := m.Usage(); b != 3*size || n != 3 {
		t.Fatalf("usage %d bytes, %d entries; want %d, 3", b, n, 3*size)
	}
	if e, _ := m.Get(ctx, "k0"); e == nil { // k0 is now the most recently used
		t.Fatal("k0 missing")
	}
	m.Set(ctx, "k3", entry(1000))
	if e, _ := m.Get(ctx, "k1"); e != nil {
		t.Error("k1, the least recently used, was not evicted")
	}
	for _, k := range []string{"k0", "k2", "k3"} {
		if e, _ := m.Get(ctx, k); e == nil {
			t.Errorf("%s was evicted", k)
		}
	}
	// A bigger entry evicts as many as it needs.
	m.Set(ctx, "big", entry(2500))
	if b, n := m.Usage(); b > 3*size || n != 1 {
		t.Errorf("usage %d bytes, %d entries after a big entry; want ≤ %d, 1", b, n, 3*size)
	}
	if evicted != 4 {
		t.Errorf("%d evictions counted, want 4", evicted)
	}
	// One larger than the whole bound is not stored, and nothing is evicted
	// for it.
	m.Set(ctx, "huge", entry(int(4*size)))
	if e, _ := m.Get(ctx, "huge"); e != nil {
		t.Error("an entry beyond the bound was stored")
	}
	if e, _ := m.Get(ctx, "big"); e == nil || evicted != 4 {
		t.Errorf("an entry beyond the bound evicted others (%d evictions)", evicted)
	}
}

func TestMemoryReplaceExpirePurge(t *testing.T) {
	ctx := context.Background()
	m := NewMemory(1<<20, nil)
	m.Set(ctx, "a/1", entry(10))
	m.Set(ctx, "a/1", entry(20)) // replaces: counted once
	if b, n := m.Usage(); n != 1 || b != entry(20).Size("a/1") {
		t.Errorf("after a replace: %d bytes, %d entries", b, n)
	}
	old := entry(10)
	old.Expires = time.Now().Add(-time.Second)
	m.Set(ctx, "a/2", old)
	if e, _ := m.Get(ctx, "a/2"); e != nil {
		t.Error("an expired entry was served")
	}
	m.Set(ctx, "a/3", entry(10))
	m.Set(ctx, "b/1", entry(10))
	if n, _ := m.Purge(ctx, "a/"); n != 2 {
		t.Errorf("purge a/ removed %d, want 2", n)
	}
	if _, n := m.Usage(); n != 1 {
		t.Errorf("%d entries left, want 1", n)
	}
	if n, _ := m.Purge(ctx, ""); n != 1 {
		t.Errorf("purge all removed %d, want 1", n)
	}
	if b, n := m.Usage(); b != 0 || n != 0 {
		t.Errorf("after purging all: %d bytes, %d entries", b, n)
	}
}

func TestParseControl(t *testing.T) {
	for _, tc := range []struct {
		in   []string
		want control
	}{
		{nil, control{}},
		{[]string{"no-store"}, control{noStore: true}},
		{[]string{"No-Cache, max-age=30"}, control{noCache: true, maxAge: 30 * time.Second, hasMaxAge: true}},
		{[]string{"public, max-age=60", "s-maxage=10"}, control{maxAge: 10 * time.Second, hasMaxAge: true}},
		{[]string{"s-maxage=10, max-age=60"}, control{maxAge: 10 * time.Second, hasMaxAge: true}},
		{[]string{`private, max-age="5"`}, control{private: true, maxAge: 5 * time.Second, hasMaxAge: true}},
		{[]string{"max-age=junk"}, control{hasMaxAge: true}},
		{[]string{"max-age=-1"}, control{hasMaxAge: true}},
	} {
		if got := parseControl(tc.in); got != tc.want {
			t.Errorf("parseControl(%q) = %+v, want %+v", tc.in, got, tc.want)
		}
	}
}
