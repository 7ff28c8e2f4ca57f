package mqtt

import (
	"context"
	"encoding/json"
	"reflect"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	iotv1 "github.com/rosettagw/rosetta/proto/example/iot/v1"
	"github.com/rosettagw/rosetta/transports/ingress"
)

var commands = iotv1.File_example_iot_v1_iot_proto.Services().ByName("DeviceCommands")

// TestPublisherMethod publishes the commands of a gRPC method: the request's
// device_id names the topic, the rest is the JSON payload, and the device's
// reply is decoded into the method's response.
func TestPublisherMethod(t *testing.T) {
	br := &fakeBroker{}
	p, err := NewPublisher(br, PublishConfig{Topic: "devices/{device_id}/commands", QoS: 1, Method: commands.Methods().ByName("Send")})
	if err != nil {
		t.Fatal(err)
	}
	req, _ := proto.Marshal(&iotv1.Command{DeviceId: "d1", Name: "led", Args: map[string]string{"state": "on"}})
	reply, err := p.Invoke(context.Background(), "/example.iot.v1.DeviceCommands/Send", req, nil)
	if err != nil || len(reply.Message) != 0 {
		t.Fatalf("reply %v %v", reply, err)
	}
	m := br.on("devices/d1/commands")
	if len(m) != 1 || m[0].QoS != 1 || m[0].ContentType != "application/json" {
		t.Fatalf("published %+v", br.published)
	}
	var got map[string]any
	if err := json.Unmarshal(m[0].Payload, &got); err != nil || !reflect.DeepEqual(got, map[string]any{"name": "led", "args": map[string]any{"state": "on"}}) {
		t.Errorf("payload %s (%v)", m[0].Payload, err)
	}
	for _, bad := range [][]byte{{0xff}, mustMarshal(t, &iotv1.Command{}), mustMarshal(t, &iotv1.Command{DeviceId: "a/b"})} {
		if _, err := p.Invoke(context.Background(), "", bad, nil); status.Code(err) != codes.InvalidArgument {
			t.Errorf("request %x: %v, want INVALID_ARGUMENT", bad, err)
		}
	}

	// Wait for the reply; one that is not a CommandReply is an error.
	call, err := NewPublisher(br, PublishConfig{Topic: "devices/{device_id}/commands", Wait: MaxWait, Method: commands.Methods().ByName("Call")})
	if err != nil {
		t.Fatal(err)
	}
	answer := `{"ok":true,"message":"done"}`
	br.answer = func(m *Message) {
		if m.ResponseTopic != "" {
			br.Publish(context.Background(), &Message{Topic: m.ResponseTopic, Payload: []byte(answer), CorrelationData: m.CorrelationData})
		}
	}
	reply, err = call.Invoke(context.Background(), "", req, nil)
	var cr iotv1.CommandReply
	if err != nil || proto.Unmarshal(reply.Message, &cr) != nil || !cr.Ok || cr.Message != "done" {
		t.Errorf("reply %v %v", reply, err)
	}
	answer = `{"ok":"perhaps"}`
	if _, err := call.Invoke(context.Background(), "", req, nil); status.Code(err) != codes.Internal {
		t.Errorf("undecodable reply: %v, want INTERNAL", err)
	}

	watch, err := WatchMethod([]string{"device_id"})
	if err != nil {
		t.Fatal(err)
	}
	for _, cfg := range []PublishConfig{
		{Topic: "devices/{id}/commands", Method: commands.Methods().ByName("Send")}, // no field id
		{Topic: "devices/{name}/{args}", Method: commands.Methods().ByName("Send")}, // args is a map
		{Topic: "devices/{device_id}/commands", Method: watch},                      // a stream
	} {
		if _, err := NewPublisher(br, cfg); err == nil {
			t.Errorf("%s %s: no error", cfg.Topic, cfg.Method.FullName())
		}
	}
}

// TestStateReaderMethod reads the last telemetry of the device a request
// names, as the method's response.
func TestStateReaderMethod(t *testing.T) {
	s := NewState(0, nil)
	r, err := NewStateReader(s, "devices/{device_id}/telemetry", commands.Methods().ByName("GetTelemetry"), nil)
	if err != nil {
		t.Fatal(err)
	}
	req := mustMarshal(t, &iotv1.GetDeviceRequest{DeviceId: "d1"})
	if _, err := r.Invoke(context.Background(), "", req, nil); status.Code(err) != codes.NotFound {
		t.Errorf("no state yet: %v", err)
	}
	s.Observe(&Message{Topic: "devices/d1/telemetry", Payload: []byte(`{"id":"m1","reading":{"temperature":21.5}}`)})
	reply, err := r.Invoke(context.Background(), "", req, nil)
	var got iotv1.RecordRequest
	if err != nil || proto.Unmarshal(reply.Message, &got) != nil || got.Id != "m1" || got.Reading.GetTemperature() != 21.5 {
		t.Errorf("reply %v %v", reply, err)
	}
	pb := mustMarshal(t, &iotv1.RecordRequest{Id: "m2"})
	s.Observe(&Message{Topic: "devices/d1/telemetry", Payload: pb, ContentType: "application/protobuf"})
	if reply, err = r.Invoke(context.Background(), "", req, nil); err != nil || !proto.Equal(mustUnmarshal(t, reply.Message), &iotv1.RecordRequest{Id: "m2"}) {
		t.Errorf("protobuf state: %v %v", reply, err)
	}
	if reply.Header.Get("mqtt-topic")[0] != "devices/d1/telemetry" {
		t.Errorf("header %v", reply.Header)
	}
}

// TestForwardedUserProperties forwards the allow-listed user properties
// and grpc-metadata-* ones as metadata, never credentials nor the
// gateway's own keys.
func TestForwardedUserProperties(t *testing.T) {
	up := &upstream{}
	b, _, seen := newTestBridge(t, up, RuleConfig{Filter: "devices/{device_id}/telemetry"})
	b.forward = ingress.NewForwarder([]string{"X-Tenant", "Authorization"})
	m := &Message{Topic: "devices/d1/telemetry", Payload: []byte(`{}`), UserProperties: []UserProperty{
		{"X-Tenant", "acme"}, {"x-tenant", "beta"}, {"Authorization", "Bearer secret"}, {"grpc-metadata-trace", "t1"},
		{"x-other", "dropped"}, {"grpc-metadata-x-mqtt-topic", "spoofed"}, {"grpc-metadata-cookie", "c"}, {"grpc-metadata-bad key", "v"},
		{"grpc-metadata-utf", "caf\u00e9"}, {"X-Api-Key", "k"}, {"X-Forwarded-For", "1.2.3.4"}, {"Forwarded", "for=1.2.3.4"},
		{":rosetta-forward-authorization", "1"}, {"grpc-metadata-x-forwarded-for", "1.2.3.4"},
	}}
	if err := b.Uplink(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	want := metadata.MD{"x-tenant": {"acme", "beta"}, "trace": {"t1"}, "x-mqtt-topic": {"devices/d1/telemetry"}}
	if got := (*seen)[0].Metadata; !reflect.DeepEqual(got, want) {
		t.Errorf("metadata %v, want %v", got, want)
	}
	// A message's credential is its CONNECT's: a credential or forwarding
	// user property is not shown to the policies either (issue 14).
	for _, k := range []string{"authorization", "x-api-key", "x-forwarded-for", "forwarded", ":rosetta-forward-authorization"} {
		if got := (*seen)[0].Incoming[k]; len(got) != 0 {
			t.Errorf("the policies see the user property %s: %v", k, (*seen)[0].Incoming)
		}
	}
}

func mustMarshal(t *testing.T, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustUnmarshal(t *testing.T, b []byte) *iotv1.RecordRequest {
	t.Helper()
	var m iotv1.RecordRequest
	if err := proto.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return &m
}
