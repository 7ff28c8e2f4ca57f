package mqtt

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rosettagw/rosetta/router"
)

// EmbeddedConfig configures the embedded broker.
type EmbeddedConfig struct {
	// Metrics, when set, count connected devices and acknowledgements.
	Metrics *Metrics
	// Addr is the TCP address devices connect to ("127.0.0.1:1883").
	Addr string
	// TLS, when set, makes the TCP listener speak TLS (with client
	// certificates when it asks for them).
	TLS *tls.Config
	// WebSocketAddr, when set, also serves MQTT over WebSocket there.
	WebSocketAddr string
	// MaxPacketBytes bounds a packet; a device sending a larger one is
	// disconnected (reason 0x95). Default 256 KiB.
	MaxPacketBytes uint32
	// MaxClients bounds the connected devices (default 10000).
	MaxClients int64
	// ReceiveMaximum bounds the unacknowledged QoS 1 messages per device
	// (default 64).
	ReceiveMaximum uint16
	// Authenticate decides whether a device may connect; nil admits every
	// device.
	Authenticate func(*Sender) bool
	// Subscribe lists the filters a device may subscribe to, "{owner}"
	// standing for its identity (certificate common name, else username,
	// else client ID), as "devices/{owner}/#"; a requested filter must lie
	// within one of them. Empty lets devices subscribe to anything.
	Subscribe []string
	// Passthrough reports whether devices may publish to a topic that no
	// rule takes (replies to commands, state topics); such messages reach
	// the broker's subscribers without an upstream call.
	Passthrough func(topic string) bool
	// Logger receives the broker's own warnings.
	Logger *slog.Logger
}

// maxWritesPending bounds the messages queued for one subscriber; beyond
// it the broker drops messages to that subscriber, and the hook logs it.
const maxWritesPending = 1024

// Embedded is the broker inside the gateway.
type Embedded struct {
	srv    *mochi.Server
	self   *mochi.Client
	ctx    context.Context
	cancel context.CancelFunc
	subID  atomic.Int64
	hook   *hook
}

// NewEmbedded creates the embedded broker with its listeners; Serve starts
// it. Every message a device publishes to a topic that is not passed
// through goes to up, synchronously: a QoS 1 message is acknowledged only
// when up returns, with the MQTT 5 reason code of its error.
func NewEmbedded(cfg EmbeddedConfig, up Uplink) (*Embedded, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	caps := mochi.NewDefaultServerCapabilities()
	caps.MaximumPacketSize = cfg.MaxPacketBytes
	if caps.MaximumPacketSize == 0 {
		caps.MaximumPacketSize = 256 << 10
	}
	caps.MaximumClients = cfg.MaxClients
	if caps.MaximumClients <= 0 {
		caps.MaximumClients = 10000
	}
	caps.ReceiveMaximum = cfg.ReceiveMaximum
	if caps.ReceiveMaximum == 0 {
		caps.ReceiveMaximum = 64
	}
	caps.MaximumQos = 1
	// A device that never acknowledges holds at most this many QoS 1
	// messages; beyond, the broker drops further ones for it and warns
	// ("client store quota reached").
	caps.MaximumInflight = maxWritesPending
	caps.MaximumClientWritesPending = maxWritesPending
	drops := &drops{metrics: cfg.Metrics}
	srv := mochi.New(&mochi.Options{Capabilities: caps, InlineClient: true, Logger: slog.New(brokerLog{log.Handler(), drops})})
	ctx, cancel := context.WithCancel(context.Background())
	e := &Embedded{srv: srv, ctx: ctx, cancel: cancel}
	e.hook = &hook{cfg: cfg, up: up, ctx: ctx, log: log, drops: drops}
	if err := srv.AddHook(e.hook, nil); err != nil {
		return nil, err
	}
	tcp := &tooLargeTCP{TCP: listeners.NewTCP(listeners.Config{ID: "tcp", Address: cfg.Addr, TLSConfig: cfg.TLS}), max: caps.MaximumPacketSize, log: log}
	if err := srv.AddListener(tcp); err != nil {
		return nil, fmt.Errorf("mqtt listener %s: %w", cfg.Addr, err)
	}
	if cfg.WebSocketAddr != "" {
		if err := srv.AddListener(listeners.NewWebsocket(listeners.Config{ID: "ws", Address: cfg.WebSocketAddr, TLSConfig: cfg.TLS})); err != nil {
			return nil, fmt.Errorf("mqtt websocket listener %s: %w", cfg.WebSocketAddr, err)
		}
	}
	e.self = srv.NewClient(nil, "local", "rosetta-gateway", true)
	e.self.Properties.ProtocolVersion = 5
	return e, nil
}

// Serve starts accepting devices; it returns at once.
func (e *Embedded) Serve() error { return e.srv.Serve() }

// Addr returns the TCP listener's address.
func (e *Embedded) Addr() string {
	l, ok := e.srv.Listeners.Get("tcp")
	if !ok {
		return ""
	}
	return l.Address()
}

// Close disconnects every device and stops the listeners.
func (e *Embedded) Close() error {
	e.cancel()
	return e.srv.Close()
}

// Publish injects m into the broker as the gateway.
func (e *Embedded) Publish(_ context.Context, m *Message) error {
	pk := packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: m.QoS, Retain: m.Retain},
		TopicName:   m.Topic,
		Payload:     m.Payload,
		PacketID:    uint16(m.QoS),
		Properties: packets.Properties{
			ContentType: m.ContentType, ResponseTopic: m.ResponseTopic, CorrelationData: m.CorrelationData,
		},
	}
	for _, p := range m.UserProperties {
		pk.Properties.User = append(pk.Properties.User, packets.UserProperty{Key: p.Key, Val: p.Value})
	}
	return e.srv.InjectPacket(e.self, pk)
}

// Subscribe delivers messages matching filter (retained ones first) to fn.
func (e *Embedded) Subscribe(_ context.Context, filter string, fn func(*Message)) (func(), error) {
	id := int(e.subID.Add(1))
	err := e.srv.Subscribe(filter, id, func(_ *mochi.Client, _ packets.Subscription, pk packets.Packet) {
		fn(message(pk))
	})
	if err != nil {
		return nil, err
	}
	return func() { _ = e.srv.Unsubscribe(filter, id) }, nil
}

// message converts a mochi packet.
func message(pk packets.Packet) *Message {
	m := &Message{
		Topic: pk.TopicName, Payload: pk.Payload, QoS: pk.FixedHeader.Qos, Retain: pk.FixedHeader.Retain,
		ContentType: pk.Properties.ContentType, ResponseTopic: pk.Properties.ResponseTopic,
		CorrelationData: pk.Properties.CorrelationData,
	}
	for _, p := range pk.Properties.User {
		m.UserProperties = append(m.UserProperties, UserProperty{Key: p.Key, Value: p.Val})
	}
	return m
}

// brokerLog passes on the broker's own warnings and errors, less its log of
// every refused PUBLISH (the bridge logs each message itself), and less any
// packet: the broker logs whole packets ("error processing packet" with
// pk=...), which hold CONNECT passwords, user properties and payloads. A
// packet attribute is replaced by its type; only attributes known to hold
// no client data are kept as they are. The broker's warning for each QoS 1
// message dropped because a device has too many unacknowledged is counted
// and thinned out (see drops).
type brokerLog struct {
	slog.Handler
	drops *drops
}

// quotaReached is the broker's warning for a QoS 1 message it dropped
// because the device already has the most unacknowledged ones it may.
const quotaReached = "client store quota reached"

// drops counts the messages the broker drops for a device, by reason, and
// says which drops to log: a device's 1st, 2nd, 4th, 8th... since it
// connected, so that a device that never reads or never acknowledges is
// visible without flooding the log with a line per message.
type drops struct {
	metrics *Metrics
	clients sync.Map // client ID → *[numDropReasons]atomic.Int64, while connected
}

// dropped counts a drop for client and reports whether to log it, with the
// client's count of drops for that reason.
func (d *drops) dropped(client string, reason dropReason) (int64, bool) {
	d.metrics.drop(reason)
	v, ok := d.clients.Load(client)
	if !ok {
		v, _ = d.clients.LoadOrStore(client, new([numDropReasons]atomic.Int64))
	}
	n := v.(*[numDropReasons]atomic.Int64)[reason].Add(1)
	return n, n&(n-1) == 0
}

// forget drops a client's counts once it is gone.
func (d *drops) forget(client string) { d.clients.Delete(client) }

func (h brokerLog) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelWarn && h.Handler.Enabled(ctx, l)
}

func (h brokerLog) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == "publish packet error" {
		return nil
	}
	out := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
	var client string
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "client" {
			client = a.Value.String()
		}
		out.AddAttrs(safeBrokerAttr(a))
		return true
	})
	if r.Message == quotaReached && h.drops != nil {
		n, log := h.drops.dropped(client, dropInflight)
		if !log {
			return nil
		}
		out.AddAttrs(slog.Int("inflight", maxWritesPending), slog.Int64("dropped", n))
	}
	return h.Handler.Handle(ctx, out)
}

// safeBrokerAttr is a as it may be logged: packets become their type, and
// any attribute whose key is not known to be harmless loses its value.
func safeBrokerAttr(a slog.Attr) slog.Attr {
	if pk, ok := a.Value.Any().(packets.Packet); ok {
		return slog.String(a.Key+"_type", packets.PacketNames[pk.FixedHeader.Type])
	}
	if pk, ok := a.Value.Any().(*packets.Packet); ok && pk != nil {
		return slog.String(a.Key+"_type", packets.PacketNames[pk.FixedHeader.Type])
	}
	switch a.Key {
	case "error", "client", "listener", "remote", "id", "hook", "protocol", "address", "version",
		"old_remote", "new_remote", "len", "queue", "dropped":
		if a.Value.Kind() == slog.KindAny {
			return slog.String(a.Key, fmt.Sprint(a.Value.Any()))
		}
		return a
	}
	return slog.String(a.Key, "[redacted]")
}

func (h brokerLog) WithAttrs(as []slog.Attr) slog.Handler {
	safe := make([]slog.Attr, len(as))
	for i, a := range as {
		safe[i] = safeBrokerAttr(a)
	}
	return brokerLog{h.Handler.WithAttrs(safe), h.drops}
}

func (h brokerLog) WithGroup(name string) slog.Handler {
	return brokerLog{h.Handler.WithGroup(name), h.drops}
}

// hook is the embedded broker's hook: authentication on CONNECT and the
// synchronous uplink of every PUBLISH.
type hook struct {
	mochi.HookBase
	cfg     EmbeddedConfig
	up      Uplink
	ctx     context.Context
	log     *slog.Logger
	senders sync.Map // *mochi.Client → *Sender
	drops   *drops
}

func (h *hook) ID() string { return "rosetta-bridge" }

func (h *hook) Provides(b byte) bool {
	return bytes.Contains([]byte{
		mochi.OnConnectAuthenticate, mochi.OnACLCheck, mochi.OnDisconnect, mochi.OnPublish, mochi.OnPublishDropped,
	}, []byte{b})
}

func (h *hook) OnConnectAuthenticate(cl *mochi.Client, pk packets.Packet) bool {
	s := &Sender{ClientID: cl.ID, Username: string(pk.Connect.Username), Password: bytes.Clone(pk.Connect.Password)}
	s.Peer, _ = netip.ParseAddrPort(cl.Net.Remote)
	conn := cl.Net.Conn
	if g, ok := conn.(*sizeGuard); ok {
		conn = g.NetConn()
	}
	if tc, ok := conn.(*tls.Conn); ok {
		s.Certificates = tc.ConnectionState().PeerCertificates
	}
	if h.cfg.Authenticate != nil && !h.cfg.Authenticate(s) {
		return false
	}
	if _, again := h.senders.Swap(cl, s); !again {
		h.cfg.Metrics.connect(1)
	}
	return true
}

// OnACLCheck admits the subscriptions that lie within the configured
// filters. What a device may publish is decided per message in OnPublish,
// so that a refusal gets a reason code rather than a disconnection.
func (h *hook) OnACLCheck(cl *mochi.Client, filter string, write bool) bool {
	if write || len(h.cfg.Subscribe) == 0 || cl.Net.Inline {
		return true
	}
	s, ok := h.senders.Load(cl)
	if !ok {
		return false
	}
	if rest, ok := strings.CutPrefix(filter, "$share/"); ok {
		_, filter, _ = strings.Cut(rest, "/")
	}
	snd := s.(*Sender)
	id := router.DeviceName(snd.Certificates, &router.Credentials{Username: snd.Username, ClientID: snd.ClientID})
	if id == "" || strings.ContainsAny(id, "/+#") {
		return false
	}
	for _, allowed := range h.cfg.Subscribe {
		if covers(strings.ReplaceAll(allowed, "{owner}", id), filter) {
			return true
		}
	}
	return false
}

// covers reports whether every topic matching filter also matches allowed.
func covers(allowed, filter string) bool {
	a, f := strings.Split(allowed, "/"), strings.Split(filter, "/")
	for i, l := range a {
		switch {
		case l == "#":
			return true
		case i >= len(f) || f[i] == "#":
			return false
		case l == "+":
		case l != f[i]: // a literal covers only itself, not "+"
			return false
		}
	}
	return len(a) == len(f)
}

func (h *hook) OnDisconnect(cl *mochi.Client, _ error, _ bool) {
	h.drops.forget(cl.ID)
	if _, ok := h.senders.LoadAndDelete(cl); ok {
		h.cfg.Metrics.connect(-1)
	}
}

// OnPublishDropped makes visible a message dropped for a subscriber that
// reads too slowly (more than maxWritesPending queued).
func (h *hook) OnPublishDropped(cl *mochi.Client, pk packets.Packet) {
	if n, log := h.drops.dropped(cl.ID, dropSlowReader); log {
		h.log.Warn("mqtt message dropped for a slow subscriber", "client", cl.ID, "topic", pk.TopicName, "queue", maxWritesPending, "dropped", n)
	}
}

func (h *hook) OnPublish(cl *mochi.Client, pk packets.Packet) (packets.Packet, error) {
	if cl.Net.Inline || (h.cfg.Passthrough != nil && h.cfg.Passthrough(pk.TopicName)) {
		return pk, nil
	}
	m := message(pk)
	if s, ok := h.senders.Load(cl); ok {
		m.Sender = s.(*Sender)
	}
	err := h.up(h.ctx, m)
	if err == nil {
		if pk.FixedHeader.Qos > 0 {
			h.cfg.Metrics.ack(packets.CodeSuccess.Code)
		}
		return pk, nil
	}
	if cl.Properties.ProtocolVersion == 5 && pk.FixedHeader.Qos > 0 {
		rc := reasonCode(err)
		h.cfg.Metrics.ack(rc.Code)
		return pk, rc
	}
	// MQTT 3.1.1 has no negative acknowledgement: the message is
	// acknowledged (it was dead-lettered) but not passed on.
	return pk, packets.CodeSuccessIgnore
}

// reasonCode maps an uplink error to an MQTT 5 PUBACK reason code, with the
// status message as the reason string.
func reasonCode(err error) packets.Code {
	st := status.Convert(errorStatus(err))
	code := packets.ErrUnspecifiedError.Code
	switch st.Code() {
	case codes.PermissionDenied, codes.Unauthenticated:
		code = packets.ErrNotAuthorized.Code
	case codes.ResourceExhausted:
		code = packets.ErrQuotaExceeded.Code
	case codes.InvalidArgument:
		code = packets.ErrPayloadFormatInvalid.Code
	}
	return packets.Code{Code: code, Reason: st.Message()}
}
