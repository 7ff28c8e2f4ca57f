// Package testwait is the one polling loop of Rosetta's tests: the unit
// tests beside the code and the end-to-end harness (test/) wait for an
// event by polling a condition with it, never by sleeping a guessed
// duration.
package testwait

import (
	"testing"
	"time"
)

// Timeout bounds every wait: long enough for a busy machine (the race
// detector, other builds), and only ever reached by a failing test.
const Timeout = time.Minute

// maxInterval is the longest pause between two looks at the condition.
const maxInterval = 10 * time.Millisecond

// For calls cond until it reports true, first after a millisecond and then
// at intervals growing to 10ms, and fails t naming what when Timeout passes
// first. Like t.Fatal, it must be called from the test's goroutine.
func For(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(Timeout)
	for interval := time.Millisecond; !cond(); interval = min(2*interval, maxInterval) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", Timeout, what)
		}
		time.Sleep(interval)
	}
}
