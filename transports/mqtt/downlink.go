package mqtt

import (
	"github.com/rosettagw/rosetta/tracing"

	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/rosettagw/rosetta/router"
	"github.com/rosettagw/rosetta/translate"
)

// MaxWait bounds how long a downlink call may wait for a device's reply.
const MaxWait = time.Minute

// topicTemplate is a topic with named levels, "devices/{device_id}/commands".
type topicTemplate struct {
	src    string
	levels []string
}

func parseTopicTemplate(t string) (*topicTemplate, error) {
	if t == "" || strings.ContainsAny(t, "+#") {
		return nil, fmt.Errorf("topic %q: want a topic without wildcards", t)
	}
	return &topicTemplate{src: t, levels: strings.Split(t, "/")}, nil
}

// resolve checks a topic made from the template by the REST ingress (named
// levels replaced by escaped path values) and returns it unescaped, with the
// values of the named levels by name. A value must be one non-empty level
// without wildcards.
func (tt *topicTemplate) resolve(topic string) (string, map[string]string, error) {
	levels := strings.Split(topic, "/")
	if len(levels) != len(tt.levels) {
		return "", nil, status.Errorf(codes.InvalidArgument, "topic %q does not match %s", topic, tt.src)
	}
	vals := map[string]string{}
	for i, l := range tt.levels {
		if !strings.HasPrefix(l, "{") || !strings.HasSuffix(l, "}") {
			continue
		}
		v, err := url.PathUnescape(levels[i])
		if err != nil {
			return "", nil, status.Errorf(codes.InvalidArgument, "%s: %q is not a topic level", l, levels[i])
		}
		if err := checkLevel(l, v); err != nil {
			return "", nil, err
		}
		levels[i] = v
		vals[l[1:len(l)-1]] = v
	}
	return strings.Join(levels, "/"), vals, nil
}

// expand fills the template's named levels from vals.
func (tt *topicTemplate) expand(vals map[string]string) string {
	out := tt.src
	for k, v := range vals {
		out = strings.ReplaceAll(out, "{"+k+"}", v)
	}
	return out
}

// PublishConfig configures a downlink route.
type PublishConfig struct {
	// Topic is the topic template commands are published to; its named
	// levels are the route's path variables.
	Topic string
	// QoS and Retain are the defaults; a caller may choose others with the
	// qos and retain query parameters.
	QoS    byte
	Retain bool
	// Wait, when positive, makes the call wait that long for the device's
	// reply (a caller may choose with the wait query parameter, up to
	// MaxWait): a message on Reply, or else on an MQTT 5 response topic of
	// the gateway's own, with the request's correlation data.
	Wait  time.Duration
	Reply string
	// MaxPending bounds the calls waiting for a reply at once (default
	// 1024); beyond it calls fail with RESOURCE_EXHAUSTED.
	MaxPending int
	// Method, when set, is the unary gRPC method the route serves: the
	// request (protobuf wire form) names the topic with its string fields
	// named like the topic's named levels, the rest of it is published as
	// proto3 JSON, and the device's reply is decoded into the response. QoS,
	// retain and wait are then the route's. Unset, the request body is
	// published as it is, and the target carries the topic and the caller's
	// options.
	Method protoreflect.MethodDescriptor
	// Resolver resolves the Any types of Method's messages.
	Resolver translate.Resolver
}

// Publisher is the router.Invoker of a downlink route: it publishes the
// request body to the device topic named by the call's target and, when
// asked to wait, returns the device's reply.
type Publisher struct {
	broker  Broker
	topic   *topicTemplate
	reply   *topicTemplate
	cfg     PublishConfig
	codec   *methodCodec // nil: the body is the payload
	pending chan struct{}
}

// NewPublisher returns the invoker of a downlink route publishing on br.
func NewPublisher(br Broker, cfg PublishConfig) (*Publisher, error) {
	p := &Publisher{broker: br, cfg: cfg}
	var err error
	if p.topic, err = parseTopicTemplate(cfg.Topic); err != nil {
		return nil, err
	}
	if cfg.Reply != "" {
		if p.reply, err = parseTopicTemplate(cfg.Reply); err != nil {
			return nil, fmt.Errorf("reply: %w", err)
		}
	}
	if cfg.Method != nil {
		if p.codec, err = newMethodCodec(cfg.Method, p.topic, cfg.Resolver); err != nil {
			return nil, err
		}
	}
	if cfg.QoS > 1 {
		return nil, fmt.Errorf("qos %d: want 0 or 1", cfg.QoS)
	}
	if cfg.Wait > MaxWait {
		return nil, fmt.Errorf("wait %v is longer than %v", cfg.Wait, MaxWait)
	}
	if cfg.MaxPending <= 0 {
		cfg.MaxPending = 1024
	}
	p.pending = make(chan struct{}, cfg.MaxPending)
	return p, nil
}

// ReplyFilter is the filter devices publish their replies on: the reply
// topic's, or the gateway's own response topics'.
func (p *Publisher) ReplyFilter() string {
	if p.reply != nil {
		return subscriptionFilter(p.reply.src)
	}
	return replyPrefix + "+"
}

// replyPrefix starts the response topics the gateway makes up.
const replyPrefix = "rosetta/replies/"

// Invoke publishes body to target, a topic with an optional query of qos,
// retain and wait; or, with a Method, publishes the request's payload to the
// topic it names.
func (p *Publisher) Invoke(ctx context.Context, target string, body []byte, md metadata.MD) (*router.Reply, error) {
	var topic, query string
	var vals map[string]string
	var err error
	if p.codec != nil {
		topic, vals, body, err = p.codec.request(p.topic, body)
	} else {
		var raw string
		raw, query, _ = strings.Cut(target, "?")
		topic, vals, err = p.topic.resolve(raw)
	}
	if err != nil {
		return nil, err
	}
	m := &Message{Topic: topic, Payload: body, QoS: p.cfg.QoS, Retain: p.cfg.Retain}
	if json.Valid(body) {
		m.ContentType = "application/json"
	}
	for _, k := range tracing.Keys { // the call's trace goes on to the device
		if v := md[k]; len(v) > 0 {
			m.UserProperties = append(m.UserProperties, UserProperty{Key: k, Value: v[0]})
		}
	}
	wait := p.cfg.Wait
	if err := p.options(query, m, &wait); err != nil {
		return nil, err
	}
	if wait <= 0 {
		if err := p.broker.Publish(ctx, m); err != nil {
			return nil, status.Errorf(codes.Unavailable, "publish to %s: %v", topic, err)
		}
		if p.codec != nil { // the method's response, empty
			return &router.Reply{Header: metadata.Pairs("mqtt-topic", topic)}, nil
		}
		accepted, _ := json.Marshal(map[string]any{"topic": topic, "qos": m.QoS, "retain": m.Retain})
		return &router.Reply{Message: accepted, HTTPStatus: http.StatusAccepted, ContentType: "application/json"}, nil
	}
	select {
	case p.pending <- struct{}{}:
		defer func() { <-p.pending }()
	default:
		return nil, status.Errorf(codes.ResourceExhausted, "%d calls are already waiting for device replies", cap(p.pending))
	}
	return p.request(ctx, m, vals, wait)
}

// options applies the query parameters a caller may set.
func (p *Publisher) options(query string, m *Message, wait *time.Duration) error {
	if query == "" {
		return nil
	}
	q, err := url.ParseQuery(query)
	if err != nil {
		return status.Errorf(codes.InvalidArgument, "malformed query: %v", err)
	}
	for k, vs := range q {
		v := vs[len(vs)-1]
		switch k {
		case "qos":
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 || n > 1 {
				return status.Errorf(codes.InvalidArgument, "qos %q: want 0 or 1", v)
			}
			m.QoS = byte(n)
		case "retain":
			b, err := strconv.ParseBool(v)
			if err != nil {
				return status.Errorf(codes.InvalidArgument, "retain %q: want true or false", v)
			}
			m.Retain = b
		case "wait":
			d, err := time.ParseDuration(v)
			if err != nil || d < 0 || d > MaxWait {
				return status.Errorf(codes.InvalidArgument, "wait %q: want a duration up to %v", v, MaxWait)
			}
			*wait = d
		default:
			return status.Errorf(codes.InvalidArgument, "unknown query parameter %q (want qos, retain, wait)", k)
		}
	}
	return nil
}

// request publishes m and waits for the device's reply.
func (p *Publisher) request(ctx context.Context, m *Message, vals map[string]string, wait time.Duration) (*router.Reply, error) {
	var id [16]byte
	_, _ = rand.Read(id[:])
	m.CorrelationData = []byte(hex.EncodeToString(id[:]))
	if p.reply != nil {
		m.ResponseTopic = p.reply.expand(vals)
	} else {
		m.ResponseTopic = replyPrefix + string(m.CorrelationData)
	}
	got := make(chan *Message, 1)
	unsubscribe, err := p.broker.Subscribe(ctx, m.ResponseTopic, func(r *Message) {
		// A retained message is an old answer; a reply with other
		// correlation data answers another call.
		if r.Retain || (len(r.CorrelationData) > 0 && !bytes.Equal(r.CorrelationData, m.CorrelationData)) {
			return
		}
		select {
		case got <- r:
		default:
		}
	})
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "subscribe to %s: %v", m.ResponseTopic, err)
	}
	defer unsubscribe()
	if err := p.broker.Publish(ctx, m); err != nil {
		return nil, status.Errorf(codes.Unavailable, "publish to %s: %v", m.Topic, err)
	}
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case r := <-got:
		return reply(p.codec, r, metadata.Pairs("mqtt-topic", r.Topic))
	case <-timer.C:
		return nil, status.Errorf(codes.DeadlineExceeded, "no reply on %s within %v", m.ResponseTopic, wait)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// StateReader is the router.Invoker of a last-known-state route: it answers
// with the last message seen on the topic the call's target names.
type StateReader struct {
	state *State
	topic *topicTemplate
	codec *methodCodec // nil: the target names the topic
}

// NewStateReader returns the invoker of a state route over topic, a
// template whose named levels are the route's path variables; or, with a
// method, the request's string fields of the same names (see
// PublishConfig.Method): the last message is then decoded into the
// method's response. resolver resolves the Any types of its messages.
func NewStateReader(s *State, topic string, method protoreflect.MethodDescriptor, resolver translate.Resolver) (*StateReader, error) {
	tt, err := parseTopicTemplate(topic)
	if err != nil {
		return nil, err
	}
	r := &StateReader{state: s, topic: tt}
	if method != nil {
		if r.codec, err = newMethodCodec(method, tt, resolver); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// Filter is the subscription filter the state of the route is fed from.
func (r *StateReader) Filter() string { return subscriptionFilter(r.topic.src) }

// Invoke returns the last message of the target topic, or of the one the
// request names.
func (r *StateReader) Invoke(_ context.Context, target string, req []byte, _ metadata.MD) (*router.Reply, error) {
	var topic string
	var err error
	if r.codec != nil {
		topic, _, _, err = r.codec.request(r.topic, req)
	} else {
		raw, query, _ := strings.Cut(target, "?")
		if query != "" {
			return nil, status.Errorf(codes.InvalidArgument, "a state route takes no query parameters")
		}
		topic, _, err = r.topic.resolve(raw)
	}
	if err != nil {
		return nil, err
	}
	m, at, ok := r.state.Last(topic)
	if !ok {
		return nil, status.Errorf(codes.NotFound, "no message seen on %s", topic)
	}
	return reply(r.codec, m, metadata.Pairs("mqtt-topic", topic, "mqtt-retain", strconv.FormatBool(m.Retain), "mqtt-received-at", at.UTC().Format(time.RFC3339Nano)))
}

// reply answers a call with a device's message m: its payload as it is, or
// decoded into the response of the codec's method.
func reply(c *methodCodec, m *Message, header metadata.MD) (*router.Reply, error) {
	if c == nil {
		return &router.Reply{Message: m.Payload, HTTPStatus: http.StatusOK, ContentType: contentType(m), Header: header}, nil
	}
	wire, err := c.response(m)
	if err != nil {
		return nil, err
	}
	return &router.Reply{Message: wire, Header: header}, nil
}

// contentType is m's MQTT 5 content type, or else application/json for a
// JSON payload and application/octet-stream for another.
func contentType(m *Message) string {
	switch {
	case m.ContentType != "":
		return m.ContentType
	case json.Valid(m.Payload):
		return "application/json"
	}
	return "application/octet-stream"
}
