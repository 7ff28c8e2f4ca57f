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
