package mqtt

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	iotv1 "github.com/rosettagw/rosetta/proto/example/iot/v1"
	"github.com/rosettagw/rosetta/translate"
)

func method(name string) protoreflect.MethodDescriptor {
	return iotv1.File_example_iot_v1_iot_proto.Services().ByName("DeviceService").Methods().ByName(protoreflect.Name(name))
}

func mustRule(t *testing.T, cfg RuleConfig) *Rule {
	t.Helper()
	if cfg.Method == nil {
		cfg.Method = method("Record")
	}
	r, err := NewRule(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestNewRuleErrors(t *testing.T) {
	for _, c := range []struct {
		cfg  RuleConfig
		want string
	}{
		{RuleConfig{Filter: ""}, "empty topic filter"},
		{RuleConfig{Filter: "a/#/b"}, "# must be the last level"},
		{RuleConfig{Filter: "a//b"}, "empty topic level"},
		{RuleConfig{Filter: "a/b+"}, "stand alone"},
		{RuleConfig{Filter: "a/{device_id=x/y}"}, "one topic level"},
		{RuleConfig{Filter: "a/{nope}"}, `no field "nope"`},
		{RuleConfig{Filter: "a/{device_id}", Owner: "id"}, `owner "id" is not a named segment`},
		{RuleConfig{Filter: "a/{device_id}", Reply: "r/{id}"}, "{id} is not a named segment"},
		{RuleConfig{Filter: "a/{device_id}", DeadLetter: "d/+"}, "no wildcard"},
		{RuleConfig{Filter: "a/{device_id}", Payload: Raw}, "a raw payload needs body"},
		{RuleConfig{Filter: "a/{device_id}", Payload: Raw, Body: "id"}, "bytes or google.api.HttpBody"},
		{RuleConfig{Filter: "a/{device_id}", Payload: "xml"}, `payload "xml"`},
		{RuleConfig{Filter: "a/{device_id}", Payload: Proto, Body: "reading"}, "a proto payload is the whole request"},
		{RuleConfig{Filter: "a/{device_id}", QoS: 2}, "QoS 0 and 1"},
	} {
		c.cfg.Method = method("Record")
		_, err := NewRule(c.cfg)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: error %v, want one containing %q", c.cfg.Filter, err, c.want)
		}
	}
}

func TestRuleMatch(t *testing.T) {
	for _, c := range []struct {
		filter, topic string
		vals          []string // nil: no match
	}{
		{"devices/{device_id}/telemetry", "devices/d1/telemetry", []string{"d1"}},
		{"devices/{device_id}/telemetry", "devices/d1/other", nil},
		{"devices/{device_id}/telemetry", "devices/d1/telemetry/x", nil},
		{"devices/{device_id}/telemetry", "devices/d1", nil},
		{"+/{device_id}/{id}", "site/d1/m7", []string{"d1", "m7"}},
		{"devices/{device_id}/#", "devices/d1", []string{"d1"}},
		{"devices/{device_id}/#", "devices/d1/a/b/c", []string{"d1"}},
		{"devices/{device_id}/#", "other/d1/a", nil},
	} {
		r := mustRule(t, RuleConfig{Filter: c.filter})
		vals, ok := r.match(c.topic)
		if ok != (c.vals != nil) || (ok && !slices.Equal(vals, c.vals)) {
			t.Errorf("%s on %s: %v %v, want %v", c.filter, c.topic, vals, ok, c.vals)
		}
	}
}

func decodeRecord(t *testing.T, r *Rule, m *Message) (*iotv1.RecordRequest, error) {
	t.Helper()
	vals, ok := r.match(m.Topic)
	if !ok {
		t.Fatalf("%s does not match %s", m.Topic, r.Filter)
	}
	wire, err := r.decode(m, vals, r.encoding(m))
	if err != nil {
		return nil, err
	}
	var req iotv1.RecordRequest
	if err := proto.Unmarshal(wire, &req); err != nil {
		t.Fatal(err)
	}
	return &req, nil
}

func TestRuleDecode(t *testing.T) {
	jsonRule := mustRule(t, RuleConfig{Filter: "devices/{device_id}/telemetry"})
	protoRule := mustRule(t, RuleConfig{Filter: "devices/{device_id}/pb", Payload: Proto})
	pb, _ := proto.Marshal(&iotv1.RecordRequest{DeviceId: "spoofed", Id: "p1", Reading: &iotv1.Reading{Temperature: 3}})
	for _, c := range []struct {
		name string
		rule *Rule
		m    *Message
		want *iotv1.RecordRequest
	}{
		{"json; the topic wins", jsonRule, &Message{Topic: "devices/d%2F1/telemetry", Payload: []byte(`{"deviceId":"spoofed","id":"j1","reading":{"humidity":4}}`)},
			&iotv1.RecordRequest{DeviceId: "d%2F1", Id: "j1", Reading: &iotv1.Reading{Humidity: 4}}},
		{"empty json", jsonRule, &Message{Topic: "devices/d1/telemetry"}, &iotv1.RecordRequest{DeviceId: "d1"}},
		{"proto; the topic wins", protoRule, &Message{Topic: "devices/d1/pb", Payload: pb},
			&iotv1.RecordRequest{DeviceId: "d1", Id: "p1", Reading: &iotv1.Reading{Temperature: 3}}},
		{"content type protobuf on a json rule", jsonRule, &Message{Topic: "devices/d1/telemetry", Payload: pb, ContentType: "application/protobuf"},
			&iotv1.RecordRequest{DeviceId: "d1", Id: "p1", Reading: &iotv1.Reading{Temperature: 3}}},
		{"content type json on a proto rule", protoRule, &Message{Topic: "devices/d1/pb", Payload: []byte(`{"id":"j2"}`), ContentType: "application/json; charset=utf-8"},
			&iotv1.RecordRequest{DeviceId: "d1", Id: "j2"}},
	} {
		got, err := decodeRecord(t, c.rule, c.m)
		if err != nil || !proto.Equal(got, c.want) {
			t.Errorf("%s: %v, %v; want %v", c.name, got, err, c.want)
		}
	}
	for _, c := range []struct {
		name string
		rule *Rule
		m    *Message
	}{
		{"bad json", jsonRule, &Message{Topic: "devices/d1/telemetry", Payload: []byte(`{"reading":`)}},
		{"unknown field", jsonRule, &Message{Topic: "devices/d1/telemetry", Payload: []byte(`{"colour":1}`)}},
		{"bad proto", protoRule, &Message{Topic: "devices/d1/pb", Payload: []byte{0xff, 0xff}}},
	} {
		_, err := decodeRecord(t, c.rule, c.m)
		var bad *translate.BadRequestError
		if !errors.As(err, &bad) {
			t.Errorf("%s: error %v, want a BadRequestError", c.name, err)
		}
	}
}

func TestRuleDecodeRaw(t *testing.T) {
	bytesRule := mustRule(t, RuleConfig{Filter: "devices/{device_id}/upload", Method: method("Upload"), Payload: Raw, Body: "data"})
	vals, _ := bytesRule.match("devices/d1/upload")
	wire, err := bytesRule.decode(&Message{Payload: []byte("\x00raw")}, vals, Raw)
	var up iotv1.UploadRequest
	if err != nil || proto.Unmarshal(wire, &up) != nil || up.GetDeviceId() != "d1" || string(up.GetData()) != "\x00raw" {
		t.Errorf("raw bytes: %v %v", &up, err)
	}
	bodyRule := mustRule(t, RuleConfig{Filter: "devices/{device_id}/blob", Method: method("UploadBody"), Payload: Raw, Body: "body"})
	vals, _ = bodyRule.match("devices/d2/blob")
	// An MQTT 5 content type does not turn a raw rule into JSON.
	wire, err = bodyRule.decode(&Message{Payload: []byte(`{}`), ContentType: "application/json"}, vals, bodyRule.encoding(&Message{ContentType: "application/json"}))
	var ub iotv1.UploadBodyRequest
	if err != nil || proto.Unmarshal(wire, &ub) != nil || ub.GetDeviceId() != "d2" || string(ub.GetBody().GetData()) != "{}" || ub.GetBody().GetContentType() != "application/json" {
		t.Errorf("raw HttpBody: %v %v", &ub, err)
	}
}

func TestMatchFilter(t *testing.T) {
	for _, c := range []struct {
		filter, topic string
		want          bool
	}{
		{"a/b", "a/b", true},
		{"a/b", "a/c", false},
		{"a/+", "a/b", true},
		{"a/+", "a/b/c", false},
		{"a/+", "a", false},
		{"a/#", "a", true},
		{"a/#", "a/b/c", true},
		{"#", "a/b", true},
		{"+/+/x", "a/b/x", true},
		{"a/b/c", "a/b", false},
	} {
		if got := MatchFilter(c.filter, c.topic); got != c.want {
			t.Errorf("MatchFilter(%q, %q) = %v", c.filter, c.topic, got)
		}
	}
}

func TestCovers(t *testing.T) {
	for _, c := range []struct {
		allowed, filter string
		want            bool
	}{
		{"devices/d1/#", "devices/d1/commands", true},
		{"devices/d1/#", "devices/d1/#", true},
		{"devices/d1/#", "devices/d1", true},
		{"devices/d1/#", "devices/+/commands", false},
		{"devices/d1/#", "devices/#", false},
		{"devices/d1/#", "#", false},
		{"devices/+/x", "devices/d1/x", true},
		{"devices/+/x", "devices/+/x", true},
		{"devices/+/x", "devices/d1/y", false},
		{"devices/+/x", "devices/d1/x/y", false},
		{"a/b", "a/b", true},
		{"a/b", "a/+", false},
	} {
		if got := covers(c.allowed, c.filter); got != c.want {
			t.Errorf("covers(%q, %q) = %v", c.allowed, c.filter, got)
		}
	}
}
