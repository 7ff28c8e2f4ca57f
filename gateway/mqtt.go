package gateway

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/reflect/protoreflect"

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

// mqttParts is what the MQTT bridge adds to a generation.
type mqttParts struct {
	rules []*mqtt.Rule
	// broker is the process's broker, shared by every generation; it is
	// empty until serving starts, and `rosetta check` never starts one.
	broker *brokerRef
	state  *mqtt.State
	// stateFilters feed state; deviceFilters are the topics devices may
	// publish to without a rule (command replies, state).
	stateFilters  []string
	deviceFilters []string
}

// mqttSettings are the broker settings of a generation, with every file
// they name already read, so that what `rosetta check` accepts, serve can
// start.
type mqttSettings struct {
	// embedded is the embedded broker's configuration (nil with an
	// external broker, or none).
	embedded *mqtt.EmbeddedConfig
	// passwords admit devices to the embedded broker (nil: no file).
	passwords *mqtt.Passwords
	// external is the external broker's configuration (nil without one).
	external *mqtt.ExternalConfig
}

// brokerRef is the broker the generations publish on and subscribe to.
// Until serving has started it, a publish or subscription waits for it (an
// external broker delivers a persistent session's queued messages, whose
// replies publish, as soon as it connects), bounded by the caller's context.
type brokerRef struct {
	once  sync.Once
	ready chan struct{}
	b     mqtt.Broker // set once, before ready is closed
	// metrics count what is published (nil: not counted).
	metrics *mqtt.Metrics
}

var errNoBroker = errors.New("the MQTT broker is not running")

func (r *brokerRef) readyChan() chan struct{} {
	r.once.Do(func() { r.ready = make(chan struct{}) })
	return r.ready
}

// current returns the broker, or nil before it is set.
func (r *brokerRef) current() mqtt.Broker {
	select {
	case <-r.readyChan():
		return r.b
	default:
		return nil
	}
}

// get returns the broker, waiting for it until ctx ends.
func (r *brokerRef) get(ctx context.Context) (mqtt.Broker, error) {
	select {
	case <-r.readyChan():
	case <-ctx.Done():
	}
	if b := r.current(); b != nil {
		return b, nil
	}
	return nil, errNoBroker
}

// set makes b the broker, counting publishes in metrics; it is called
// once.
func (r *brokerRef) set(b mqtt.Broker, metrics *mqtt.Metrics) {
	r.b, r.metrics = b, metrics
	close(r.readyChan())
}

func (r *brokerRef) Publish(ctx context.Context, m *mqtt.Message) error {
	b, err := r.get(ctx)
	if err != nil {
		return err
	}
	if err = b.Publish(ctx, m); err == nil {
		r.metrics.Published()
	}
	return err
}

// Close does nothing: the broker is the process's, closed when serving
// ends.
func (r *brokerRef) Close() error { return nil }

func (r *brokerRef) Subscribe(ctx context.Context, filter string, fn func(*mqtt.Message)) (func(), error) {
	b, err := r.get(ctx)
	if err != nil {
		return nil, err
	}
	return b.Subscribe(ctx, filter, fn)
}

// mqttParts returns the generation's MQTT parts, creating them: the broker
// reference and the state store come from the pool, shared by the
// generations of one process.
func (g *builder) mqttParts() (*mqttParts, error) {
	if g.mqtt != nil {
		return g.mqtt, nil
	}
	ref, err := g.pool.acquire(g.cfg, "mqtt broker", nil, func(*poolEnv) (any, func(), error) { return &brokerRef{}, nil, nil })
	if err != nil {
		return nil, err
	}
	g.held = append(g.held, ref)
	st, err := g.pool.acquire(g.cfg, "mqtt state", g.cfg.MQTT.MaxStateTopics, func(*poolEnv) (any, func(), error) {
		return mqtt.NewState(g.cfg.MQTT.MaxStateTopics, nil), nil, nil
	})
	if err != nil {
		return nil, err
	}
	g.held = append(g.held, st)
	g.mqtt = &mqttParts{broker: ref.value.(*brokerRef), state: st.value.(*mqtt.State)}
	return g.mqtt, nil
}

// checkMQTTSettings validates the broker configuration and reads every
// file it names (password files, certificates, keys).
func (g *builder) checkMQTTSettings() error {
	cfg := g.cfg
	m := &cfg.MQTT
	if cfg.Listen.MQTT == "" && m.Broker == nil {
		return nil
	}
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
		ec := &mqtt.ExternalConfig{
			URL: bc.URL, Version: bc.Version, ClientID: bc.ClientID, Username: bc.Username,
			ShareGroup: bc.ShareGroup, Workers: bc.Workers, SessionExpiry: time.Duration(bc.SessionExpiry),
		}
		if bc.PasswordFile != "" {
			pw, err := os.ReadFile(cfg.path(bc.PasswordFile))
			if err != nil {
				return fmt.Errorf("mqtt.broker.password_file: %w", err)
			}
			ec.Password = strings.TrimSpace(string(pw))
		}
		if bc.TLS != nil {
			t, err := clientTLS(cfg.path, bc.TLS)
			if err != nil {
				return fmt.Errorf("mqtt.broker.tls: %w", err)
			}
			ec.TLS = t
		}
		g.mqttSettings = &mqttSettings{external: ec}
		return nil
	}
	if m.PasswordFile == "" && !m.AllowAnonymous && (m.TLS == nil || m.TLS.ClientCAFile == "") {
		return fmt.Errorf("the embedded broker admits no device: set mqtt.password_file, mqtt.tls.client_ca_file or mqtt.allow_anonymous: true")
	}
	s := &mqttSettings{embedded: &mqtt.EmbeddedConfig{
		Addr: cfg.Listen.MQTT, WebSocketAddr: m.WebSocket, MaxPacketBytes: uint32(m.MaxPacketBytes),
		MaxClients: m.MaxClients, Subscribe: m.Subscribe,
	}}
	if m.PasswordFile != "" {
		pw, err := mqtt.LoadPasswords(cfg.path(m.PasswordFile))
		if err != nil {
			return fmt.Errorf("mqtt.password_file: %w", err)
		}
		s.passwords = pw
	}
	if t := m.TLS; t != nil {
		cert, err := tls.LoadX509KeyPair(cfg.path(t.CertFile), cfg.path(t.KeyFile))
		if err != nil {
			return fmt.Errorf("mqtt.tls: %w", err)
		}
		s.embedded.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		if t.ClientCAFile != "" {
			pem, err := os.ReadFile(cfg.path(t.ClientCAFile))
			if err != nil {
				return fmt.Errorf("mqtt.tls.client_ca_file: %w", err)
			}
			s.embedded.TLS.ClientCAs = x509.NewCertPool()
			if !s.embedded.TLS.ClientCAs.AppendCertsFromPEM(pem) {
				return fmt.Errorf("mqtt.tls.client_ca_file: no certificates found")
			}
			s.embedded.TLS.ClientAuth = tls.RequireAndVerifyClientCert
		}
	}
	g.mqttSettings = s
	return nil
}

// addMQTTRoute adds an uplink rule, a downlink command route or a state
// route.
func (g *builder) addMQTTRoute(rc *RouteConfig, services map[string]*ServiceConfig) error {
	if g.mqttSettings == nil {
		return fmt.Errorf("MQTT routes need listen.mqtt (the embedded broker) or mqtt.broker")
	}
	p, err := g.mqttParts()
	if err != nil {
		return err
	}
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
		return g.addUplinkRule(rc, services)
	}
	// A downlink or state route with a call serves that method over gRPC
	// (and gRPC-Web, Connect, WebSocket), and over REST when it has a path.
	var md protoreflect.MethodDescriptor
	var method, path string
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
			MaxPending: g.cfg.MQTT.MaxPendingReplies, Method: md, Resolver: g.schema.Types(),
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
		return g.addDownlinkMethod(rc, services, md, method, path, inv)
	}
	tmpl, err := translate.ParseTemplate(path)
	if err != nil {
		return err
	}
	r := &router.Route{
		HTTPMethod: method, Template: tmpl, Target: target, Upstream: "mqtt",
		Invoker: inv, Timeout: time.Duration(rc.Timeout),
	}
	if err := g.routes.HTTP.Add(r); err != nil {
		return err
	}
	g.use(r, rc, "REST "+method+" "+tmpl.Source)
	return nil
}

// addDownlinkMethod serves md, a downlink or state route's method, with inv:
// over gRPC, gRPC-Web, Connect and WebSocket, and over REST at method and
// path, or else at POST /package.Service/Method as a service's methods
// without an HTTP rule are.
func (g *builder) addDownlinkMethod(rc *RouteConfig, services map[string]*ServiceConfig, md protoreflect.MethodDescriptor, method, path string, inv router.Invoker) error {
	name := methodPath(md)
	if g.routes.Methods[name] != nil {
		return fmt.Errorf("call %q: the method is already served", rc.Call)
	}
	svc := ServiceConfig{Name: string(md.Parent().FullName())}
	if s := services[svc.Name]; s != nil {
		svc = *s
	}
	svc.Upstream = "mqtt"
	timeout := time.Duration(rc.Timeout)
	if err := g.addMethod(md, &svc, "mqtt", inv, timeout, rc); err != nil {
		return err
	}
	if path == "" {
		method, path = "POST", name
	}
	body := rc.Body
	if body == "" && method != "GET" && method != "DELETE" {
		body = "*"
	}
	b, err := translate.NewBinding(md, method, path, body, rc.ResponseBody, g.jsonOptions(&svc), g.schema.Types())
	if err != nil {
		return err
	}
	r := grpcRoute(b, md, "mqtt", inv, timeout)
	if err := g.routes.HTTP.Add(r); err != nil {
		return err
	}
	g.use(r, rc, "REST "+method+" "+b.Template.Source)
	return nil
}

// addWatchRoute adds a GET streaming the messages of a topic filter.
func (g *builder) addWatchRoute(rc *RouteConfig, method, path string) error {
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
	r := &router.Route{
		HTTPMethod: method, Template: b.Template, Binding: b, Method: md, Target: rc.Watch, Upstream: "mqtt",
		Invoker: mqtt.NewWatcher(g.mqtt.broker, rc.Watch, md),
	}
	if err := g.routes.HTTP.Add(r); err != nil {
		return err
	}
	g.keyed(r, rc, "REST watch "+method+" "+b.Template.Source)
	return nil
}

// addUplinkRule compiles an uplink rule onto its gRPC method, its HTTP
// upstream, or its aggregate (cmd/rosetta/aggregate.go).
func (g *builder) addUplinkRule(rc *RouteConfig, services map[string]*ServiceConfig) error {
	if rc.Aggregate != nil {
		return g.addAggregateRule(rc)
	}
	if rc.Call == "" {
		return g.addHTTPUplinkRule(rc)
	}
	c, err := g.resolveCall(rc, services)
	if err != nil {
		return err
	}
	md, svc := c.method, c.service
	if md.IsStreamingClient() || md.IsStreamingServer() {
		return fmt.Errorf("call %q: an MQTT rule calls a unary method", rc.Call)
	}
	rcfg := g.ruleConfig(rc)
	rcfg.Method, rcfg.JSON, rcfg.Resolver = md, g.jsonOptions(svc), g.schema.Types()
	rule, err := mqtt.NewRule(rcfg)
	if err != nil {
		return err
	}
	rule.Route = grpcRoute(rule.Binding, md, c.upstream, c.invoker, c.timeout)
	g.mqtt.rules = append(g.mqtt.rules, rule)
	g.use(rule.Route, rc, "MQTT "+rule.Filter)
	return nil
}

// addHTTPUplinkRule compiles an uplink rule onto a plain HTTP upstream:
// the payload is the request body, sent to rewrite's method and path.
func (g *builder) addHTTPUplinkRule(rc *RouteConfig) error {
	up := g.cfg.Upstreams[rc.Upstream]
	if up == nil || up.HTTP == nil || rc.Rewrite == nil || rc.Rewrite.Path == "" {
		return fmt.Errorf("mqtt %q: an uplink rule needs call: package.Service/Method, or an http upstream with rewrite: {method, path}", rc.MQTT)
	}
	rule, err := mqtt.NewRule(g.ruleConfig(rc))
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
		Invoker: g.upstreams[rc.Upstream], Timeout: timeout,
	}
	g.mqtt.rules = append(g.mqtt.rules, rule)
	g.use(rule.Route, rc, "MQTT "+rule.Filter)
	return nil
}

// ruleConfig is the part of an uplink rule's configuration that does not
// depend on its upstream.
func (g *builder) ruleConfig(rc *RouteConfig) mqtt.RuleConfig {
	cfg := g.cfg
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
