package mqtt

import (
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/mochi-mqtt/server/v2/listeners"
)

// tooLargeTCP is the embedded broker's TCP listener with each device's
// connection wrapped in a sizeGuard, so that a packet over the size limit
// is answered rather than met with a bare TCP reset.
type tooLargeTCP struct {
	*listeners.TCP
	max uint32
	log *slog.Logger
}

// Serve accepts devices as listeners.TCP does, each one's connection
// guarded.
func (l *tooLargeTCP) Serve(establish listeners.EstablishFn) {
	l.TCP.Serve(func(id string, c net.Conn) error {
		return establish(id, &sizeGuard{Conn: c, max: l.max, log: l.log})
	})
}

// drainBytes and drainTime bound what a sizeGuard reads and discards of a
// packet that is too large, so that its connection closes with a FIN after
// the DISCONNECT rather than with a reset (a socket closed with unread
// input resets, and the device may then never read the DISCONNECT).
const (
	drainBytes = 16 << 20
	drainTime  = 2 * time.Second
)

// disconnectTooLarge is an MQTT 5 DISCONNECT with reason code 0x95
// (Packet too large) and no properties.
var disconnectTooLarge = []byte{0xE0, 0x02, 0x95, 0x00}

// sizeGuard follows the framing of the MQTT packets a device sends. At the
// fixed header of a packet larger than max (as the broker measures it: the
// remaining length plus one), it answers an MQTT 5 device with DISCONNECT
// 0x95, half-closes the connection and discards, bounded, what the device
// still sends; the broker then reads the header and drops the connection
// as it always does.
type sizeGuard struct {
	net.Conn
	max uint32
	log *slog.Logger

	wmu sync.Mutex // a DISCONNECT goes between the broker's whole packets

	// The framing of the input, as far as it has been read.
	state   int // 0: a fixed header's first byte is next; 1: its remaining length; 2: a body
	typ     byte
	length  int // the remaining length (so far, in state 1)
	shift   uint
	left    int    // body bytes still to come (state 2)
	connect []byte // the first body bytes of the CONNECT packet
	version byte   // the protocol level of the CONNECT (5: MQTT 5)
	done    bool   // a packet was too large: nothing more is followed
}

// NetConn is the connection the guard wraps (a *tls.Conn for TLS devices).
func (g *sizeGuard) NetConn() net.Conn { return g.Conn }

func (g *sizeGuard) Write(p []byte) (int, error) {
	g.wmu.Lock()
	defer g.wmu.Unlock()
	return g.Conn.Write(p)
}

func (g *sizeGuard) Read(p []byte) (int, error) {
	n, err := g.Conn.Read(p)
	if !g.done {
		g.follow(p[:n])
	}
	return n, err
}

// follow advances the framing over b, the bytes just read.
func (g *sizeGuard) follow(b []byte) {
	for i := 0; i < len(b); i++ {
		switch g.state {
		case 0:
			g.typ, g.length, g.shift, g.state = b[i]>>4, 0, 0, 1
		case 1:
			g.length |= int(b[i]&0x7f) << g.shift
			g.shift += 7
			if b[i]&0x80 != 0 && g.shift < 28 {
				continue
			}
			if uint64(g.length)+1 > uint64(g.max) {
				g.tooLarge(g.length - (len(b) - i - 1))
				return
			}
			g.left, g.state = g.length, 2
			if g.left == 0 {
				g.state = 0
			}
		case 2:
			k := min(g.left, len(b)-i)
			if g.typ == 1 && g.version == 0 && len(g.connect) < 16 { // CONNECT: protocol name, then level
				g.connect = append(g.connect, b[i:i+min(k, 16-len(g.connect))]...) // its first 16 bytes, however read
				if len(g.connect) >= 2 {
					if at := 2 + (int(g.connect[0])<<8 | int(g.connect[1])); len(g.connect) > at {
						g.version = g.connect[at]
					}
				}
			}
			g.left -= k
			i += k - 1
			if g.left == 0 {
				g.state = 0
			}
		}
	}
}

// tooLarge answers the packet over the limit whose remaining body is
// unread bytes long.
func (g *sizeGuard) tooLarge(unread int) {
	g.done = true
	g.log.Warn("MQTT packet over the size limit: connection closed", "remote", g.RemoteAddr().String(),
		"bytes", g.length+1, "max_packet_bytes", g.max, "mqtt5_disconnect_0x95", g.version == 5)
	if g.version == 5 {
		g.SetWriteDeadline(time.Now().Add(drainTime)) // a write of the broker's stuck on the device
		g.wmu.Lock()
		g.Conn.Write(disconnectTooLarge)
		g.wmu.Unlock()
	}
	if hc, ok := g.Conn.(interface{ CloseWrite() error }); ok {
		hc.CloseWrite()
	}
	g.SetReadDeadline(time.Now().Add(drainTime))
	io.CopyN(io.Discard, g.Conn, int64(min(max(unread, 0), drainBytes)))
}
