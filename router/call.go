package router

import (
	"cmp"
	"context"
	"crypto/x509"
	"errors"
	"math/rand/v2"
	"net/http"
	"net/netip"
	"net/url"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// Protocol names the ingress a call came in on.
type Protocol string

// The ingress protocols.
const (
	HTTP      Protocol = "http"
	WebSocket Protocol = "websocket"
	GRPCWeb   Protocol = "grpc-web"
	GRPC      Protocol = "grpc"
	MQTT      Protocol = "mqtt"
)

// Call is one protocol-neutral call on its way through the gateway: what the
// ingress learnt about it, and, once dispatched, the upstream's reply.
type Call struct {
	// Route is the matched route.
	Route *Route
	// Protocol is the ingress protocol.
	Protocol Protocol
	// Peer is the client's address as the connection shows it.
	Peer netip.AddrPort
	// Incoming is every request header (HTTP) or metadata entry (gRPC),
	// keys lower-cased, as the client sent it: identity material for the
	// policies (Authorization, API keys, X-Forwarded-For). Policies read it;
	// only Metadata goes upstream.
	Incoming metadata.MD
	// RawQuery is the request URL's query (REST, WebSocket and gRPC-Web);
	// empty for protocols without one (gRPC, MQTT). Policies read
	// credentials in it (Route.CredentialParams) through QueryParams; it is
	// never forwarded.
	RawQuery string
	query    url.Values // RawQuery parsed, on first use
	// PeerCertificates are the client's verified TLS certificates, if any.
	PeerCertificates []*x509.Certificate
	// Credentials are identity material that is not a header, such as the
	// MQTT CONNECT username and password; nil when the protocol has none.
	Credentials *Credentials
	// Identity is who the policies established the caller to be; nil until
	// an authentication policy sets it, and for anonymous calls.
	Identity *Identity
	// Metadata is what is forwarded upstream as gRPC metadata (or HTTP
	// headers), already filtered by the ingress allow-list. Policies may add
	// to it (identity headers) after stripping client-supplied copies.
	Metadata metadata.MD
	// ResponseHeader holds headers the gateway itself adds to the answer
	// (such as rate-limit headers); each ingress writes them its own way.
	ResponseHeader metadata.MD
	// Target is the route's Target with any path variables substituted.
	Target string
	// Decode produces the upstream request: a message in protobuf wire form
	// for gRPC, the body for plain HTTP. It runs only after every policy
	// passed, so a rejected call never costs a decode.
	Decode func() ([]byte, error)
	// Stream, set by the ingress for a route whose method streams, carries
	// the messages in both directions; Decode is then unused.
	Stream Stream
	// Flush, when the ingress sets it, says that its Stream's Send only
	// writes a message, and Flush sends what was written: Dispatch calls
	// it whenever the upstream has no further message ready, so a burst
	// of messages leaves in one write and no message waits for one that
	// has not come. What is written when the stream ends goes out with
	// the ingress's end of the call. Whoever else calls Stream.Send must
	// Flush after it.
	Flush func() error
	// Retry, set by the ingress, lets Dispatch retry the upstream call of
	// a unary call (nil: the route's Retry).
	Retry *Retry
	// Attempts is the number of upstream attempts Dispatch made.
	Attempts int
	// Owner, when set, is who the call's target says may make it (the
	// owner segment of an MQTT topic): the chain's owner step refuses any
	// other caller.
	Owner string
	// Reply is set by Dispatch; after a failed upstream call it may hold
	// only the upstream's metadata. For a stream it holds the upstream's
	// header and trailer, and no message.
	Reply *Reply
}

// QueryParams returns the parameters of RawQuery, parsed on first use (a
// malformed pair is left out, as url.URL.Query does): most calls have no
// policy that reads them.
func (c *Call) QueryParams() url.Values {
	if c.query == nil && c.RawQuery != "" {
		c.query, _ = url.ParseQuery(c.RawQuery)
	}
	return c.query
}

// Credentials are identity material carried outside headers.
type Credentials struct {
	// ClientID is the MQTT client identifier.
	ClientID string
	// Username and Password are from an MQTT CONNECT packet.
	Username string
	Password []byte
}

// DeviceName is who a device is for the MQTT topic-owner rule and the
// broker's subscription filters: its verified certificate's common name,
// else its MQTT username, else its MQTT client identifier.
func DeviceName(certs []*x509.Certificate, cr *Credentials) string {
	if len(certs) > 0 {
		return certs[0].Subject.CommonName
	}
	if cr != nil {
		if cr.Username != "" {
			return cr.Username
		}
		return cr.ClientID
	}
	return ""
}

// Identity is an authenticated caller.
type Identity struct {
	// Subject identifies the caller (JWT sub, API key identity, certificate
	// subject or SAN).
	Subject string
	// Scopes are the permissions granted to the caller.
	Scopes []string
	// Claims are the verified JWT claims (nil for other authentication).
	Claims map[string]any
	// Method says how the caller authenticated: "jwt", "api_key", "mtls".
	Method string
}

// Reply is an upstream's answer to one unary call.
type Reply struct {
	// Message is the response message in protobuf wire form (from a gRPC
	// upstream) or the response body (from a plain HTTP upstream).
	Message []byte
	// HTTPStatus and ContentType describe a plain HTTP upstream's answer.
	HTTPStatus  int
	ContentType string
	// Header and Trailer are the upstream's response metadata.
	Header, Trailer metadata.MD
	// Endpoint is the address of the upstream endpoint the call went to,
	// set by the Invoker ("" when none was chosen).
	Endpoint string
}

// Tried lists the endpoints a call's earlier attempts went to. Dispatch
// puts one in the context of a call it may retry; an Invoker that balances
// over endpoints adds each attempt's and sends a retry elsewhere when it
// can.
type Tried struct{ Endpoints []string }

type triedKey struct{}

// WithTried returns ctx carrying t.
func WithTried(ctx context.Context, t *Tried) context.Context {
	return context.WithValue(ctx, triedKey{}, t)
}

// TriedOf returns the call's Tried, nil when the call makes one attempt.
func TriedOf(ctx context.Context) *Tried {
	t, _ := ctx.Value(triedKey{}).(*Tried)
	return t
}

// Refused makes err, an error an Invoker returns without having sent the
// call (an open circuit breaker), one Dispatch does not retry: retrying
// would only wait for the same answer.
func Refused(err error) error { return refusal{err} }

type refusal struct{ error }

func (r refusal) Unwrap() error { return r.error }

func (r refusal) GRPCStatus() *status.Status { return status.Convert(r.error) }

// Invoker calls an upstream. Implementations live in transports/.
type Invoker interface {
	// Invoke sends one request to target (a route's Target, with path
	// variables substituted by the ingress) and returns the reply, or an
	// error carrying a gRPC status.
	Invoke(ctx context.Context, target string, req []byte, md metadata.MD) (*Reply, error)
}

// Handler handles a call; policies wrap the next handler, and Dispatch ends
// every chain.
type Handler interface {
	Handle(ctx context.Context, c *Call) error
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, c *Call) error

// Handle calls f.
func (f HandlerFunc) Handle(ctx context.Context, c *Call) error { return f(ctx, c) }

// Middleware is one policy: it wraps the next handler of the chain.
type Middleware func(next Handler) Handler

// Chain builds the handler that runs mws in order and then final.
func Chain(final Handler, mws ...Middleware) Handler {
	h := final
	for i := len(mws) - 1; i >= 0; i-- {
		h = mws[i](h)
	}
	return h
}

// Dispatch is the end of every chain: it decodes the call's request, applies
// the route deadline and invokes the route's upstream, retrying as the
// call's Retry allows; a call with a Stream is pumped to an upstream stream
// instead.
var Dispatch Handler = HandlerFunc(func(ctx context.Context, c *Call) error {
	if c.Stream != nil {
		return dispatchStreamAttempt(ctx, c)
	}
	return dispatchUnary(ctx, c)
})

// dispatchStreamAttempt pumps a streaming call. It is a function of its own
// so that the unary path's locals are not in the frame that stays on the
// stack of a streaming call's goroutine for the life of the call.
func dispatchStreamAttempt(ctx context.Context, c *Call) error {
	c.Attempts++ // a stream is one attempt, never retried
	ctx, end := startAttempt(ctx, c)
	err := dispatchStream(ctx, c)
	end(c.Reply, err)
	return err
}

// dispatchUnary decodes the call's request, applies the route deadline and
// invokes the route's upstream, retrying as the call's Retry allows.
func dispatchUnary(ctx context.Context, c *Call) error {
	req, err := c.Decode()
	if err != nil {
		return err
	}
	r := c.Retry
	if r == nil {
		r = c.Route.Retry
	}
	if b := r.budget(); b != nil {
		b.active.Add(1)
		defer b.active.Add(-1)
	}
	backoff := r.backoff()
	if r.attempts() > 1 {
		ctx = WithTried(ctx, &Tried{})
	}
	for {
		c.Attempts++
		c.Reply, err = invoke(ctx, c, req) // on error too: its header and trailer metadata go back to the client
		if c.Attempts >= r.attempts() || !r.retries(c.Reply, err) || errors.As(err, new(refusal)) {
			return err
		}
		release, ok := r.budget().take()
		if !ok {
			return err // retries would multiply an outage: the budget says no
		}
		wait := backoff/2 + rand.N(backoff/2+1) // jitter, so that callers do not retry in step
		select {
		case <-ctx.Done():
			release()
			return err
		case <-time.After(wait):
		}
		release()
		backoff = min(2*backoff, r.maxBackoff())
	}
}

// invoke makes one attempt of a unary call, within the route's deadline.
func invoke(ctx context.Context, c *Call, req []byte) (*Reply, error) {
	if c.Route.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.Route.Timeout)
		defer cancel()
	}
	ctx, end := startAttempt(ctx, c)
	reply, err := c.Route.Invoker.Invoke(ctx, c.Target, req, c.Metadata)
	end(reply, err)
	return reply, err
}

// Retry says how Dispatch retries a unary call's upstream attempts. Retries
// wrap the upstream call only, never the chain: a refusal of the gateway's
// own policies (an exhausted rate limit, a denied token) is never retried.
// Only transient upstream failures are: UNAVAILABLE, DEADLINE_EXCEEDED and
// RESOURCE_EXHAUSTED from a gRPC upstream, 429, 502, 503 and 504 from an
// HTTP one; with UnavailableOnly, UNAVAILABLE (a connection that failed or
// a server going away) and 502, 503 alone.
type Retry struct {
	// Attempts bounds the attempts, the first included (at most 1: none).
	Attempts int
	// Backoff is the wait before the first retry (default 100ms); it
	// doubles at each retry, up to MaxBackoff (default 5s), each wait
	// drawn at random between half and all of it.
	Backoff, MaxBackoff time.Duration
	// UnavailableOnly retries UNAVAILABLE only: what a call that may have
	// reached its upstream can be retried on when its method is
	// idempotent.
	UnavailableOnly bool
	// Budget, when set, bounds the retries in flight (see RetryBudget).
	Budget *RetryBudget
}

// RetryBudget bounds the retries in flight to a share of the calls in
// flight, as Envoy's retry budget does, so that retries never multiply an
// outage: at most Percent of the active calls may be waiting to retry, and
// always MinConcurrent. One budget is shared by the routes of an upstream.
type RetryBudget struct {
	// Percent of the active calls that may retry at once (default 20).
	Percent int64
	// MinConcurrent retries are always allowed (default 3).
	MinConcurrent int64

	active, retrying atomic.Int64
}

// take reserves a retry, and returns the function that gives it back;
// false when the budget is spent. A nil budget allows every retry.
func (b *RetryBudget) take() (func(), bool) {
	if b == nil {
		return func() {}, true
	}
	percent, floor := cmp.Or(b.Percent, 20), cmp.Or(b.MinConcurrent, 3)
	allowed := max(floor, b.active.Load()*percent/100)
	if b.retrying.Add(1) > allowed {
		b.retrying.Add(-1)
		return nil, false
	}
	return func() { b.retrying.Add(-1) }, true
}

// Retrying is the number of calls waiting to retry.
func (b *RetryBudget) Retrying() int64 { return b.retrying.Load() }

func (r *Retry) budget() *RetryBudget {
	if r == nil {
		return nil
	}
	return r.Budget
}

// retries reports whether an attempt's outcome is one r retries.
func (r *Retry) retries(reply *Reply, err error) bool {
	if r != nil && r.UnavailableOnly {
		if err != nil {
			return status.Code(err) == codes.Unavailable
		}
		return reply != nil && (reply.HTTPStatus == http.StatusBadGateway || reply.HTTPStatus == http.StatusServiceUnavailable)
	}
	return transient(reply, err)
}

func (r *Retry) attempts() int {
	if r == nil {
		return 1
	}
	return r.Attempts
}

func (r *Retry) backoff() time.Duration {
	if r == nil || r.Backoff <= 0 {
		return 100 * time.Millisecond
	}
	return r.Backoff
}

func (r *Retry) maxBackoff() time.Duration {
	if r == nil || r.MaxBackoff <= 0 {
		return 5 * time.Second
	}
	return r.MaxBackoff
}

// transient reports whether an upstream attempt's outcome is worth
// retrying.
func transient(reply *Reply, err error) bool {
	if err == nil {
		if reply == nil {
			return false
		}
		switch reply.HTTPStatus {
		case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
			return true
		}
		return false
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	switch status.Code(err) {
	case codes.Unavailable, codes.DeadlineExceeded, codes.ResourceExhausted:
		return true
	}
	return false
}
