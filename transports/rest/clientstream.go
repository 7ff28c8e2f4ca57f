package rest

import (
	"encoding/json"
	"errors"
	"io"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// messageReader is the request side of a client or bidirectional stream
// over REST, as grpc-gateway serves it: the request body is a stream of JSON
// messages, concatenated or newline-delimited, each decoded as the method's
// request (the path variables and query parameters apply to every one) and
// each bounded by the body limit.
type messageReader struct {
	dec     *json.Decoder
	counter *countingReader
	limit   int64
	n       int // messages read
	decode  func(body []byte) ([]byte, error)
}

func newMessageReader(body io.Reader, limit int64, decode func([]byte) ([]byte, error)) *messageReader {
	c := &countingReader{r: body, limit: limit}
	return &messageReader{dec: json.NewDecoder(c), counter: c, limit: limit, decode: decode}
}

// next returns the next request message in protobuf wire form, io.EOF at
// the end of the body, or the client's mistake as an error status.
func (m *messageReader) next() ([]byte, error) {
	var raw json.RawMessage
	m.counter.reset(m.dec.Buffered())
	err := m.dec.Decode(&raw)
	switch {
	case errors.Is(err, io.EOF):
		return nil, io.EOF
	case errors.Is(err, errMessageTooLarge):
		return nil, status.Errorf(codes.ResourceExhausted, "request stream message %d exceeds %d bytes", m.n+1, m.limit)
	case err != nil:
		return nil, status.Errorf(codes.InvalidArgument, "request stream message %d is not JSON: %v", m.n+1, err)
	case int64(len(raw)) > m.limit:
		return nil, status.Errorf(codes.ResourceExhausted, "request stream message %d exceeds %d bytes", m.n+1, m.limit)
	}
	m.n++
	return m.decode(raw)
}

var errMessageTooLarge = errors.New("message too large")

// countingReader fails a read once more than limit bytes were read since
// the last reset, so that the JSON decoder never buffers much more than one
// message's bound.
type countingReader struct {
	r     io.Reader
	limit int64
	n     int64
}

// reset starts counting a new message, of which buffered bytes were read
// already.
func (c *countingReader) reset(buffered io.Reader) {
	c.n = 0
	if b, ok := buffered.(interface{ Len() int }); ok {
		c.n = int64(b.Len())
	}
}

func (c *countingReader) Read(p []byte) (int, error) {
	if c.n > c.limit {
		return 0, errMessageTooLarge
	}
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
