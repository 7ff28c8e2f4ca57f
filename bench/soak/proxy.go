package main

import (
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// faultProxy is a TCP proxy that can add latency to every byte it forwards
// and drop connections: the soak puts one in front of an upstream replica
// and one in front of Redis.
type faultProxy struct {
	ln       net.Listener
	target   string
	latency  atomic.Int64 // nanoseconds added to each chunk, each direction
	dropping atomic.Bool  // connections are reset, new ones at once

	mu    sync.Mutex
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

// chunk is bytes read from one side, to be written to the other at due.
type chunk struct {
	data []byte
	due  time.Time
}

// newFaultProxy listens on a free loopback port and forwards to target.
func newFaultProxy(target string) (*faultProxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &faultProxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.serve()
	return p, nil
}

// addr is where clients connect.
func (p *faultProxy) addr() string { return p.ln.Addr().String() }

// setLatency makes every chunk forwarded from now on wait d more.
func (p *faultProxy) setLatency(d time.Duration) { p.latency.Store(int64(d)) }

// setDropping, when on, resets every open connection and every new one as
// soon as it is accepted, until turned off.
func (p *faultProxy) setDropping(on bool) {
	p.dropping.Store(on)
	if on {
		p.resetAll()
	}
}

// close stops listening and resets every connection.
func (p *faultProxy) close() {
	p.ln.Close()
	p.resetAll()
	p.wg.Wait()
}

func (p *faultProxy) resetAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		reset(c)
	}
}

// reset closes c with a TCP RST rather than a FIN.
func reset(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	c.Close()
}

func (p *faultProxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		if p.dropping.Load() {
			reset(c)
			continue
		}
		p.wg.Add(1)
		go p.pipe(c)
	}
}

// track adds c to the open connections, or removes it.
func (p *faultProxy) track(c net.Conn, open bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if open {
		p.conns[c] = struct{}{}
	} else {
		delete(p.conns, c)
	}
}

// pipe connects the client c to the target until either side ends.
func (p *faultProxy) pipe(c net.Conn) {
	defer p.wg.Done()
	up, err := net.DialTimeout("tcp", p.target, 2*time.Second)
	if err != nil {
		reset(c)
		return
	}
	p.track(c, true)
	p.track(up, true)
	var once sync.Once
	end := func() {
		once.Do(func() {
			c.Close()
			up.Close()
		})
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); p.forward(up, c, end) }()
	go func() { defer wg.Done(); p.forward(c, up, end) }()
	wg.Wait()
	p.track(c, false)
	p.track(up, false)
}

// forward copies src to dst, each chunk held until its due time, so that
// latency delays the bytes without limiting the throughput.
func (p *faultProxy) forward(dst, src net.Conn, end func()) {
	chunks := make(chan chunk, 256)
	go func() {
		defer close(chunks)
		for {
			buf := make([]byte, 32*1024)
			n, err := src.Read(buf)
			if n > 0 {
				chunks <- chunk{buf[:n], time.Now().Add(time.Duration(p.latency.Load()))}
			}
			if err != nil {
				return
			}
		}
	}()
	for ch := range chunks {
		time.Sleep(time.Until(ch.due))
		if _, err := dst.Write(ch.data); err != nil {
			break
		}
	}
	end()
	for range chunks { // let the reader, unblocked by end, finish
	}
}
