package gateway

import (
	"os"
	"path/filepath"
	"testing"
)

// TestPoolCarriesOver: a second generation asking for a value with the
// same configuration gets the same value, unless a file it was made from
// changed; a value is closed when its last generation releases it.
func TestPoolCarriesOver(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "key.pem")
	if err := os.WriteFile(key, []byte("one"), 0o600); err != nil {
		t.Fatal(err)
	}
	pool := NewPool()
	made, closed := 0, 0
	acquire := func(spec string) *pooled {
		cfg := &Config{dir: dir, files: map[string]bool{}}
		p, err := pool.acquire(cfg, "thing", spec, func(env *poolEnv) (any, func(), error) {
			made++
			n := made
			env.path("key.pem")
			return n, func() { closed++ }, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if !cfg.files[key] {
			t.Errorf("the file the value was made from is not a file of the configuration: %v", cfg.files)
		}
		return p
	}
	a := acquire("x")
	b := acquire("x")
	if a != b || made != 1 {
		t.Fatalf("the same configuration made %d values", made)
	}
	c := acquire("y")
	if c == a || made != 2 {
		t.Fatalf("another configuration got the first value")
	}
	if err := os.WriteFile(key, []byte("two"), 0o600); err != nil {
		t.Fatal(err)
	}
	d := acquire("x")
	if d == a || made != 3 {
		t.Fatalf("a changed file did not make a new value")
	}
	a.release()
	if closed != 0 {
		t.Fatal("a value was closed while a generation still used it")
	}
	b.release()
	if closed != 1 {
		t.Fatalf("closed %d values after the last user of the first one left, want 1", closed)
	}
	c.release()
	d.release()
	if closed != 3 {
		t.Fatalf("closed %d values, want 3", closed)
	}
}

// TestLiveHoldsGenerations: a generation stays open while a call holds it,
// after it is replaced, and is closed by the last release.
func TestLiveHoldsGenerations(t *testing.T) {
	closed := 0
	gen := func(seq uint64) *held {
		g := &Generation{Seq: seq}
		p := &pooled{pool: NewPool(), refs: 1, closeFn: func() { closed++ }}
		g.held = []*pooled{p}
		h := &held{gen: g}
		h.refs.Store(1)
		return h
	}
	l := &Live{}
	l.cur.Store(gen(1))
	h1, g1 := l.acquire()
	if g1.Seq != 1 {
		t.Fatalf("acquired generation %d", g1.Seq)
	}
	old := l.cur.Swap(gen(2))
	old.release() // the swap gives up Live's own hold
	if closed != 0 {
		t.Fatal("a generation was closed while a call held it")
	}
	h2, g2 := l.acquire()
	if g2.Seq != 2 {
		t.Errorf("after the swap, acquired generation %d, want 2", g2.Seq)
	}
	h2.release()
	h1.release()
	if closed != 1 {
		t.Fatalf("closed %d generations after the last call on the old one, want 1", closed)
	}
	// A closed Live hands its last generation out rather than spin.
	l.Close()
	if closed != 2 {
		t.Fatalf("closed %d generations after Close, want 2", closed)
	}
	h, g := l.acquire()
	if g.Seq != 2 {
		t.Fatalf("acquired generation %d after Close", g.Seq)
	}
	h.release()
	if closed != 2 {
		t.Errorf("a release after Close closed the generation again")
	}
}
