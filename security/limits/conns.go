package limits

import (
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Listener bounds the connections each client address may hold open on ln
// at once: a connection beyond perClient is closed as soon as it is
// accepted, and logged (at most once a second). The client is the
// connection's peer; wrap ln before any TLS, so that handshakes count.
func Listener(ln net.Listener, perClient int, logger *slog.Logger) net.Listener {
	if logger == nil {
		logger = slog.Default()
	}
	return &connLimiter{Listener: ln, max: perClient, open: map[netip.Addr]int{}, log: logger}
}

type connLimiter struct {
	net.Listener
	max     int
	log     *slog.Logger
	mu      sync.Mutex
	open    map[netip.Addr]int
	lastLog atomic.Int64
}

// Accept returns the next connection within its client's bound.
func (l *connLimiter) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ap, _ := netip.ParseAddrPort(c.RemoteAddr().String())
		a := ap.Addr().Unmap()
		l.mu.Lock()
		if l.open[a] >= l.max {
			l.mu.Unlock()
			c.Close()
			if now := time.Now().UnixNano(); now-l.lastLog.Load() >= int64(time.Second) {
				l.lastLog.Store(now)
				l.log.Warn("connection refused: too many from one client", "client", a.String(), "max_conns_per_client", l.max)
			}
			continue
		}
		l.open[a]++
		l.mu.Unlock()
		return &trackedConn{Conn: c, l: l, addr: a}, nil
	}
}

type trackedConn struct {
	net.Conn
	l    *connLimiter
	addr netip.Addr
	once sync.Once
}

// Close closes the connection and frees its place.
func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.l.mu.Lock()
		if c.l.open[c.addr]--; c.l.open[c.addr] <= 0 {
			delete(c.l.open, c.addr)
		}
		c.l.mu.Unlock()
	})
	return c.Conn.Close()
}
