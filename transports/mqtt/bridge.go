package mqtt

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/rosettagw/rosetta/router"
	"github.com/rosettagw/rosetta/translate"
	"github.com/rosettagw/rosetta/transports/ingress"
)

// Bridge turns device messages into upstream calls: it finds the rule of a
// message's topic, runs the rule's route chain (policies, then dispatch),
// retries transient failures of QoS 1 messages, publishes replies and
// dead-letters what fails.
type Bridge struct {
	rules    []*Rule
	broker   Broker
	resolver translate.Resolver
	noRule   string // dead-letter topic of messages no rule takes
	forward  *ingress.Forwarder
	log      *slog.Logger
}

// BridgeOptions configure a Bridge.
type BridgeOptions struct {
	// Resolver resolves Any types in error details.
	Resolver translate.Resolver
	// DeadLetter is the topic messages that match no rule are published
	// to with their error; "" logs them instead.
	DeadLetter string
	// ForwardHeaders are the MQTT 5 user properties forwarded upstream as
	// metadata, by key, case-insensitively (nil: the ingress defaults), as
	// for HTTP headers: grpc-metadata-* goes with the prefix stripped.
	// Credentials (authorization, cookie) and x-mqtt-* never go.
	ForwardHeaders []string
	// Logger receives one access-log line per message (nil: none).
	Logger *slog.Logger
}

// NewBridge returns a bridge for rules, tried in order; the first whose
// filter matches a topic takes the message. Every rule must have its Route.
// Replies and dead letters are published on br.
func NewBridge(rules []*Rule, br Broker, opts BridgeOptions) *Bridge {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Bridge{rules: rules, broker: br, resolver: opts.Resolver, noRule: opts.DeadLetter, forward: ingress.NewForwarder(opts.ForwardHeaders), log: log}
}

// Filters returns the subscription filters of the rules, for an external
// broker, with the QoS of each.
func (b *Bridge) Filters() map[string]byte {
	out := make(map[string]byte, len(b.rules))
	for _, r := range b.rules {
		out[r.Subscription()] = max(out[r.Subscription()], r.QoS())
	}
	return out
}

// Matches reports whether some rule takes topic.
func (b *Bridge) Matches(topic string) bool {
	r, _ := b.find(topic)
	return r != nil
}

func (b *Bridge) find(topic string) (*Rule, []string) {
	for _, r := range b.rules {
		if vals, ok := r.match(topic); ok {
			return r, vals
		}
	}
	return nil, nil
}

// errNoRule answers a message whose topic no rule takes.
func errNoRule(topic string) error {
	return status.Error(codes.PermissionDenied, "no rule takes topic "+topic)
}

// Uplink handles one device message: it is the Uplink of the brokers.
func (b *Bridge) Uplink(ctx context.Context, m *Message) error {
	start := time.Now()
	rule, vals := b.find(m.Topic)
	var err error
	attempts := 0
	switch {
	case rule == nil:
		err = errNoRule(m.Topic)
	case rule.owner >= 0 && m.Sender != nil && vals[rule.owner] != owner(m.Sender):
		err = status.Error(codes.PermissionDenied, fmt.Sprintf("%s may not publish to %s", owner(m.Sender), m.Topic))
	default:
		attempts, err = b.call(ctx, rule, vals, m)
	}
	if err != nil && ctx.Err() == nil {
		b.deadLetter(ctx, rule, vals, m, err, attempts)
	}
	b.log.LogAttrs(ctx, slog.LevelInfo, "access",
		slog.String("proto", "mqtt"), slog.String("topic", m.Topic), slog.Int("qos", int(m.QoS)),
		slog.String("code", status.Code(errorStatus(err)).String()),
		slog.Int("attempts", attempts), slog.Duration("duration", time.Since(start)), slog.String("client", clientID(m)))
	return err
}

// owner is who a device is for an owner check: its certificate's common
// name, else its username, else its client ID.
func owner(s *Sender) string {
	if len(s.Certificates) > 0 {
		return s.Certificates[0].Subject.CommonName
	}
	if s.Username != "" {
		return s.Username
	}
	return s.ClientID
}

func clientID(m *Message) string {
	if m.Sender == nil {
		return ""
	}
	return m.Sender.ClientID
}

// call runs the rule's chain, retrying transient failures of a QoS 1
// message with backoff, and publishes the reply. It returns the number of
// attempts made and the last error.
func (b *Bridge) call(ctx context.Context, rule *Rule, vals []string, m *Message) (int, error) {
	enc := rule.encoding(m)
	var wire []byte
	decode := func() ([]byte, error) {
		if wire == nil {
			var err error
			if wire, err = rule.decode(m, vals, enc); err != nil {
				return nil, err
			}
		}
		return wire, nil
	}
	attempts := 1
	if m.QoS > 0 {
		attempts = rule.cfg.Retry.Attempts
	}
	backoff := rule.cfg.Retry.Backoff
	var c *router.Call
	var err error
	for i := 1; ; i++ {
		c = b.newCall(rule, vals, m, decode)
		err = rule.Route.Handler.Handle(ctx, c)
		if err == nil && rule.Binding == nil && c.Reply != nil && c.Reply.HTTPStatus >= 300 {
			err = status.Errorf(translate.CodeFromHTTP(c.Reply.HTTPStatus), "the HTTP upstream answered %d", c.Reply.HTTPStatus)
		}
		if err == nil || i >= attempts || !transient(err) {
			attempts = i
			break
		}
		b.log.LogAttrs(ctx, slog.LevelDebug, "mqtt retry", slog.String("topic", m.Topic), slog.Int("attempt", i), slog.String("error", err.Error()))
		select {
		case <-ctx.Done():
			return i, ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, rule.cfg.Retry.MaxBackoff)
	}
	if ctx.Err() != nil {
		return attempts, ctx.Err() // shutting down: no reply, no dead letter
	}
	b.reply(ctx, rule, vals, m, enc, c, err)
	return attempts, err
}

// newCall builds the protocol-neutral call of one attempt.
func (b *Bridge) newCall(rule *Rule, vals []string, m *Message, decode func() ([]byte, error)) *router.Call {
	in := metadata.MD{"mqtt-topic": {m.Topic}}
	for _, p := range m.UserProperties {
		k := strings.ToLower(p.Key)
		in[k] = append(in[k], p.Value)
	}
	c := &router.Call{
		Route:    rule.Route,
		Protocol: router.MQTT,
		Incoming: in,
		Metadata: b.forwarded(m.UserProperties),
		Target:   rule.Route.Target,
		Decode:   decode,
	}
	c.Metadata["x-mqtt-topic"] = []string{m.Topic}
	if rule.Binding == nil { // an HTTP upstream: the segments go into its path
		escaped := make([]string, len(vals))
		for i, v := range vals {
			escaped[i] = url.PathEscape(v)
		}
		c.Target = rule.expand(c.Target, escaped)
		c.Metadata["content-type"] = []string{contentType(m)}
	}
	if s := m.Sender; s != nil {
		c.Peer = s.Peer
		c.PeerCertificates = s.Certificates
		c.Credentials = &router.Credentials{ClientID: s.ClientID, Username: s.Username, Password: s.Password}
		c.Metadata["x-mqtt-client-id"] = []string{s.ClientID}
	}
	return c
}

// forwarded is the metadata the user properties props give the upstream:
// those the forward list allows, as HTTP headers are chosen, except
// credentials, the gateway's own x-mqtt-* keys, and properties gRPC
// metadata cannot carry (a key or a text value outside printable ASCII).
func (b *Bridge) forwarded(props []UserProperty) metadata.MD {
	if len(props) == 0 {
		return metadata.MD{}
	}
	h := make(http.Header, len(props))
	for _, p := range props {
		h.Add(p.Key, p.Value)
	}
	md := b.forward.Metadata(&http.Request{Header: h})
	for k, vs := range md {
		if k == "authorization" || k == "proxy-authorization" || k == "cookie" || strings.HasPrefix(k, "x-mqtt-") || !validMetadata(k, vs) {
			delete(md, k)
		}
	}
	return md
}

// validMetadata reports whether gRPC metadata can carry key with values.
func validMetadata(key string, values []string) bool {
	for _, r := range key {
		if !('a' <= r && r <= 'z' || '0' <= r && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	if strings.HasSuffix(key, "-bin") {
		return true
	}
	for _, v := range values {
		for i := 0; i < len(v); i++ {
			if v[i] < 0x20 || v[i] > 0x7e {
				return false
			}
		}
	}
	return true
}

// transient reports whether an upstream error is worth retrying.
func transient(err error) bool {
	switch status.Code(errorStatus(err)) {
	case codes.Unavailable, codes.DeadlineExceeded, codes.ResourceExhausted:
		return true
	}
	return false
}

// errorStatus turns the errors the chain may return into ones carrying a
// status: a decoding mistake is INVALID_ARGUMENT, a deadline
// DEADLINE_EXCEEDED.
func errorStatus(err error) error {
	var bad *translate.BadRequestError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &bad):
		return status.ErrorProto(translate.BadRequestStatus(bad))
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, "deadline exceeded")
	}
	return err
}

// reply publishes the response, or the error, to the message's MQTT 5
// response topic or else to the rule's reply topic.
func (b *Bridge) reply(ctx context.Context, rule *Rule, vals []string, m *Message, enc Payload, c *router.Call, callErr error) {
	topic := m.ResponseTopic
	if topic == "" {
		topic = rule.expand(rule.cfg.Reply, vals)
	}
	if topic == "" {
		return
	}
	out := &Message{Topic: topic, QoS: m.QoS, CorrelationData: m.CorrelationData}
	switch {
	case callErr == nil && c.Reply == nil: // a policy answered without an upstream message
		return
	case callErr != nil && enc == Proto:
		out.Payload, _ = proto.Marshal(translate.StatusOf(errorStatus(callErr)))
		out.ContentType = "application/protobuf"
	case callErr != nil:
		out.Payload = translate.StatusJSON(translate.StatusOf(errorStatus(callErr)), b.resolver)
		out.ContentType = "application/json"
	case enc == Proto:
		out.Payload, out.ContentType = c.Reply.Message, "application/protobuf"
	case rule.Binding == nil:
		out.Payload, out.ContentType = c.Reply.Message, c.Reply.ContentType
	default:
		resp, err := rule.Binding.EncodeResponse(c.Reply.Message)
		if err != nil {
			st := &spb.Status{Code: int32(codes.Internal), Message: "undecodable upstream response: " + err.Error()}
			out.Payload, out.ContentType = translate.StatusJSON(st, b.resolver), "application/json"
		} else {
			out.Payload, out.ContentType = resp.Body, resp.ContentType
		}
	}
	if err := b.broker.Publish(ctx, out); err != nil {
		b.log.LogAttrs(ctx, slog.LevelWarn, "mqtt reply not published", slog.String("topic", topic), slog.String("error", err.Error()))
	}
}

// deadLetterRecord is what a dead-letter topic receives.
type deadLetterRecord struct {
	Topic       string          `json:"topic"`
	ClientID    string          `json:"clientId,omitempty"`
	QoS         byte            `json:"qos"`
	ContentType string          `json:"contentType,omitempty"`
	Payload     []byte          `json:"payload"`
	Attempts    int             `json:"attempts"`
	Error       json.RawMessage `json:"error"`
}

// deadLetter publishes a failed message with its error to the rule's
// dead-letter topic, or logs it when there is none.
func (b *Bridge) deadLetter(ctx context.Context, rule *Rule, vals []string, m *Message, callErr error, attempts int) {
	st := translate.StatusOf(errorStatus(callErr))
	topic := b.noRule
	if rule != nil {
		topic = rule.expand(rule.cfg.DeadLetter, vals)
	}
	if topic == "" {
		b.log.LogAttrs(ctx, slog.LevelWarn, "mqtt message failed; no dead-letter topic",
			slog.String("topic", m.Topic), slog.String("client", clientID(m)), slog.String("code", codes.Code(st.GetCode()).String()), slog.String("error", st.GetMessage()))
		return
	}
	rec, _ := json.Marshal(deadLetterRecord{
		Topic: m.Topic, ClientID: clientID(m), QoS: m.QoS, ContentType: m.ContentType, Payload: m.Payload,
		Attempts: attempts, Error: translate.StatusJSON(st, b.resolver),
	})
	if err := b.broker.Publish(ctx, &Message{Topic: topic, Payload: rec, QoS: 1, ContentType: "application/json"}); err != nil {
		b.log.LogAttrs(ctx, slog.LevelError, "mqtt dead letter not published", slog.String("topic", m.Topic), slog.String("dead_letter", topic), slog.String("error", err.Error()))
	}
}
