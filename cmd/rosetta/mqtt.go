package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/rosettagw/rosetta/examples/iot"
	"github.com/rosettagw/rosetta/router"
	"github.com/rosettagw/rosetta/translate"
	"github.com/rosettagw/rosetta/transports/mqtt"
)

// MQTTConfig is the mqtt section: the broker and the bridge's bounds. The
// embedded broker listens on listen.mqtt; mqtt.broker names an external
// one instead.
type MQTTConfig struct {
	// Broker, when set, is an external broker the gateway connects to.
	Broker *MQTTBrokerConfig `yaml:"broker"`
	// WebSocket is the embedded broker's MQTT-over-WebSocket address.
	WebSocket string `yaml:"websocket"`
	// TLS makes the embedded broker's TCP listener speak TLS.
	TLS *MQTTServerTLS `yaml:"tls"`
	// MaxPacketBytes bounds a packet (default 256KiB); a device sending a
	// larger one is disconnected.
	MaxPacketBytes ByteSize `yaml:"max_packet_bytes"`
	// MaxClients bounds the devices connected to the embedded broker.
	MaxClients int64 `yaml:"max_clients"`
	// PasswordFile admits to the embedded broker only the devices listed in
	// it, with their password (Mosquitto's format: create it with
	// mosquitto_passwd).
	PasswordFile string `yaml:"password_file"`
	// AllowAnonymous admits every device to the embedded broker: the
	// routes' policies alone authenticate them (a jwt policy reads the
	// CONNECT password). Without it, a password file or client
	// certificates, no device is admitted, and the configuration is refused.
	AllowAnonymous bool `yaml:"allow_anonymous"`
	// Subscribe lists the filters a device may subscribe to on the embedded
	// broker, "{owner}" standing for its identity: ["devices/{owner}/#"].
	// Empty lets devices subscribe to anything.
	Subscribe []string `yaml:"subscribe"`
	// DeadLetter is the default dead-letter topic of the rules, and the one
	// of messages no rule takes.
	DeadLetter string `yaml:"dead_letter"`
	// MaxStateTopics bounds the topics whose last message is kept.
	MaxStateTopics int `yaml:"max_state_topics"`
	// MaxPendingReplies bounds the downlink calls waiting for a device's
	// reply at once, per route.
	MaxPendingReplies int `yaml:"max_pending_replies"`
}

// MQTTBrokerConfig is an external broker.
type MQTTBrokerConfig struct {
	URL string `yaml:"url"`
	// Version is 5 (default) or 4 for MQTT 3.1.1.
	Version byte `yaml:"version"`
	// ClientID is the gateway's session; one per replica.
	ClientID string `yaml:"client_id"`
	Username string `yaml:"username"`
	// PasswordFile holds the password (the file, not the config, holds
	// the secret).
	PasswordFile string `yaml:"password_file"`
	// ShareGroup makes the replicas of one group split device traffic.
	ShareGroup    string     `yaml:"share_group"`
	Workers       int        `yaml:"workers"`
	SessionExpiry Duration   `yaml:"session_expiry"`
	TLS           *TLSClient `yaml:"tls"`
}

// MQTTServerTLS is the embedded broker's certificate, and the CA of the
// device certificates it asks for when ClientCAFile is set.
type MQTTServerTLS struct {
	CertFile     string `yaml:"cert_file"`
	KeyFile      string `yaml:"key_file"`
	ClientCAFile string `yaml:"client_ca_file"`
}

// MQTTRouteConfig holds the fields of a route that concern MQTT. A route
// is an uplink rule (mqtt + call), a downlink command route (an HTTP
// method + publish), a last-known-state route (get + state) or a watch
// route (get + watch). A call on a publish or state route makes it serve
// that method, over gRPC too (see addDownlinkMethod).
type MQTTRouteConfig struct {
	// MQTT is an uplink rule's topic filter, "devices/{device_id}/telemetry".
	MQTT string `yaml:"mqtt"`
	// Payload is json (default), proto or raw (into the body field).
	Payload string `yaml:"payload"`
	// QoS is the uplink subscription QoS on an external broker, or the
	// default QoS of a downlink command.
	QoS *byte `yaml:"qos"`
	// Reply is a topic template for the uplink reply, or the topic a
	// downlink command's reply comes on.
	Reply string `yaml:"reply"`
	// DeadLetter is the uplink rule's dead-letter topic template.
	DeadLetter string `yaml:"dead_letter"`
	// Owner names the topic segment that must equal the device's username.
	Owner string `yaml:"owner"`
	// Retry bounds the retries of QoS 1 uplink messages.
	Retry *MQTTRetryConfig `yaml:"retry"`
	// Publish is a downlink route's topic template.
	Publish string `yaml:"publish"`
	// Retain is the default retain flag of downlink commands.
	Retain bool `yaml:"retain"`
	// Wait makes a downlink call wait that long for the device's reply.
	Wait Duration `yaml:"wait"`
	// State is a state route's topic template.
	State string `yaml:"state"`
	// Watch is a watch route's topic filter: a GET streaming the messages
	// published on it (NDJSON, or SSE for a client accepting
	// text/event-stream).
	Watch string `yaml:"watch"`
}

// MQTTRetryConfig bounds the retries of an uplink rule.
type MQTTRetryConfig struct {
	Attempts   int      `yaml:"attempts"`
	Backoff    Duration `yaml:"backoff"`
	MaxBackoff Duration `yaml:"max_backoff"`
}

// isMQTT reports whether the route is one of the MQTT bridge's.
func (r *MQTTRouteConfig) isMQTT() bool {
	return r.MQTT != "" || r.Publish != "" || r.State != "" || r.Watch != ""
}

// mqttParts is what the MQTT bridge adds to a gateway generation.
type mqttParts struct {
	rules  []*mqtt.Rule
	bridge *mqtt.Bridge
	// broker is the broker the parts publish on, set when serving starts.
	broker *brokerRef
	state  *mqtt.State
	// stateFilters feed state; deviceFilters are the topics devices may
	// publish to without a rule (command replies, state).
	stateFilters  []string
	deviceFilters []string
}

// brokerRef is the broker a generation publishes on; it is nil until
// serving starts, and `rosetta check` never starts one.
type brokerRef struct{ mqtt.Broker }

var errNoBroker = errors.New("the MQTT broker is not running")

func (b *brokerRef) Publish(ctx context.Context, m *mqtt.Message) error {
	if b.Broker == nil {
		return errNoBroker
	}
	return b.Broker.Publish(ctx, m)
}

func (b *brokerRef) Subscribe(ctx context.Context, filter string, fn func(*mqtt.Message)) (func(), error) {
	if b.Broker == nil {
		return nil, errNoBroker
	}
	return b.Broker.Subscribe(ctx, filter, fn)
}

// mqttParts returns the generation's MQTT parts, creating them.
func (g *gateway) mqttParts(cfg *Config) *mqttParts {
	if g.mqtt == nil {
		g.mqtt = &mqttParts{broker: &brokerRef{}, state: mqtt.NewState(cfg.MQTT.MaxStateTopics, nil)}
	}
	return g.mqtt
}

// checkMQTT validates the broker configuration.
func checkMQTT(cfg *Config) error {
	m := &cfg.MQTT
	if bc := m.Broker; bc != nil {
		if cfg.Listen.MQTT != "" {
			return fmt.Errorf("set listen.mqtt (the embedded broker) or mqtt.broker, not both")
		}
		if u, err := url.Parse(bc.URL); err != nil || u.Host == "" {
			return fmt.Errorf("mqtt.broker.url %q: want mqtt://host:port", bc.URL)
		}
		if bc.ClientID == "" {
			return fmt.Errorf("mqtt.broker.client_id is required (one per replica)")
		}
		if bc.Version != 0 && bc.Version != 4 && bc.Version != 5 {
			return fmt.Errorf("mqtt.broker.version %d: want 5 or 4 (3.1.1)", bc.Version)
		}
		return nil
	}
	if m.PasswordFile == "" && !m.AllowAnonymous && (m.TLS == nil || m.TLS.ClientCAFile == "") {
		return fmt.Errorf("the embedded broker admits no device: set mqtt.password_file, mqtt.tls.client_ca_file or mqtt.allow_anonymous: true")
	}
	if m.PasswordFile != "" {
		if _, err := mqtt.LoadPasswords(cfg.path(m.PasswordFile)); err != nil {
			return fmt.Errorf("mqtt.password_file: %w", err)
		}
	}
	return nil
}

// addMQTTRoute adds an uplink rule, a downlink command route or a state
// route.
func (g *gateway) addMQTTRoute(cfg *Config, rc *RouteConfig, services map[string]*ServiceConfig) error {
	if cfg.Listen.MQTT == "" && cfg.MQTT.Broker == nil {
		return fmt.Errorf("MQTT routes need listen.mqtt (the embedded broker) or mqtt.broker")
	}
	if g.mqtt == nil {
		if err := checkMQTT(cfg); err != nil {
			return err
		}
	}
	p := g.mqttParts(cfg)
	n := 0
	for _, s := range []string{rc.MQTT, rc.Publish, rc.State, rc.Watch} {
		if s != "" {
			n++
		}
	}
	if n != 1 {
		return fmt.Errorf("a route has one of mqtt, publish, state, watch")
	}
	if rc.MQTT != "" {
		return g.addUplinkRule(cfg, rc, services)
	}
	// A downlink or state route with a call serves that method over gRPC
	// (and gRPC-Web, Connect, WebSocket), and over REST when it has a path.
	var md protoreflect.MethodDescriptor
	var method, path string
	var err error
	if rc.Call != "" && rc.Watch == "" {
		if md, err = g.lookupMethod(rc.Call); err != nil {
			return err
		}
	}
	if md == nil || rc.Get+rc.Post+rc.Put+rc.Patch+rc.Delete != "" {
		if method, path, err = rc.methodPath(); err != nil {
			return err
		}
	}
	if rc.Watch != "" {
		if rc.Call != "" {
			return fmt.Errorf("a watch route takes no call")
		}
		return g.addWatchRoute(rc, method, path)
	}
	var inv router.Invoker
	target := rc.State
	if rc.Publish != "" {
		qos := byte(0)
		if rc.QoS != nil {
			qos = *rc.QoS
		}
		var pub *mqtt.Publisher
		pub, err = mqtt.NewPublisher(p.broker, mqtt.PublishConfig{
			Topic: rc.Publish, QoS: qos, Retain: rc.Retain, Wait: time.Duration(rc.Wait), Reply: rc.Reply,
			MaxPending: cfg.MQTT.MaxPendingReplies, Method: md, Resolver: g.schema.Types(),
		})
		if err == nil {
			p.deviceFilters = append(p.deviceFilters, pub.ReplyFilter())
		}
		inv, target = pub, rc.Publish
	} else {
		if method != "GET" && path != "" {
			return fmt.Errorf("a state route is a get")
		}
		var sr *mqtt.StateReader
		sr, err = mqtt.NewStateReader(p.state, rc.State, md, g.schema.Types())
		if err == nil {
			p.stateFilters = append(p.stateFilters, sr.Filter())
			p.deviceFilters = append(p.deviceFilters, sr.Filter())
		}
		inv = sr
	}
	if err != nil {
		return err
	}
	if md != nil {
		return g.addDownlinkMethod(cfg, rc, services, md, method, path, inv)
	}
	tmpl, err := translate.ParseTemplate(path)
	if err != nil {
		return err
	}
	return g.table.Add(&router.Route{
		HTTPMethod: method, Template: tmpl, Target: target, Upstream: "mqtt",
		Invoker: inv, Timeout: time.Duration(rc.Timeout), Handler: router.Dispatch,
	})
}

// addDownlinkMethod serves md, a downlink or state route's method, with inv:
// over gRPC, gRPC-Web, Connect and WebSocket, and over REST at method and
// path, or else at POST /package.Service/Method as a service's methods
// without an HTTP rule are.
func (g *gateway) addDownlinkMethod(cfg *Config, rc *RouteConfig, services map[string]*ServiceConfig, md protoreflect.MethodDescriptor, method, path string, inv router.Invoker) error {
	name := "/" + string(md.Parent().FullName()) + "/" + string(md.Name())
	if g.methods[name] != nil {
		return fmt.Errorf("call %q: the method is already served", rc.Call)
	}
	svc := ServiceConfig{Name: string(md.Parent().FullName())}
	if s := services[svc.Name]; s != nil {
		svc = *s
	}
	svc.Upstream = "mqtt"
	timeout := time.Duration(rc.Timeout)
	if err := g.addMethod(cfg, md, &svc, inv, timeout); err != nil {
		return err
	}
	if path == "" {
		method, path = "POST", name
	}
	body := rc.Body
	if body == "" && method != "GET" && method != "DELETE" {
		body = "*"
	}
	b, err := translate.NewBinding(md, method, path, body, rc.ResponseBody, jsonOptions(cfg, &svc), g.schema.Types())
	if err != nil {
		return err
	}
	return g.table.Add(grpcRoute(b, md, "mqtt", inv, timeout))
}

// addWatchRoute adds a GET streaming the messages of a topic filter.
func (g *gateway) addWatchRoute(rc *RouteConfig, method, path string) error {
	if method != "GET" {
		return fmt.Errorf("a watch route is a get")
	}
	tmpl, err := translate.ParseTemplate(path)
	if err != nil {
		return err
	}
	var names []string
	for _, v := range tmpl.Variables {
		if len(v.FieldPath) != 1 || !strings.Contains(rc.Watch, "{"+v.FieldPath[0]+"}") {
			return fmt.Errorf("watch %q: path variable %s is not a named level of the filter", rc.Watch, strings.Join(v.FieldPath, "."))
		}
		names = append(names, v.FieldPath[0])
	}
	if strings.Count(rc.Watch, "{") != len(names) {
		return fmt.Errorf("watch %q: every named level must be a path variable", rc.Watch)
	}
	md, err := mqtt.WatchMethod(names)
	if err != nil {
		return err
	}
	b, err := translate.NewBinding(md, method, path, "", "", translate.JSONOptions{}, nil)
	if err != nil {
		return err
	}
	return g.table.Add(&router.Route{
		HTTPMethod: method, Template: b.Template, Binding: b, Method: md, Target: rc.Watch, Upstream: "mqtt",
		Invoker: mqtt.NewWatcher(g.mqtt.broker, rc.Watch, md), Handler: router.Dispatch,
	})
}

// addUplinkRule compiles an uplink rule onto its gRPC method, its HTTP
// upstream, or its aggregate (cmd/rosetta/aggregate.go).
func (g *gateway) addUplinkRule(cfg *Config, rc *RouteConfig, services map[string]*ServiceConfig) error {
	if rc.Aggregate != nil {
		return g.addAggregateRule(cfg, rc)
	}
	if rc.Call == "" {
		return g.addHTTPUplinkRule(cfg, rc)
	}
	c, err := g.resolveCall(cfg, rc, services)
	if err != nil {
		return err
	}
	md, svc := c.method, c.service
	if md.IsStreamingClient() || md.IsStreamingServer() {
		return fmt.Errorf("call %q: an MQTT rule calls a unary method", rc.Call)
	}
	rcfg := ruleConfig(cfg, rc)
	rcfg.Method, rcfg.JSON, rcfg.Resolver = md, jsonOptions(cfg, svc), g.schema.Types()
	rule, err := mqtt.NewRule(rcfg)
	if err != nil {
		return err
	}
	rule.Route = grpcRoute(rule.Binding, md, c.upstream, c.invoker, c.timeout)
	g.mqtt.rules = append(g.mqtt.rules, rule)
	return nil
}

// addHTTPUplinkRule compiles an uplink rule onto a plain HTTP upstream:
// the payload is the request body, sent to rewrite's method and path.
func (g *gateway) addHTTPUplinkRule(cfg *Config, rc *RouteConfig) error {
	up := cfg.Upstreams[rc.Upstream]
	if up == nil || up.HTTP == nil || rc.Rewrite == nil || rc.Rewrite.Path == "" {
		return fmt.Errorf("mqtt %q: an uplink rule needs call: package.Service/Method, or an http upstream with rewrite: {method, path}", rc.MQTT)
	}
	rule, err := mqtt.NewRule(ruleConfig(cfg, rc))
	if err != nil {
		return err
	}
	method := strings.ToUpper(rc.Rewrite.Method)
	if method == "" {
		method = "POST"
	}
	timeout := time.Duration(rc.Timeout)
	if timeout == 0 {
		timeout = time.Duration(up.Timeout)
	}
	rule.Route = &router.Route{
		HTTPMethod: "MQTT", Template: rule.Template, Target: method + " " + rc.Rewrite.Path, Upstream: rc.Upstream,
		Invoker: g.upstreams[rc.Upstream], Timeout: timeout, Handler: router.Dispatch,
	}
	g.mqtt.rules = append(g.mqtt.rules, rule)
	return nil
}

// ruleConfig is the part of an uplink rule's configuration that does not
// depend on its upstream.
func ruleConfig(cfg *Config, rc *RouteConfig) mqtt.RuleConfig {
	rcfg := mqtt.RuleConfig{
		Filter: rc.MQTT, Payload: mqtt.Payload(rc.Payload), Body: rc.Body,
		Reply: rc.Reply, DeadLetter: rc.DeadLetter, Owner: rc.Owner, QoS: 1,
	}
	if rc.QoS != nil {
		rcfg.QoS = *rc.QoS
	}
	if rcfg.DeadLetter == "" {
		rcfg.DeadLetter = cfg.MQTT.DeadLetter
	}
	if r := rc.Retry; r != nil {
		rcfg.Retry = mqtt.Retry{Attempts: r.Attempts, Backoff: time.Duration(r.Backoff), MaxBackoff: time.Duration(r.MaxBackoff)}
	}
	return rcfg
}

// mqttRouteRows lists the uplink rules as rows of the route table: MQTT,
// the topic filter, the target, the upstream.
func mqttRouteRows(g *gateway) []routeRow {
	if g.mqtt == nil {
		return nil
	}
	var rows []routeRow
	for _, r := range g.mqtt.rules {
		target := r.Route.Target
		if r.Route.Method != nil {
			target = string(r.Route.Method.FullName())
		}
		rows = append(rows, routeRow{Method: "MQTT", Template: r.Filter, Target: target, Upstream: r.Route.Upstream})
	}
	return rows
}

// startMQTT starts the generation's broker (embedded or external) and the
// bridge; the returned function stops them.
func startMQTT(ctx context.Context, cfg *Config, g *gateway, logger *slog.Logger) (func(), error) {
	if cfg.Listen.MQTT == "" && cfg.MQTT.Broker == nil {
		return func() {}, nil
	}
	if err := checkMQTT(cfg); err != nil {
		return nil, err
	}
	p := g.mqttParts(cfg)
	p.bridge = mqtt.NewBridge(p.rules, p.broker, mqtt.BridgeOptions{
		Resolver: g.schema.Types(), DeadLetter: cfg.MQTT.DeadLetter, ForwardHeaders: cfg.HTTP.ForwardHeaders, Logger: logger,
	})
	var br mqtt.Broker
	if bc := cfg.MQTT.Broker; bc != nil {
		ext, err := dialBroker(ctx, cfg, bc, p, logger)
		if err != nil {
			return nil, err
		}
		br = ext
		logger.Info("mqtt bridge connected", "broker", bc.URL, "rules", len(p.rules))
	} else {
		emb, err := embeddedBroker(cfg, p, logger)
		if err != nil {
			return nil, err
		}
		if err := emb.Serve(); err != nil {
			return nil, err
		}
		br = emb
		logger.Info("serving", "mqtt", emb.Addr(), "rules", len(p.rules))
	}
	p.broker.Broker = br
	for _, f := range p.stateFilters {
		if _, err := br.Subscribe(ctx, f, p.state.Observe); err != nil {
			br.Close()
			return nil, fmt.Errorf("mqtt state %s: %w", f, err)
		}
	}
	return func() {
		if err := br.Close(); err != nil {
			logger.Warn("mqtt broker close", "error", err)
		}
	}, nil
}

func dialBroker(ctx context.Context, cfg *Config, bc *MQTTBrokerConfig, p *mqttParts, logger *slog.Logger) (*mqtt.External, error) {
	ec := mqtt.ExternalConfig{
		URL: bc.URL, Version: bc.Version, ClientID: bc.ClientID, Username: bc.Username,
		ShareGroup: bc.ShareGroup, Workers: bc.Workers, SessionExpiry: time.Duration(bc.SessionExpiry), Logger: logger,
	}
	if bc.PasswordFile != "" {
		pw, err := os.ReadFile(cfg.path(bc.PasswordFile))
		if err != nil {
			return nil, fmt.Errorf("mqtt.broker.password_file: %w", err)
		}
		ec.Password = strings.TrimSpace(string(pw))
	}
	if bc.TLS != nil {
		t, err := clientTLS(cfg, bc.TLS)
		if err != nil {
			return nil, fmt.Errorf("mqtt.broker.tls: %w", err)
		}
		ec.TLS = t
	}
	dctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	return mqtt.DialExternal(dctx, ec, p.bridge.Filters(), p.bridge.Uplink)
}

func embeddedBroker(cfg *Config, p *mqttParts, logger *slog.Logger) (*mqtt.Embedded, error) {
	ec := mqtt.EmbeddedConfig{
		Addr: cfg.Listen.MQTT, WebSocketAddr: cfg.MQTT.WebSocket, MaxPacketBytes: uint32(cfg.MQTT.MaxPacketBytes),
		MaxClients: cfg.MQTT.MaxClients, Subscribe: cfg.MQTT.Subscribe, Logger: logger,
		Passthrough: func(topic string) bool {
			if p.bridge.Matches(topic) {
				return false
			}
			for _, f := range p.deviceFilters {
				if mqtt.MatchFilter(f, topic) {
					return true
				}
			}
			return false
		},
	}
	if cfg.MQTT.PasswordFile != "" {
		pw, err := mqtt.LoadPasswords(cfg.path(cfg.MQTT.PasswordFile))
		if err != nil {
			return nil, fmt.Errorf("mqtt.password_file: %w", err)
		}
		ec.Authenticate = func(s *mqtt.Sender) bool { return pw.Check(s.Username, s.Password) }
	}
	if t := cfg.MQTT.TLS; t != nil {
		cert, err := tls.LoadX509KeyPair(cfg.path(t.CertFile), cfg.path(t.KeyFile))
		if err != nil {
			return nil, fmt.Errorf("mqtt.tls: %w", err)
		}
		ec.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		if t.ClientCAFile != "" {
			pem, err := os.ReadFile(cfg.path(t.ClientCAFile))
			if err != nil {
				return nil, fmt.Errorf("mqtt.tls.client_ca_file: %w", err)
			}
			ec.TLS.ClientCAs = x509.NewCertPool()
			if !ec.TLS.ClientCAs.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("mqtt.tls.client_ca_file: no certificates found")
			}
			ec.TLS.ClientAuth = tls.RequireAndVerifyClientCert
		}
	}
	return mqtt.NewEmbedded(ec, p.bridge.Uplink)
}

// demoIoT registers the IoT example's DeviceService on srv (served at
// grpcAddr, before it serves) and adds its MQTT rules and REST routes, with
// the embedded broker on 127.0.0.1:1883 (or a free port when that one is
// taken), to cfg.
func demoIoT(srv *grpc.Server, grpcAddr string, cfg *Config) error {
	iot.Register(srv)
	ic, err := ParseConfig(iot.Config)
	if err != nil {
		return fmt.Errorf("examples/iot/rosetta.yaml: %w", err)
	}
	ic.Upstreams["iot"].GRPC.Targets = []string{grpcAddr}
	for name, up := range ic.Upstreams {
		cfg.Upstreams[name] = up
	}
	cfg.Services = append(cfg.Services, ic.Services...)
	cfg.Routes = append(cfg.Routes, ic.Routes...)
	cfg.MQTT = ic.MQTT
	cfg.Listen.MQTT = ic.Listen.MQTT
	if ln, err := net.Listen("tcp", cfg.Listen.MQTT); err == nil {
		ln.Close()
	} else {
		cfg.Listen.MQTT = "127.0.0.1:0"
	}
	return nil
}

// demoIoTTry is what the demo suggests trying with MQTT devices.
func demoIoTTry(base string, g *gateway) string {
	emb, ok := g.mqtt.broker.Broker.(*mqtt.Embedded)
	if !ok {
		return ""
	}
	host, port, _ := net.SplitHostPort(emb.Addr())
	pub := fmt.Sprintf("mosquitto_pub -h %s -p %s -V mqttv5 -q 1", host, port)
	return fmt.Sprintf(`
MQTT: devices connect to the embedded broker at %[1]s (MQTT 3.1.1 and 5);
each telemetry message becomes a call of example.iot.v1.DeviceService/Record:
  mosquitto_sub -h %[2]s -p %[3]s -V mqttv5 -u dev-1 -t 'devices/dev-1/#' -v &   # the device's own topics (mqtt.subscribe lets it read only those)
  %[4]s -u dev-1 -t devices/dev-1/telemetry -m '{"id":"m1","reading":{"temperature":21.5,"humidity":40}}'
  curl -s %[5]s/v1/devices/dev-1              # what the gRPC service recorded
  curl -s -i %[5]s/v1/devices/dev-1/telemetry   # the last telemetry message
  curl -s -N -H 'Accept: text/event-stream' %[5]s/v1/devices/dev-1/events &   # every message on devices/dev-1/#, as it comes
  %[4]s -u dev-1 -t devices/dev-1/telemetry -m '{"reading":{"temperature":900}}'   # the error, a google.rpc.Status, on devices/dev-1/reply
  %[4]s -u dev-1 -t devices/dev-1/telemetry -m 'not json' -d   # PUBACK reason 153 (payload format invalid)
  %[4]s -u dev-2 -t devices/dev-1/telemetry -m '{}' -d         # PUBACK reason 135 (not its own topic)
  %[4]s -u dev-1 -t devices/dev-1/logs -m 'raw log bytes'      # raw bytes into UploadRequest.data
  mosquitto_pub -h %[2]s -p %[3]s -V mqttv311 -u dev-1 -q 1 -t devices/dev-1/telemetry -m 'oops'   # MQTT 3.1.1: dead-lettered on devices/dev-1/dead-letter
  curl -s -X POST %[5]s/v1/devices/dev-1/commands -d '{"led":"on"}'   # a command, published on devices/dev-1/commands
  curl -s -i -X POST '%[5]s/v1/devices/dev-1/commands:call?wait=2s' -d '{"led":"on"}'   # waits for the device's reply: 504 when none comes
  grpcurl -plaintext -import-path proto -proto example/iot/v1/iot.proto -d '{"device_id":"dev-1","name":"reboot"}' %[6]s example.iot.v1.DeviceCommands/Call   # the same over gRPC
`, emb.Addr(), host, port, pub, base, strings.TrimPrefix(base, "http://"))
}
