package router

import (
	"context"
	"errors"
	"io"
	"sync"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Stream is the ingress side of a streaming call, implemented by each
// ingress adapter. Dispatch calls Recv from one goroutine and SetHeader and
// Send from another; a Stream need not allow more concurrency than that.
// For a method with one request message (unary or server streaming),
// Dispatch calls Recv once, before it calls the upstream.
// Messages cross it one at a time, so a slow peer on either side slows the
// other and no more than one message per direction is held by the gateway
// (readAhead messages toward a client whose ingress sets Call.Flush).
type Stream interface {
	// Recv returns the client's next request message in protobuf wire
	// form, and io.EOF once the client has half-closed. A client mistake
	// (such as an undecodable message) is returned as an error that ends
	// the call. Recv may still be blocked when the chain returns: the
	// ingress must then unblock it (by closing its side of the stream).
	Recv() ([]byte, error)
	// SetHeader is called once, before the first Send, with the upstream's
	// response header. It is not called when the stream ends before its
	// first response message; the ingress then finds the header in
	// Call.Reply.
	SetHeader(md metadata.MD) error
	// Send delivers one response message in protobuf wire form to the
	// client. It blocks while the client is not reading, which stops the
	// upstream (backpressure); an error ends the call and cancels the
	// upstream.
	Send(msg []byte) error
}

// StreamInvoker is an Invoker that also opens streams; the gRPC upstream
// implements it. A streaming route whose Invoker is not one fails with
// UNIMPLEMENTED.
type StreamInvoker interface {
	Invoker
	// NewStream opens a stream calling target, the method described by
	// method. The stream ends when ctx does.
	NewStream(ctx context.Context, target string, method protoreflect.MethodDescriptor, md metadata.MD) (UpstreamStream, error)
}

// UpstreamStream is an open stream to an upstream.
type UpstreamStream interface {
	// Send sends one request message in wire form.
	Send(msg []byte) error
	// CloseSend half-closes the request side.
	CloseSend() error
	// Recv returns the next response message in wire form, io.EOF at the
	// end of a successful stream, or the upstream's error status.
	Recv() ([]byte, error)
	// Header returns the upstream's response header, waiting for it.
	Header() (metadata.MD, error)
	// Trailer returns the upstream's trailer once Recv has returned an
	// error or io.EOF.
	Trailer() metadata.MD
	// Endpoint returns the address of the upstream endpoint the stream
	// went to, as Reply.Endpoint says it for a unary call ("" when the
	// stream has none).
	Endpoint() string
}

// IsStreaming reports whether the route's method streams in either
// direction.
func (r *Route) IsStreaming() bool {
	return r.Method != nil && (r.Method.IsStreamingClient() || r.Method.IsStreamingServer())
}

// dispatchStream pumps messages between the call's Stream and a new upstream
// stream until either ends. The route timeout does not apply: a stream lives
// as long as its client wants (bounded by the client's own deadline and by
// the ingress's idle timeout).
func dispatchStream(ctx context.Context, c *Call) error {
	inv, ok := c.Route.Invoker.(StreamInvoker)
	if !ok || c.Route.Method == nil {
		return status.Errorf(codes.Unimplemented, "upstream %q does not support streaming calls", c.Route.Upstream)
	}
	// A client mistake in a message (such as one the validation step
	// refuses) ends the call with its error.
	recv := c.Stream.Recv
	// A method with one request message has it read (and decoded) before
	// the upstream is called: a bad request never opens an upstream stream.
	var req []byte
	single := !c.Route.Method.IsStreamingClient()
	if single {
		var err error
		if req, err = recv(); errors.Is(err, io.EOF) {
			return status.Error(codes.Unimplemented, "the client sent no request message")
		} else if err != nil {
			return err
		}
	}
	ctx, cancelCause := context.WithCancelCause(ctx)
	cancel := func() { cancelCause(nil) }
	defer cancel()
	touch := limitStream(ctx, cancelCause)
	defer touch(false)
	up, err := inv.NewStream(ctx, c.Target, c.Route.Method, c.Metadata)
	if err != nil {
		return ended(ctx, err)
	}

	// The client's mistakes (a bad message, a broken connection) end the
	// call with their own error rather than with the Canceled status the
	// upstream then reports.
	var (
		mu        sync.Mutex
		clientErr error
	)
	fail := func(err error) {
		mu.Lock()
		if clientErr == nil {
			clientErr = err
		}
		mu.Unlock()
		cancel()
	}
	if single {
		if up.Send(req) == nil {
			up.CloseSend()
		} // else the upstream's status comes out of Recv
	} else {
		go func() {
			for {
				msg, err := recv()
				if errors.Is(err, io.EOF) {
					up.CloseSend()
					return
				}
				if err != nil {
					fail(err)
					return
				}
				touch(true)
				if err := up.Send(msg); err != nil {
					return // the upstream's status comes out of Recv
				}
			}
		}()
	}

	recvUp := up.Recv
	var ahead *aheadReader
	if c.Flush != nil {
		ahead = startReadAhead(up.Recv)
		defer ahead.stop()
		recvUp = ahead.recv
	}
	unflushed := false // a message was sent since the last Flush
	first := true
	for {
		if unflushed && !ahead.ready() {
			unflushed = false
			if err := c.Flush(); err != nil {
				return ended(ctx, err) // the deferred cancel stops the upstream
			}
		}
		msg, err := recvUp()
		if err != nil {
			header, _ := up.Header()
			c.Reply = &Reply{Header: header, Trailer: up.Trailer(), Endpoint: up.Endpoint()}
			mu.Lock()
			defer mu.Unlock()
			if clientErr != nil {
				return clientErr
			}
			if errors.Is(err, io.EOF) {
				return nil
			}
			return ended(ctx, err)
		}
		touch(true)
		if first {
			first = false
			header, _ := up.Header()
			if err := c.Stream.SetHeader(header); err != nil {
				return err
			}
		}
		if err := c.Stream.Send(msg); err != nil {
			return ended(ctx, err) // the deferred cancel stops the upstream
		}
		unflushed = ahead != nil
	}
}

// readAhead bounds the upstream messages a stream toward a client whose
// ingress flushes on demand (Call.Flush) holds ahead of the one it sends,
// so that the relay can tell whether a further message is ready.
const readAhead = 8

// aheadReader receives an upstream stream's messages ahead of the relay:
// readAhead-2 in its channel, one in its reader's hand, one in next.
type aheadReader struct {
	items chan received
	done  chan struct{}
	next  received
	has   bool // next holds the next item
}

// received is one outcome of an upstream Recv.
type received struct {
	msg []byte
	err error
}

// startReadAhead receives from recv until it fails (io.EOF included) or
// stop is called.
func startReadAhead(recv func() ([]byte, error)) *aheadReader {
	r := &aheadReader{items: make(chan received, readAhead-2), done: make(chan struct{})}
	go func() {
		for {
			msg, err := recv()
			select {
			case r.items <- received{msg, err}:
			case <-r.done:
				return
			}
			if err != nil {
				return
			}
		}
	}()
	return r
}

// ready reports whether the next outcome has been received.
func (r *aheadReader) ready() bool {
	if !r.has {
		select {
		case r.next = <-r.items:
			r.has = true
		default:
		}
	}
	return r.has
}

// recv returns the next outcome, waiting for it.
func (r *aheadReader) recv() ([]byte, error) {
	if !r.has {
		r.next = <-r.items
	}
	r.has = false
	return r.next.msg, r.next.err
}

// stop lets the reader end once its Recv returns.
func (r *aheadReader) stop() { close(r.done) }
