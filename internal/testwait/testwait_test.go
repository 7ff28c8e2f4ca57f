package testwait

import (
	"sync/atomic"
	"testing"
)

func TestForWaitsForTheCondition(t *testing.T) {
	var looks atomic.Int64
	For(t, "the third look", func() bool { return looks.Add(1) == 3 })
	if n := looks.Load(); n != 3 {
		t.Errorf("the condition was called %d times, want 3", n)
	}
}
