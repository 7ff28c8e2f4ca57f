// Package machine holds what the bench commands (the driver and the soak)
// ask of the local machine: free loopback ports, whether a started process
// listens yet, and the load average.
package machine

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"
)

// FreeAddr returns a loopback address with a port that was free a moment
// ago.
func FreeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// ErrExited is WaitListening's error when the process exits first.
var ErrExited = errors.New("exited before listening")

// WaitListening waits until addr accepts TCP connections, for at most
// timeout, or until exited is closed (ErrExited).
func WaitListening(addr string, exited <-chan struct{}, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return nil
		}
		select {
		case <-exited:
			return ErrExited
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("did not listen on %s within %v", addr, timeout)
		}
	}
}

// LoadAverage returns the one-minute load average from /proc/loadavg, which
// tells how busy the machine was besides the benchmark ("unknown" when it
// cannot be read).
func LoadAverage() string {
	raw, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	avg, _, _ := strings.Cut(string(raw), " ")
	return avg
}
