package websocket

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"testing"
)

// tcpPair returns the two ends of a loopback TCP connection.
func tcpPair(t *testing.T) (client, server *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s := <-accepted
	if s == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { c.Close(); s.Close() })
	return c.(*net.TCPConn), s.(*net.TCPConn)
}

func TestLazyConnHoldsNoChunkBetweenMessages(t *testing.T) {
	client, server := tcpPair(t)
	raw, err := server.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	lc := &lazyConn{Conn: server, raw: raw, pending: []byte("left over ")}
	msg := bytes.Repeat([]byte("x"), 100)
	if _, err := client.Write(msg); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 0, 110)
	buf := make([]byte, smallBuffer)
	for len(got) < 110 {
		n, err := lc.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, buf[:n]...)
	}
	if want := append([]byte("left over "), msg...); !bytes.Equal(got, want) {
		t.Fatalf("read %q, want %q", got, want)
	}
	if lc.chunk != nil || len(lc.pending) != 0 {
		t.Fatal("a chunk is still held once everything that arrived was read")
	}
	client.Close()
	if _, err := lc.Read(buf); err != io.EOF {
		t.Fatalf("read after the peer closed: %v, want EOF", err)
	}
}

// serverFrame is an unmasked text frame holding payload.
func serverFrame(payload []byte) []byte {
	var h []byte
	switch n := len(payload); {
	case n < 126:
		h = []byte{0x81, byte(n)}
	case n < 1<<16:
		h = []byte{0x81, 126, 0, 0}
		binary.BigEndian.PutUint16(h[2:], uint16(n))
	default:
		h = make([]byte, 10)
		h[0], h[1] = 0x81, 127
		binary.BigEndian.PutUint64(h[2:], uint64(n))
	}
	return append(h, payload...)
}

func TestFrameWriterSendsWholeFrames(t *testing.T) {
	client, server := tcpPair(t)
	fw := &frameWriter{conn: server}
	bw := bufio.NewWriterSize(fw, smallBuffer)
	var want []byte
	for _, n := range []int{0, 1, 13, 14, 15, 16, 40, 125, 126, 4000, 70000} {
		frame := serverFrame(bytes.Repeat([]byte{byte(n)}, n))
		want = append(want, frame...)
		// As coder/websocket writes a frame: the header, the payload, a flush.
		hdr := len(frame) - n
		if _, err := bw.Write(frame[:hdr]); err != nil {
			t.Fatal(err)
		}
		if _, err := bw.Write(frame[hdr:]); err != nil {
			t.Fatal(err)
		}
		if err := bw.Flush(); err != nil {
			t.Fatal(err)
		}
		if fw.nheld != 0 || fw.left != 0 {
			t.Fatalf("payload %d: %d bytes held, %d expected after the frame was flushed", n, fw.nheld, fw.left)
		}
	}
	server.CloseWrite()
	got, err := io.ReadAll(client)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("the peer read %d bytes that differ from the %d written", len(got), len(want))
	}
}
