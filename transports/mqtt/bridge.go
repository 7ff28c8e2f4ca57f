package mqtt

import (
	"github.com/rosettagw/rosetta/accesslog"

	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
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
// message's topic, runs the rule's route chain (policies, then dispatch,
// which retries transient upstream failures of QoS 1 messages), publishes
// replies and dead-letters what fails. It reads the rules of the current
// generation for each message.
type Bridge struct {
	rules   func() (*Rules, func())
	broker  Broker
	noRule  string // dead-letter topic of messages no rule takes
	forward *ingress.Forwarder
	log     *slog.Logger
	access  *accesslog.Logger
	metrics *Metrics
}

// Rules are one generation's uplink rules, tried in order: the first whose
// filter matches a topic takes the message. Every rule must have its Route.
type Rules struct {
	List []*Rule
	// Resolver resolves Any types in error details.
	Resolver translate.Resolver
}

// BridgeOptions configure a Bridge.
type BridgeOptions struct {
	// DeadLetter is the topic messages that match no rule are published
	// to with their error; "" logs them instead.
	DeadLetter string
	// ForwardHeaders are the MQTT 5 user properties forwarded upstream as
	// metadata, by key, case-insensitively (nil: the ingress defaults), as
	// for HTTP headers: grpc-metadata-* goes with the prefix stripped.
	// Credentials (authorization, cookie) and x-mqtt-* never go.
	ForwardHeaders []string
	// Logger receives the bridge's warnings (nil: none).
	Logger *slog.Logger
	// Access receives one access-log line per message (nil: none).
	Access *accesslog.Logger
	// Metrics, when set, count the messages, retries and dead letters.
	Metrics *Metrics
}

// NewBridge returns a bridge for the rules of the generation rules returns,
// once per message, with the function that gives them back once the message
// is handled. Replies and dead letters are published on br.
func NewBridge(rules func() (*Rules, func()), br Broker, opts BridgeOptions) *Bridge {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Bridge{rules: rules, broker: br, noRule: opts.DeadLetter, forward: ingress.NewForwarder(opts.ForwardHeaders), log: log, access: opts.Access, metrics: opts.Metrics}
}

// Filters returns the subscription filters of the rules, for an external
// broker, with the QoS of each.
func (rs *Rules) Filters() map[string]byte {
	out := make(map[string]byte, len(rs.List))
	for _, r := range rs.List {
		out[r.Subscription()] = max(out[r.Subscription()], r.QoS())
	}
	return out
}

// Matches reports whether some rule takes topic.
func (rs *Rules) Matches(topic string) bool {
	r, _ := rs.find(topic)
	return r != nil
}

func (rs *Rules) find(topic string) (*Rule, []string) {
	for _, r := range rs.List {
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
	var rec *accesslog.Record
	if b.access != nil {
		rec = &accesslog.Record{Start: time.Now(), Protocol: string(router.MQTT), Method: "PUBLISH", Path: m.Topic, BytesIn: int64(len(m.Payload))}
		if m.Sender != nil {
			rec.Peer = m.Sender.Peer.String()
		}
		ctx = accesslog.NewContext(ctx, rec)
		defer b.access.Write(rec)
	}
	b.metrics.received()
	rules, done := b.rules()
	defer done()
	rule, vals := rules.find(m.Topic)
	var err error
	attempts := 0
	if rule == nil {
		err = errNoRule(m.Topic)
	} else {
		attempts, err = b.call(ctx, rules, rule, vals, m)
	}
	b.metrics.retried(attempts)
	if err != nil && ctx.Err() == nil {
		b.metrics.deadLetter()
		b.deadLetter(ctx, rules, rule, vals, m, err, attempts)
	}
	if rec != nil && !rec.HasCode { // no rule, no chain
		rec.Code, rec.HasCode = status.Code(errorStatus(err)), true
	}
	return err
}

func clientID(m *Message) string {
	if m.Sender == nil {
		return ""
	}
	return m.Sender.ClientID
}

// call runs the rule's chain, whose dispatch retries transient upstream
// failures of a QoS 1 message with backoff, and publishes the reply. It
// returns the number of upstream attempts made and the error.
func (b *Bridge) call(ctx context.Context, rules *Rules, rule *Rule, vals []string, m *Message) (int, error) {
	enc := rule.encoding(m)
	u := b.newCall(rule, vals, m, enc)
	c := &u.call
	if m.QoS > 0 && rule.cfg.Retry.Attempts > 1 {
		u.retry = router.Retry{Attempts: rule.cfg.Retry.Attempts, Backoff: rule.cfg.Retry.Backoff, MaxBackoff: rule.cfg.Retry.MaxBackoff}
		c.Retry = &u.retry
	}
	err := rule.Route.Handler.Handle(ctx, c)
	if err == nil && rule.Binding == nil && c.Reply != nil && c.Reply.HTTPStatus >= 300 {
		err = status.Errorf(translate.CodeFromHTTP(c.Reply.HTTPStatus), "the HTTP upstream answered %d", c.Reply.HTTPStatus)
	}
	if ctx.Err() != nil {
		return c.Attempts, ctx.Err() // shutting down: no reply, no dead letter
	}
	b.reply(ctx, rules, rule, vals, m, enc, c, err)
	return c.Attempts, err
}

// uplinkCall is the call of one message with what it points to, allocated
// at once: a message costs one allocation here rather than one per part.
type uplinkCall struct {
	call  router.Call
	creds router.Credentials
	retry router.Retry
	// The values of the call's mqtt-topic, x-mqtt-topic and
	// x-mqtt-client-id, each its own array so that a step changing one
	// changes no other.
	topicIn, topicOut, clientID [1]string
	m                           *Message
	rule                        *Rule
	vals                        []string
	enc                         Payload
}

// decode is the call's Decode: the message's request in wire form.
func (u *uplinkCall) decode() ([]byte, error) { return u.rule.decode(u.m, u.vals, u.enc) }

// newCall builds the protocol-neutral call of a message, decoded with enc
// when the chain asks: with the topic's owner segment, when the rule names
// one, for the chain's owner step.
func (b *Bridge) newCall(rule *Rule, vals []string, m *Message, enc Payload) *uplinkCall {
	u := &uplinkCall{m: m, rule: rule, vals: vals, enc: enc}
	u.topicIn[0], u.topicOut[0] = m.Topic, m.Topic
	// A message's credentials are its CONNECT's (c.Credentials, the
	// certificate): user properties that would be credentials, or the
	// forwarding headers the client address is read from, are not shown to
	// the policies.
	in := make(metadata.MD, 1+len(m.UserProperties))
	in["mqtt-topic"] = u.topicIn[:]
	for _, p := range m.UserProperties {
		k := strings.ToLower(p.Key)
		if strings.HasPrefix(k, ":") || ingress.GatewaySet(k) || slices.Contains(ingress.Credentials, k) || k == "mqtt-topic" {
			continue
		}
		in[k] = append(in[k], p.Value)
	}
	c := &u.call
	*c = router.Call{
		Route:    rule.Route,
		Protocol: router.MQTT,
		Incoming: in,
		Metadata: b.forwarded(m.UserProperties),
		Target:   rule.Route.Target,
		Decode:   u.decode,
	}
	c.Metadata["x-mqtt-topic"] = u.topicOut[:]
	if rule.Binding == nil { // an HTTP upstream: the segments go into its path
		escaped := make([]string, len(vals))
		for i, v := range vals {
			escaped[i] = url.PathEscape(v)
		}
		c.Target = rule.expand(c.Target, escaped)
		c.Metadata["content-type"] = []string{contentType(m)}
	}
	if s := m.Sender; s != nil {
		if rule.owner >= 0 {
			c.Owner = vals[rule.owner]
		}
		c.Peer = s.Peer
		c.PeerCertificates = s.Certificates
		u.creds = router.Credentials{ClientID: s.ClientID, Username: s.Username, Password: s.Password}
		c.Credentials = &u.creds
		u.clientID[0] = s.ClientID
		c.Metadata["x-mqtt-client-id"] = u.clientID[:]
	}
	return u
}

// forwarded is the metadata the user properties props give the upstream:
// those the forward list allows, as HTTP headers are chosen (see
// ingress.Forwarder.Properties: never a credential, a reserved key or one
// the gateway sets, such as x-mqtt-* and x-forwarded-*), less cookies and
// properties gRPC metadata cannot carry (a key or a text value outside
// printable ASCII).
func (b *Bridge) forwarded(props []UserProperty) metadata.MD {
	if len(props) == 0 {
		return make(metadata.MD, 3) // the gateway's x-mqtt-* keys, content-type
	}
	h := make(http.Header, len(props))
	for _, p := range props {
		h.Add(p.Key, p.Value)
	}
	md := b.forward.Properties(h)
	delete(md, "cookie")
	return md
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
func (b *Bridge) reply(ctx context.Context, rules *Rules, rule *Rule, vals []string, m *Message, enc Payload, c *router.Call, callErr error) {
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
		out.Payload = translate.StatusJSON(translate.StatusOf(errorStatus(callErr)), rules.Resolver)
		out.ContentType = "application/json"
	case enc == Proto:
		out.Payload, out.ContentType = c.Reply.Message, "application/protobuf"
	case rule.Binding == nil:
		out.Payload, out.ContentType = c.Reply.Message, c.Reply.ContentType
	default:
		resp, err := rule.Binding.EncodeResponse(c.Reply.Message)
		if err != nil {
			st := &spb.Status{Code: int32(codes.Internal), Message: "undecodable upstream response: " + err.Error()}
			out.Payload, out.ContentType = translate.StatusJSON(st, rules.Resolver), "application/json"
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
func (b *Bridge) deadLetter(ctx context.Context, rules *Rules, rule *Rule, vals []string, m *Message, callErr error, attempts int) {
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
		Attempts: attempts, Error: translate.StatusJSON(st, rules.Resolver),
	})
	if err := b.broker.Publish(ctx, &Message{Topic: topic, Payload: rec, QoS: 1, ContentType: "application/json"}); err != nil {
		b.log.LogAttrs(ctx, slog.LevelError, "mqtt dead letter not published", slog.String("topic", m.Topic), slog.String("dead_letter", topic), slog.String("error", err.Error()))
	}
}
