package accesslog

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a test leaves a goroutine behind (a
// buffered Logger's flusher not stopped by Close).
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
