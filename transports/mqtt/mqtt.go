// Package mqtt is the MQTT bridge: device messages published to an MQTT
// broker become calls of gRPC (or HTTP) upstreams, through the same route
// chain as REST, and REST clients publish commands to devices and read their
// last known state.
//
// The broker is either embedded (github.com/mochi-mqtt/server/v2, the
// default: devices connect to the gateway itself, and a QoS 1 PUBACK leaves
// only once the upstream accepted the message) or external, reached as an
// MQTT 5 client (github.com/eclipse/paho.golang, autopaho) or an MQTT 3.1.1
// client (github.com/eclipse/paho.mqtt.golang). The Broker interface hides
// which.
package mqtt

import (
	"context"
	"crypto/x509"
	"net/netip"
)

// Message is one MQTT application message, received or to be sent.
type Message struct {
	Topic   string
	Payload []byte
	QoS     byte
	Retain  bool
	// ContentType, ResponseTopic, CorrelationData and UserProperties are
	// MQTT 5 properties; they are empty for MQTT 3.1.1.
	ContentType     string
	ResponseTopic   string
	CorrelationData []byte
	UserProperties  []UserProperty
	// Sender is the device that published the message, as far as the
	// broker knows it: set by the embedded broker, nil from an external one.
	Sender *Sender
}

// UserProperty is one MQTT 5 user property.
type UserProperty struct {
	Key, Value string
}

// Sender is a connected device.
type Sender struct {
	// ClientID, Username and Password are from the CONNECT packet.
	ClientID string
	Username string
	Password []byte
	// Peer is the device's address.
	Peer netip.AddrPort
	// Certificates are the device's verified TLS client certificates.
	Certificates []*x509.Certificate
}

// Uplink handles one message a device published. It returns nil when the
// message was handled (the broker may acknowledge it) or an error carrying a
// gRPC status that the broker turns into an MQTT 5 reason code. An Uplink is
// called concurrently.
type Uplink func(ctx context.Context, m *Message) error

// Broker is the gateway's side of an MQTT broker, embedded or external.
type Broker interface {
	// Publish sends m; for QoS 1 it returns once the broker has it.
	Publish(ctx context.Context, m *Message) error
	// Subscribe delivers the messages matching filter to fn until the
	// returned function is called. fn must not block.
	Subscribe(ctx context.Context, filter string, fn func(*Message)) (unsubscribe func(), err error)
	// Close stops the broker or disconnects from it.
	Close() error
}
