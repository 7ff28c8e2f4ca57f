package limits_test

import (
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/rosettagw/rosetta/security/limits"
)

func TestListener(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := limits.Listener(raw, 2, slog.New(slog.DiscardHandler))
	defer ln.Close()
	accepted := make(chan net.Conn, 8)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c
		}
	}()
	dial := func() net.Conn {
		c, err := net.Dial("tcp", raw.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	// closedByServer reports whether the server closed c (EOF on read).
	closedByServer := func(c net.Conn) bool {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err := c.Read(make([]byte, 1))
		return err == io.EOF
	}
	c1 := dial()
	dial()
	s1, s2 := <-accepted, <-accepted
	c3 := dial()
	if !closedByServer(c3) {
		t.Fatal("a third connection from the same client was not closed")
	}
	// Closing one frees a place.
	s1.Close()
	if !closedByServer(c1) {
		t.Fatal("the server's close did not reach the client")
	}
	dial()
	select {
	case s := <-accepted:
		s.Close()
	case <-time.After(5 * time.Second):
		t.Fatal("a connection within the bound was not accepted")
	}
	s2.Close()
}
