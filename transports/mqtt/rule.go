package mqtt

import (
	"fmt"
	"mime"
	"net/url"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/rosettagw/rosetta/router"
	"github.com/rosettagw/rosetta/translate"
)

// Payload says how a message payload maps onto the request message.
type Payload string

// The payload encodings.
const (
	// JSON is the proto3 JSON mapping of the request (or of its body field).
	JSON Payload = "json"
	// Proto is the request in binary protobuf form.
	Proto Payload = "proto"
	// Raw is the payload as bytes, into a bytes or google.api.HttpBody field.
	Raw Payload = "raw"
)

// Retry bounds the retries of a QoS 1 message after a transient upstream
// error (UNAVAILABLE, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED).
type Retry struct {
	// Attempts is the number of calls in all (default 5).
	Attempts int
	// Backoff is the first wait, doubled after each attempt up to MaxBackoff
	// (defaults 100ms and 5s).
	Backoff, MaxBackoff time.Duration
}

// RuleConfig describes one uplink rule.
type RuleConfig struct {
	// Filter is the topic filter with named segments, such as
	// "devices/{device_id}/telemetry"; "+" and a final "#" are allowed.
	// A named segment matches one topic level and sets the request field of
	// that path.
	Filter string
	// Method is the upstream method the messages call; nil for a plain
	// HTTP upstream, which gets the payload as its request body.
	Method protoreflect.MethodDescriptor
	// Payload is the payload encoding (default JSON). An MQTT 5 content
	// type of application/json or application/protobuf overrides JSON and
	// Proto.
	Payload Payload
	// Body is the request field the payload fills: for JSON, "" or "*"
	// means the whole request; for Raw it names a bytes or HttpBody field
	// (or is "*" when the request is an HttpBody).
	Body string
	// JSON and Resolver are the JSON mapping options and the schema's types.
	JSON     translate.JSONOptions
	Resolver translate.Resolver
	// Reply is a topic template ("devices/{device_id}/reply") the response,
	// or the error as a google.rpc.Status, is published to when the message
	// names no MQTT 5 response topic; "" sends no reply then.
	Reply string
	// DeadLetter is a topic template failed messages are published to with
	// their error; "" logs them instead.
	DeadLetter string
	// Owner names a segment that must equal the publishing device's
	// identity: its certificate's common name, else its username, else its
	// client ID. "" checks nothing.
	Owner string
	// QoS is the QoS the gateway subscribes with on an external broker.
	QoS byte
	// Retry bounds the retries of QoS 1 messages.
	Retry Retry
}

// Rule is one compiled uplink rule.
type Rule struct {
	// Filter is the topic filter as configured.
	Filter string
	// Template is the filter written as a path template
	// ("/devices/{device_id}/telemetry").
	Template *translate.Template
	// Binding maps messages onto the method (nil for an HTTP upstream); its
	// response mapping renders replies.
	Binding *translate.Binding
	// Route is the route messages are dispatched on; the caller sets it,
	// with the route's upstream and policy chain. For an HTTP upstream, the
	// named segments of the filter are substituted into its Target
	// ("POST /v1/devices/{device_id}/readings").
	Route *router.Route

	cfg      RuleConfig
	levels   []translate.Segment // one per topic level
	names    []string            // variable names, in order
	named    []bool              // whether each level is a named segment
	owner    int                 // index into names, or -1
	jsonB    *translate.Binding  // payload as JSON
	pathB    *translate.Binding  // named segments only
	rawField protoreflect.FieldDescriptor
	input    protoreflect.MessageType
}

// NewRule compiles an uplink rule.
func NewRule(cfg RuleConfig) (*Rule, error) {
	r, err := newRule(cfg)
	if err != nil {
		return nil, fmt.Errorf("mqtt rule %q: %w", cfg.Filter, err)
	}
	return r, nil
}

func newRule(cfg RuleConfig) (*Rule, error) {
	if cfg.Payload == "" {
		cfg.Payload = JSON
	}
	if cfg.Retry.Attempts <= 0 {
		cfg.Retry.Attempts = 5
	}
	if cfg.Retry.Backoff <= 0 {
		cfg.Retry.Backoff = 100 * time.Millisecond
	}
	if cfg.Retry.MaxBackoff <= 0 {
		cfg.Retry.MaxBackoff = 5 * time.Second
	}
	if cfg.QoS > 1 {
		return nil, fmt.Errorf("qos %d: the bridge takes QoS 0 and 1", cfg.QoS)
	}
	path, err := filterPath(cfg.Filter)
	if err != nil {
		return nil, err
	}
	tmpl, err := translate.ParseTemplate(path)
	if err != nil {
		return nil, err
	}
	r := &Rule{Filter: cfg.Filter, Template: tmpl, cfg: cfg, levels: tmpl.Segments, named: make([]bool, len(tmpl.Segments)), owner: -1}
	for _, v := range tmpl.Variables {
		if v.End-v.Start != 1 || tmpl.Segments[v.Start].Kind != translate.Wildcard {
			return nil, fmt.Errorf("a named segment matches one topic level: write {%s}", strings.Join(v.FieldPath, "."))
		}
		name := strings.Join(v.FieldPath, ".")
		r.named[v.Start] = true
		r.names = append(r.names, name)
		if name == cfg.Owner {
			r.owner = len(r.names) - 1
		}
	}
	if cfg.Owner != "" && r.owner < 0 {
		return nil, fmt.Errorf("owner %q is not a named segment of the filter", cfg.Owner)
	}
	for what, t := range map[string]string{"reply": cfg.Reply, "dead_letter": cfg.DeadLetter} {
		if err := r.checkTopicTemplate(t); err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
	}
	if cfg.Method == nil {
		if cfg.Payload != JSON && cfg.Payload != Raw || cfg.Body != "" {
			return nil, fmt.Errorf("an HTTP upstream takes the payload as it is: no payload or body choice")
		}
		r.cfg.Payload = Raw
		return r, nil
	}
	r.input = dynamicpb.NewMessageType(cfg.Method.Input())
	newBinding := func(body string) (*translate.Binding, error) {
		return translate.NewBinding(cfg.Method, "MQTT", path, body, "", cfg.JSON, cfg.Resolver)
	}
	if r.pathB, err = newBinding(""); err != nil {
		return nil, err
	}
	switch cfg.Payload {
	case JSON, Proto:
		body := cfg.Body
		if body == "" {
			body = "*"
		}
		if r.jsonB, err = newBinding(body); err != nil {
			return nil, err
		}
		r.Binding = r.jsonB
		if cfg.Payload == Proto {
			if body != "*" {
				return nil, fmt.Errorf("a proto payload is the whole request; body %q is for json or raw", body)
			}
			r.Binding = r.pathB
		}
	case Raw:
		if err := r.compileRaw(newBinding); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("payload %q: want json, proto or raw", cfg.Payload)
	}
	return r, nil
}

// compileRaw resolves the field a raw payload goes into.
func (r *Rule) compileRaw(newBinding func(string) (*translate.Binding, error)) error {
	if r.cfg.Body == "" {
		return fmt.Errorf("a raw payload needs body: the bytes or google.api.HttpBody field it fills")
	}
	b, err := newBinding(r.cfg.Body)
	if err != nil {
		return err
	}
	if b.RawBody() {
		r.jsonB, r.Binding = b, b
		return nil
	}
	fd := r.cfg.Method.Input().Fields().ByName(protoreflect.Name(r.cfg.Body))
	if fd == nil || fd.Kind() != protoreflect.BytesKind || fd.IsList() {
		return fmt.Errorf("body %q: a raw payload goes into a bytes or google.api.HttpBody field", r.cfg.Body)
	}
	r.rawField, r.Binding = fd, r.pathB
	return nil
}

// filterPath writes a topic filter as a path template: "+" becomes "*" and
// "#" becomes "**".
func filterPath(filter string) (string, error) {
	if filter == "" {
		return "", fmt.Errorf("empty topic filter")
	}
	levels := strings.Split(filter, "/")
	for i, l := range levels {
		switch {
		case l == "+":
			levels[i] = "*"
		case l == "#":
			if i != len(levels)-1 {
				return "", fmt.Errorf("# must be the last level")
			}
			levels[i] = "**"
		case l == "":
			return "", fmt.Errorf("empty topic level")
		case strings.ContainsAny(l, "+#*:"):
			return "", fmt.Errorf("level %q: + and # stand alone, and * and : are not allowed", l)
		}
	}
	return "/" + strings.Join(levels, "/"), nil
}

// checkTopicTemplate checks that a topic template names only segments of
// the filter and has no wildcard.
func (r *Rule) checkTopicTemplate(t string) error {
	if strings.ContainsAny(t, "+#") {
		return fmt.Errorf("topic %q: a topic to publish to has no wildcard", t)
	}
	for rest := t; ; {
		i := strings.IndexByte(rest, '{')
		if i < 0 {
			return nil
		}
		j := strings.IndexByte(rest[i:], '}')
		if j < 0 {
			return fmt.Errorf("topic %q: unterminated {", t)
		}
		name := rest[i+1 : i+j]
		found := false
		for _, n := range r.names {
			found = found || n == name
		}
		if !found {
			return fmt.Errorf("topic %q: {%s} is not a named segment of %s", t, name, r.Filter)
		}
		rest = rest[i+j+1:]
	}
}

// Subscription is the filter an external broker is subscribed with: the
// rule's filter with named segments as "+".
func (r *Rule) Subscription() string {
	return subscriptionFilter(r.Filter)
}

// subscriptionFilter replaces the named segments of a topic template by "+".
func subscriptionFilter(t string) string {
	levels := strings.Split(t, "/")
	for i, l := range levels {
		if strings.HasPrefix(l, "{") && strings.HasSuffix(l, "}") {
			levels[i] = "+"
		}
	}
	return strings.Join(levels, "/")
}

// QoS is the rule's subscription QoS.
func (r *Rule) QoS() byte { return r.cfg.QoS }

// match returns the values of the named segments when topic matches the rule.
func (r *Rule) match(topic string) ([]string, bool) {
	var vals []string
	rest, more := topic, true
	for i, s := range r.levels {
		if s.Kind == translate.DeepWildcard {
			return vals, true
		}
		if !more {
			return nil, false
		}
		var level string
		level, rest, more = strings.Cut(rest, "/")
		if s.Kind == translate.Literal && level != s.Text {
			return nil, false
		}
		if r.named[i] {
			if vals == nil {
				vals = make([]string, 0, len(r.names))
			}
			vals = append(vals, level)
		}
	}
	return vals, !more
}

// expand fills a topic template with the values of the named segments.
func (r *Rule) expand(t string, vals []string) string {
	if t == "" || !strings.Contains(t, "{") {
		return t
	}
	for i, n := range r.names {
		t = strings.ReplaceAll(t, "{"+n+"}", vals[i])
	}
	return t
}

// encoding returns how m's payload is decoded: an MQTT 5 content type of
// JSON or protobuf overrides the rule's choice between the two.
func (r *Rule) encoding(m *Message) Payload {
	if r.cfg.Payload == Raw || m.ContentType == "" {
		return r.cfg.Payload
	}
	mt, _, _ := mime.ParseMediaType(m.ContentType)
	switch mt {
	case "application/json":
		return JSON
	case "application/protobuf", "application/x-protobuf", "application/vnd.google.protobuf":
		return Proto
	}
	return r.cfg.Payload
}

// decode builds the request in wire form from m and the named segments'
// values. A payload that cannot be decoded is a *translate.BadRequestError.
func (r *Rule) decode(m *Message, vals []string, enc Payload) ([]byte, error) {
	if r.cfg.Method == nil {
		return m.Payload, nil
	}
	escaped := vals
	for i, v := range vals {
		if e := url.PathEscape(v); e != v {
			if &escaped[0] == &vals[0] {
				escaped = slices.Clone(vals)
			}
			escaped[i] = e
		}
	}
	req := &translate.Request{PathValues: escaped, Body: m.Payload, ContentType: m.ContentType}
	if enc == JSON || (enc == Raw && r.rawField == nil) {
		return r.jsonB.DecodeRequest(req)
	}
	// The named segments' fields, appended to the payload's fields: in the
	// protobuf wire format the later value of a field wins, so a device
	// cannot override what its topic says.
	req.Body = nil
	segments, err := r.pathB.DecodeRequest(req)
	if err != nil {
		return nil, err
	}
	var wire []byte
	if enc == Raw {
		wire = protowire.AppendTag(nil, r.rawField.Number(), protowire.BytesType)
		wire = protowire.AppendBytes(wire, m.Payload)
	} else {
		if err := proto.Unmarshal(m.Payload, r.input.New().Interface()); err != nil {
			return nil, &translate.BadRequestError{Description: fmt.Sprintf("invalid protobuf payload for %s: %v", r.cfg.Method.Input().FullName(), err)}
		}
		wire = append(wire, m.Payload...)
	}
	return append(wire, segments...), nil
}
