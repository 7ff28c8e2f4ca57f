package websocket

import (
	"bufio"
	"encoding/binary"
	"io"
	"math"
	"net"
	"net/http"
	"sync"
	"syscall"
)

// An idle WebSocket holds no read or write buffer. coder/websocket keeps
// the bufio.Reader and bufio.Writer it gets from the hijack for the life of
// the connection (net/http's, 4 KiB each); hijacker gives it 16-byte ones
// instead, over a connection that reads into a pooled chunk only once data
// has arrived (lazyConn) and a writer that sends each frame with one system
// call (frameWriter). A TLS connection, which cannot wait for data without
// a buffer, keeps net/http's buffers.

// smallBuffer is the size of the bufio buffers coder/websocket keeps: room
// for a server frame's header (at most 10 bytes).
const smallBuffer = 16

// chunkSize is the size of the pooled read chunks.
const chunkSize = 4 << 10

var chunks = sync.Pool{New: func() any { return new([chunkSize]byte) }}

// hijacker is the http.ResponseWriter given to ws.Accept; the lazyConn
// it makes, if any, is stored in *lazy.
type hijacker struct {
	http.ResponseWriter
	lazy **lazyConn
}

// Hijack takes the connection over from net/http with small buffers.
func (h hijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(h.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return conn, brw, nil
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return conn, brw, nil
	}
	lc := &lazyConn{Conn: conn, raw: raw}
	if n := brw.Reader.Buffered(); n > 0 { // sent right after the upgrade request
		p, _ := brw.Reader.Peek(n)
		lc.pending = append([]byte(nil), p...)
	}
	lc.br = bufio.NewReaderSize(lc, smallBuffer)
	lc.peek = lc.peekReadable
	*h.lazy = lc
	return lc, bufio.NewReadWriter(lc.br, bufio.NewWriterSize(&frameWriter{conn: conn}, smallBuffer)), nil
}

// lazyConn reads into a pooled chunk once the socket is readable, and
// gives the chunk back as soon as it has been read out: a connection
// waiting for its next message holds no buffer. Reads come from one
// goroutine at a time (coder/websocket's read lock).
type lazyConn struct {
	net.Conn
	raw     syscall.RawConn
	br      *bufio.Reader // coder/websocket's reader over this connection
	chunk   *[chunkSize]byte
	pending []byte                // read and not yet consumed, in chunk (or the hijack's leftover)
	peek    func(fd uintptr) bool // peekReadable, bound once
	peeked  [1]byte               // where park's MSG_PEEK copies to
}

// idle reports whether nothing read from the socket is left unconsumed
// (in a chunk, or in coder/websocket's reader): the next message starts
// with data still to arrive.
func (c *lazyConn) idle() bool { return len(c.pending) == 0 && c.br.Buffered() == 0 }

// park returns once the socket has data to read, or an end or error to
// report, without reading it: the Read that follows takes it. An idle
// connection's reader parks here, in a shallow frame, rather than deep in
// coder/websocket's frame reading, so that the garbage collector shrinks
// its goroutine's stack to the smallest size (a stack shrinks only while
// at most a quarter of it is in use).
func (c *lazyConn) park() {
	c.raw.Read(c.peek)
}

// peekReadable is the raw read of park: true once a one-byte MSG_PEEK
// finds data (or the end, or an error), false to wait for the poller.
func (c *lazyConn) peekReadable(fd uintptr) bool {
	for {
		_, _, err := syscall.Recvfrom(int(fd), c.peeked[:], syscall.MSG_PEEK)
		if err != syscall.EINTR {
			return err != syscall.EAGAIN
		}
	}
}

func (c *lazyConn) Read(p []byte) (int, error) {
	if len(c.pending) == 0 {
		c.release()
		if len(p) >= chunkSize {
			return c.Conn.Read(p)
		}
		if err := c.fill(); err != nil {
			return 0, err
		}
	}
	n := copy(p, c.pending)
	c.pending = c.pending[n:]
	if len(c.pending) == 0 {
		c.release()
	}
	return n, nil
}

// fill waits until the socket is readable, then reads what it holds into
// a chunk from the pool.
func (c *lazyConn) fill() error {
	var (
		n    int
		rerr error
	)
	err := c.raw.Read(func(fd uintptr) bool {
		chunk := chunks.Get().(*[chunkSize]byte)
		for {
			n, rerr = syscall.Read(int(fd), chunk[:])
			if rerr != syscall.EINTR {
				break
			}
		}
		if rerr == syscall.EAGAIN {
			chunks.Put(chunk)
			return false // wait for the poller
		}
		c.chunk = chunk
		return true
	})
	switch {
	case err != nil:
		c.release()
		return err
	case rerr != nil:
		c.release()
		return &net.OpError{Op: "read", Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: rerr}
	case n <= 0:
		c.release()
		return io.EOF
	}
	c.pending = c.chunk[:n]
	return nil
}

func (c *lazyConn) release() {
	if c.chunk != nil {
		chunks.Put(c.chunk)
		c.chunk = nil
	}
	c.pending = nil
}

// frameWriter is under coder/websocket's 16-byte bufio.Writer, which hands
// it a frame as its header and the first bytes (a full buffer), then the
// rest of the payload, or the whole frame at its flush when it is short.
// It reads the frame's length from its header and holds the first piece
// (at most smallBuffer bytes, in an array of its own) until the frame's
// end arrives, then writes both with one system call (writev). Anything it
// cannot read as a frame header is written through.
type frameWriter struct {
	conn  net.Conn
	left  int // bytes of the current frame still to come
	held  [smallBuffer]byte
	nheld int
}

func (w *frameWriter) Write(p []byte) (int, error) {
	if w.left == 0 {
		w.left = frameLength(p)
	}
	w.left = max(w.left-len(p), 0)
	if w.left > 0 && w.nheld+len(p) <= len(w.held) {
		w.nheld += copy(w.held[w.nheld:], p)
		return len(p), nil
	}
	if w.nheld == 0 {
		return w.conn.Write(p)
	}
	bufs := net.Buffers{w.held[:w.nheld], p}
	held := w.nheld
	w.nheld = 0
	n, err := bufs.WriteTo(w.conn)
	return max(int(n)-held, 0), err
}

// frameLength returns the length of the WebSocket frame whose header p
// starts with, 0 when p does not hold a whole header.
func frameLength(p []byte) int {
	if len(p) < 2 {
		return 0
	}
	header, length := 2, uint64(p[1]&0x7f)
	switch length {
	case 126:
		header = 4
		if len(p) < header {
			return 0
		}
		length = uint64(binary.BigEndian.Uint16(p[2:]))
	case 127:
		header = 10
		if len(p) < header {
			return 0
		}
		length = binary.BigEndian.Uint64(p[2:])
	}
	if p[1]&0x80 != 0 { // masked: a client's frame
		header += 4
	}
	if length > math.MaxInt32 {
		return 0
	}
	return header + int(length)
}
