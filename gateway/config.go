package gateway

import (
	"log/slog"

	"github.com/rosettagw/rosetta/tracing"

	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/rosettagw/rosetta/security"
	"github.com/rosettagw/rosetta/security/identity"
	"github.com/rosettagw/rosetta/security/limits"
	"github.com/rosettagw/rosetta/security/servertls"
)

// Config is the whole configuration file.
type Config struct {
	Listen    Listen               `yaml:"listen"`
	Schemas   []SchemaConfig       `yaml:"schemas"`
	Upstreams map[string]*Upstream `yaml:"upstreams"`
	Services  []ServiceConfig      `yaml:"services"`
	Routes    []RouteConfig        `yaml:"routes"`
	HTTP      HTTPConfig           `yaml:"http"`
	WebSocket WebSocketConfig      `yaml:"websocket"`
	MQTT      MQTTConfig           `yaml:"mqtt"`
	// Policies are the named security policies, referenced by services,
	// routes and security.policies.
	Policies map[string]*PolicyConfig `yaml:"policies"`
	Security SecurityConfig           `yaml:"security"`
	Redis    RedisConfig              `yaml:"redis"`
	// Cache is the response cache of side-effect-free methods (nil: only
	// methods with a cache setting of their own are cached, in memory).
	Cache *CacheConfig `yaml:"cache"`
	// ShutdownTimeout bounds the drain of in-flight calls on SIGTERM.
	ShutdownTimeout Duration `yaml:"shutdown_timeout"`
	// AccessLog writes one log line per call (default true); turning it off
	// saves its CPU under heavy load.
	AccessLog *bool `yaml:"access_log"`
	// Log sets the level and format of the process's log.
	Log LogConfig `yaml:"log"`
	// Tracing exports OpenTelemetry spans of every call (off by default).
	Tracing tracing.Config `yaml:"tracing"`

	// Reload configures live reload.
	Reload ReloadConfig `yaml:"reload"`
	// OpenAPI serves the OpenAPI document of the HTTP routes.
	OpenAPI OpenAPIConfig `yaml:"openapi"`

	// dir is the directory of the config file; relative paths resolve there.
	dir string
	// file is the configuration file ("" when parsed from bytes).
	file string
	// files records the files the configuration names, as Build resolves
	// them.
	files map[string]bool
}

// LogConfig is the log section.
type LogConfig struct {
	// Level is the least level logged: debug, info (the default), warn or
	// error. Access-log lines are info: above it, there are none.
	Level string `yaml:"level"`
	// Format is json (the default: one JSON object a line) or text
	// (slog's key=value lines).
	Format string `yaml:"format"`
	// FlushInterval is how long an access-log line may wait in a buffer
	// before it is written (default 1s, as Envoy's file access log): one
	// write for many lines instead of one per call. 0s writes each line
	// at once. What is buffered is written when the gateway stops.
	FlushInterval *Duration `yaml:"flush_interval"`
}

// check reports what is wrong with the log section.
func (lc LogConfig) check() error {
	if _, err := lc.level(); err != nil {
		return err
	}
	switch lc.Format {
	case "", "json", "text":
		return nil
	}
	return fmt.Errorf("log.format %q: want json or text", lc.Format)
}

func (lc LogConfig) level() (slog.Level, error) {
	var l slog.Level
	if lc.Level == "" {
		return slog.LevelInfo, nil
	}
	if err := l.UnmarshalText([]byte(lc.Level)); err != nil {
		return 0, fmt.Errorf("log.level %q: want debug, info, warn or error", lc.Level)
	}
	return l, nil
}

// ReloadConfig configures live reload.
type ReloadConfig struct {
	// Watch reloads when the configuration file, or a file it names,
	// changes (default true).
	Watch *bool `yaml:"watch"`
	// Debounce is how long changes must settle before a reload (default
	// 500ms).
	Debounce Duration `yaml:"debounce"`
	// ReflectionInterval, when set, rebuilds the generation that often to
	// refresh schemas fetched by server reflection.
	ReflectionInterval Duration `yaml:"reflection_interval"`
}

// SecurityConfig is the security section: what applies to every route and
// to the HTTP listener.
type SecurityConfig struct {
	// Policies names the policies every method runs, before its own.
	Policies []string `yaml:"policies"`
	// TrustedProxies are the prefixes of the proxies whose Forwarded and
	// X-Forwarded-For headers are believed.
	TrustedProxies []string `yaml:"trusted_proxies"`
	// ClientIPHeader is the one header the client address is read from,
	// when the peer is a trusted proxy: X-Forwarded-For (the default) or
	// Forwarded. Its right-most untrusted hop is the client.
	ClientIPHeader string `yaml:"client_ip_header"`
	// IdentityHeaders maps upstream metadata keys to identity fields
	// ("subject", "method", "scopes", "claim:NAME"); clients' copies of
	// these keys are dropped on every route.
	IdentityHeaders identity.Config `yaml:"identity_headers"`
	// TLS makes the HTTP listener speak TLS, optionally with client
	// certificates.
	TLS *servertls.Config `yaml:"tls"`
	// Limits bound the URL and headers of HTTP requests.
	Limits limits.Config `yaml:"limits"`
}

// PolicyConfig is one named policy of the policies section: one key, the
// policy's kind (jwt, api_key, mtls, authorize, ip_filter, cors,
// rate_limit: every kind a security package registers), holding that
// kind's configuration, decoded as strictly as the rest of the file.
type PolicyConfig struct {
	// Kind is the policy's kind.
	Kind string
	// Config is the kind's decoded configuration (a pointer to its Config
	// type).
	Config any
	// err is why the entry names no kind; Build reports it with the
	// policy's name.
	err error
}

// UnmarshalYAML decodes the policy through its kind's configuration type.
// It takes the decoder's own unmarshal function so that unknown keys are
// refused with their line, as everywhere in the file.
func (p *PolicyConfig) UnmarshalYAML(unmarshal func(any) error) error {
	var keys map[string]yaml.Node
	if err := unmarshal(&keys); err != nil {
		return err
	}
	kinds := strings.Join(security.KindNames(), ", ")
	if len(keys) != 1 {
		p.err = fmt.Errorf("set exactly one of %s", kinds)
		return nil
	}
	for name, node := range keys {
		kind, ok := security.LookupKind(name)
		if !ok {
			p.err = fmt.Errorf("line %d: unknown policy kind %q (want one of %s)", node.Line, name, kinds)
			return nil
		}
		cfg := kind.Config()
		holder := reflect.New(reflect.StructOf([]reflect.StructField{{
			Name: "V", Type: reflect.TypeOf(cfg), Tag: reflect.StructTag(`yaml:"` + name + `"`),
		}}))
		holder.Elem().Field(0).Set(reflect.ValueOf(cfg))
		if err := unmarshal(holder.Interface()); err != nil {
			return err
		}
		p.Kind, p.Config = name, holder.Elem().Field(0).Interface()
	}
	return nil
}

// RedisConfig is the redis section: the Redis shared by the gateways (rate
// limits with store: redis, the response cache with store: redis).
type RedisConfig struct {
	Addr string `yaml:"addr"`
	// PasswordFile holds the password (the file, not the config, holds the
	// secret).
	PasswordFile string `yaml:"password_file"`
	DB           int    `yaml:"db"`
	// Timeout bounds one rate-limit decision or cache operation (default
	// 100ms); a slower Redis counts as unreachable.
	Timeout Duration `yaml:"timeout"`
}

// CacheConfig is the cache section: where answers are kept, the bounds,
// and the rule of every side-effect-free method (marked idempotency_level
// NO_SIDE_EFFECTS, or bound to a GET).
type CacheConfig struct {
	// Store is memory (the default: bounded by MaxBytes, least recently
	// used evicted first) or redis (the redis section's server, shared by
	// replicas).
	Store string `yaml:"store"`
	// MaxBytes bounds the in-memory store (default 64MiB).
	MaxBytes ByteSize `yaml:"max_bytes"`
	// MaxEntryBytes bounds one answer; a larger one is not stored
	// (default 1MiB).
	MaxEntryBytes ByteSize `yaml:"max_entry_bytes"`
	// TTL, when set, caches every side-effect-free method for that long;
	// otherwise only methods with a cache setting of their own are.
	TTL Duration `yaml:"ttl"`
	// Vary are request headers whose values are part of every key.
	Vary []string `yaml:"vary"`
}

// MethodCacheConfig caches the answers of a method: on a service, its
// side-effect-free methods; on a route, the method it calls, whatever its
// idempotency level.
type MethodCacheConfig struct {
	// TTL is how long an answer is served (0s: not cached).
	TTL Duration `yaml:"ttl"`
	// Vary are request headers whose values are part of the key, besides
	// the cache section's.
	Vary []string `yaml:"vary"`
}

// ValidationConfig switches the enforcement of the schema's own buf.validate
// rules for a service or a route.
type ValidationConfig struct {
	// Requests checks request messages before the upstream sees them
	// (default true wherever the schema declares rules).
	Requests *bool `yaml:"requests"`
	// Responses checks upstream responses: "" (off), "log" (log and count)
	// or "fail" (log, count and answer INTERNAL). Meant for test
	// environments.
	Responses string `yaml:"responses"`
}

// WebSocketConfig configures the WebSocket ingress (the websocket key).
// Which origins may open sockets is the methods' cors policy's business.
type WebSocketConfig struct {
	// Prefix is the path prefix of the methods (default /ws): a method is
	// at PREFIX/package.Service/Method.
	Prefix       string   `yaml:"prefix"`
	PingInterval Duration `yaml:"ping_interval"`
	IdleTimeout  Duration `yaml:"idle_timeout"`
	// WriteTimeout drops a client that reads nothing for that long while
	// a message waits for it (default 10s).
	WriteTimeout Duration `yaml:"write_timeout"`
	MaxMessage   ByteSize `yaml:"max_message_bytes"`
	// AllowQueryToken accepts a bearer token in the access_token query
	// parameter (default false: such a request is refused).
	AllowQueryToken bool `yaml:"allow_query_token"`
}

// Listen names the listeners' addresses.
type Listen struct {
	HTTP string `yaml:"http"`
	// GRPC is the address of a listener for native gRPC only, served by
	// grpc-go's own HTTP/2 transport (TLS as security.tls sets it); off
	// when empty. Native gRPC is served on HTTP too, more slowly.
	GRPC string `yaml:"grpc"`
	// MQTT is the embedded MQTT broker's address.
	MQTT string `yaml:"mqtt"`
	// Admin is the address of health, readiness, route, reload and metrics
	// endpoints; off when empty.
	Admin string `yaml:"admin"`
}

// SchemaConfig is one schema source; exactly one field is set.
type SchemaConfig struct {
	DescriptorSet string            `yaml:"descriptor_set"`
	Proto         *ProtoConfig      `yaml:"proto"`
	Reflection    *ReflectionConfig `yaml:"reflection"`
}

// ProtoConfig names .proto sources compiled at start-up.
type ProtoConfig struct {
	ImportPaths []string `yaml:"import_paths"`
	Files       []string `yaml:"files"`
}

// ReflectionConfig fetches schemas from an upstream's server reflection.
type ReflectionConfig struct {
	Upstream string   `yaml:"upstream"`
	Services []string `yaml:"services"`
}

// Upstream is one gRPC or plain HTTP upstream.
type Upstream struct {
	GRPC *GRPCUpstream `yaml:"grpc"`
	HTTP *HTTPUpstream `yaml:"http"`
	// Timeout is the default deadline of calls to this upstream.
	Timeout Duration `yaml:"timeout"`
	// Retry retries the calls that are safe to repeat (default: none).
	Retry *RetryConfig `yaml:"retry"`
	// Balancer spreads the calls over the endpoints: round_robin (the
	// default), least_request (weight-aware, as Envoy's) or weighted.
	Balancer string `yaml:"balancer"`
	// HealthCheck probes every endpoint (default: none, every endpoint
	// counts as healthy).
	HealthCheck *HealthCheckConfig `yaml:"health_check"`
	// OutlierDetection ejects endpoints whose calls keep failing (default:
	// none).
	OutlierDetection *OutlierConfig `yaml:"outlier_detection"`
	// CircuitBreaker answers UNAVAILABLE at once while most calls fail
	// (default: none).
	CircuitBreaker *BreakerConfig `yaml:"circuit_breaker"`
	// PanicThreshold (percent, default 50): while fewer of the endpoints
	// are usable, calls go to all of them; 0 answers UNAVAILABLE when none
	// is usable instead.
	PanicThreshold *int `yaml:"panic_threshold"`
	// Discovery finds the endpoints in DNS, etcd or Consul, instead of
	// grpc.targets (or the host of http.url), and follows their changes.
	Discovery *DiscoveryConfig `yaml:"discovery"`
}

// DiscoveryConfig names one source of an upstream's endpoints.
type DiscoveryConfig struct {
	DNS    *DNSDiscovery    `yaml:"dns"`
	Etcd   *EtcdDiscovery   `yaml:"etcd"`
	Consul *ConsulDiscovery `yaml:"consul"`
	// MaxEndpoints bounds the set (default 256).
	MaxEndpoints int `yaml:"max_endpoints"`
	// InitialTimeout bounds the wait for the first set when the upstream
	// is first built (default 10s).
	InitialTimeout Duration `yaml:"initial_timeout"`
}

// DNSDiscovery reads A/AAAA records of Name (at Port), or its SRV records,
// refreshed on their TTL.
type DNSDiscovery struct {
	Name string `yaml:"name"`
	Port int    `yaml:"port"`
	SRV  bool   `yaml:"srv"`
	// Resolver is the DNS server, "host:port" (default: the first
	// nameserver of /etc/resolv.conf).
	Resolver string   `yaml:"resolver"`
	MinTTL   Duration `yaml:"min_ttl"`
	MaxTTL   Duration `yaml:"max_ttl"`
}

// EtcdDiscovery watches the keys under Prefix: each one endpoint.
type EtcdDiscovery struct {
	Endpoints    []string `yaml:"endpoints"`
	Prefix       string   `yaml:"prefix"`
	Username     string   `yaml:"username"`
	PasswordFile string   `yaml:"password_file"`
}

// ConsulDiscovery follows the passing instances of a Consul service.
type ConsulDiscovery struct {
	Address    string `yaml:"address"`
	Service    string `yaml:"service"`
	Tag        string `yaml:"tag"`
	Datacenter string `yaml:"datacenter"`
	TokenFile  string `yaml:"token_file"`
}

// HealthCheckConfig is an upstream's active health check: grpc.health.v1
// Check for a gRPC upstream, a GET of path for an HTTP one.
type HealthCheckConfig struct {
	// Interval between probes (default 5s); Timeout of one (default 1s).
	Interval Duration `yaml:"interval"`
	Timeout  Duration `yaml:"timeout"`
	// HealthyThreshold good probes in a row make an endpoint healthy
	// (default 1), UnhealthyThreshold failed ones unhealthy (default 2).
	HealthyThreshold   int `yaml:"healthy_threshold"`
	UnhealthyThreshold int `yaml:"unhealthy_threshold"`
	// Service is the gRPC health service name (default "": the server).
	Service string `yaml:"service"`
	// Path is the HTTP probe's path (default /healthz; a 2xx is healthy).
	Path string `yaml:"path"`
}

// OutlierConfig is an upstream's passive outlier detection.
type OutlierConfig struct {
	// ConsecutiveFailures eject an endpoint (default 5).
	ConsecutiveFailures int `yaml:"consecutive_failures"`
	// BaseEjectionTime times the number of ejections is how long an
	// ejection lasts (default 30s), at most MaxEjectionTime (default 300s).
	BaseEjectionTime Duration `yaml:"base_ejection_time"`
	MaxEjectionTime  Duration `yaml:"max_ejection_time"`
	// MaxEjectionPercent of the endpoints may be ejected at once (default
	// 10; one always may).
	MaxEjectionPercent int `yaml:"max_ejection_percent"`
}

// BreakerConfig is an upstream's circuit breaker.
type BreakerConfig struct {
	// FailureRatio of the calls in Window (default 0.5, over 10s) opens
	// the breaker, once MinRequests (default 20) were made.
	FailureRatio float64  `yaml:"failure_ratio"`
	Window       Duration `yaml:"window"`
	MinRequests  int      `yaml:"min_requests"`
	// OpenDuration the breaker answers UNAVAILABLE (default 30s), then lets
	// HalfOpenRequests probes through (default 3).
	OpenDuration     Duration `yaml:"open_duration"`
	HalfOpenRequests int      `yaml:"half_open_requests"`
}

// Target is one static endpoint: "host:port", or {addr: "host:port",
// weight: 3} for the weighted and least_request balancers.
type Target struct {
	Addr   string `yaml:"addr"`
	Weight int    `yaml:"weight,omitempty"`
}

// UnmarshalYAML takes "host:port" or {addr, weight}.
func (t *Target) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		t.Addr = n.Value
		return nil
	}
	type plain Target
	var p plain
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: a target is \"host:port\" or {addr: \"host:port\", weight: N}", n.Line)
	}
	// Strict, as the rest of the file.
	for i := 0; i < len(n.Content); i += 2 {
		if k := n.Content[i].Value; k != "addr" && k != "weight" {
			return fmt.Errorf("line %d: field %s not found in a target (want addr, weight)", n.Content[i].Line, k)
		}
	}
	if err := n.Decode(&p); err != nil {
		return err
	}
	if p.Addr == "" || p.Weight < 0 {
		return fmt.Errorf("line %d: a target needs addr, and a weight of 0 or more", n.Line)
	}
	*t = Target(p)
	return nil
}

// RetryConfig retries the upstream's calls that are safe to repeat: those
// of methods marked idempotency_level NO_SIDE_EFFECTS or IDEMPOTENT, and
// those made by a GET (or HEAD) binding; on UNAVAILABLE only (a connection
// that failed, a server going away), with exponential backoff and jitter,
// within a budget shared by the upstream's calls.
type RetryConfig struct {
	// Attempts bounds the attempts, the first included (default 2).
	Attempts int `yaml:"attempts"`
	// Backoff before the first retry (default 25ms), doubling up to
	// MaxBackoff (default 250ms).
	Backoff    Duration `yaml:"backoff"`
	MaxBackoff Duration `yaml:"max_backoff"`
	// BudgetPercent of the upstream's calls in flight may be retrying at
	// once (default 20), and always MinRetryConcurrency (default 3).
	BudgetPercent       int `yaml:"budget_percent"`
	MinRetryConcurrency int `yaml:"min_retry_concurrency"`
}

// GRPCUpstream lists the static targets of a gRPC upstream.
type GRPCUpstream struct {
	Targets []Target   `yaml:"targets"`
	TLS     *TLSClient `yaml:"tls"`
	// KeepaliveTime is how long a connection may carry nothing before the
	// gateway pings it (default 5m30s: a default grpc-go server refuses
	// pings more often than every 5 minutes); KeepaliveTimeout how long a
	// ping may go unanswered (default 10s).
	KeepaliveTime    Duration `yaml:"keepalive_time"`
	KeepaliveTimeout Duration `yaml:"keepalive_timeout"`
}

// TLSClient configures TLS to an upstream.
type TLSClient struct {
	CAFile     string `yaml:"ca_file"`
	CertFile   string `yaml:"cert_file"`
	KeyFile    string `yaml:"key_file"`
	ServerName string `yaml:"server_name"`
}

// HTTPUpstream is a plain HTTP/JSON upstream.
type HTTPUpstream struct {
	URL string `yaml:"url"`
	// Targets, when set, are the endpoints the calls go to, with the URL's
	// scheme and path (default: the URL's host).
	Targets []Target `yaml:"targets"`
}

// ServiceConfig exposes one gRPC service from its HTTP rules.
type ServiceConfig struct {
	Name     string `yaml:"name"`
	Upstream string `yaml:"upstream"`
	// SplitConfig, instead of Upstream, shares the service's calls
	// between upstreams (a canary).
	SplitConfig `yaml:",inline"`
	Timeout     Duration   `yaml:"timeout"`
	JSON        JSONConfig `yaml:"json"`
	// AutoMapping serves the methods without an HTTP rule over REST too,
	// at POST /package.Service/Method (default false, as grpc-gateway and
	// Envoy: a method with no rule stays off REST). It decides a REST path
	// only; which methods are served at all is Methods' and HideMethods'.
	AutoMapping *bool `yaml:"auto_mapping"`
	// Methods, when set, are the only methods of the service served, on
	// every protocol (by name: GetShelf).
	Methods []string `yaml:"methods"`
	// HideMethods are methods served on no protocol: internal RPCs of a
	// service that is otherwise exposed.
	HideMethods []string `yaml:"hide_methods"`
	// Policies names the security policies of the service's methods.
	Policies []string `yaml:"policies"`
	// Validation switches buf.validate enforcement (on by default).
	Validation *ValidationConfig `yaml:"validation"`
	// Cache caches the answers of the service's side-effect-free methods.
	Cache *MethodCacheConfig `yaml:"cache"`
}

// SplitConfig shares the calls of a service or route between upstreams
// (a canary or traffic split): each call goes to the upstream of the first
// pin it matches, else to its sticky key's upstream, else by weight.
type SplitConfig struct {
	// Split lists the upstreams and their weights (90 and 10 send 90% and
	// 10% of the calls).
	Split []SplitTargetConfig `yaml:"split"`
	// Sticky keeps a caller on one upstream of the split.
	Sticky *StickyConfig `yaml:"sticky"`
}

// SplitTargetConfig is one upstream of a split.
type SplitTargetConfig struct {
	Upstream string `yaml:"upstream"`
	// Weight is the upstream's share (0: pinned calls only).
	Weight int `yaml:"weight"`
	// Pin sends every call that carries a header or cookie value here.
	Pin *PinConfig `yaml:"pin"`
}

// PinConfig names a header, a cookie or both, and the value that pins a
// call (found in either).
type PinConfig struct {
	Header string `yaml:"header"`
	Cookie string `yaml:"cookie"`
	// Value pins the call (default "1").
	Value string `yaml:"value"`
}

// StickyConfig says where a call's sticky key is read: the caller's
// identity subject (unless identity is false) when the call is
// authenticated, else the header, else the cookie. Consistent hashing maps
// a key to an upstream, so a caller stays on one version, and a change of
// weights moves only the share of callers it must.
type StickyConfig struct {
	Identity *bool  `yaml:"identity"`
	Header   string `yaml:"header"`
	Cookie   string `yaml:"cookie"`
}

// JSONConfig chooses the JSON mapping options of a service.
type JSONConfig struct {
	UseProtoNames     bool `yaml:"use_proto_names"`
	EmitUnpopulated   bool `yaml:"emit_unpopulated"`
	EnumsAsNumbers    bool `yaml:"enums_as_numbers"`
	DiscardUnknown    bool `yaml:"discard_unknown_fields"`
	AllowUnknownQuery bool `yaml:"allow_unknown_query_params"`
}

// RouteConfig is one route the annotations do not give: an extra HTTP
// binding of a gRPC method, or a proxy to a plain HTTP upstream.
type RouteConfig struct {
	Get    string `yaml:"get"`
	Post   string `yaml:"post"`
	Put    string `yaml:"put"`
	Patch  string `yaml:"patch"`
	Delete string `yaml:"delete"`
	// Call is "package.Service/Method" for a gRPC target.
	Call         string `yaml:"call"`
	Body         string `yaml:"body"`
	ResponseBody string `yaml:"response_body"`
	// Upstream names the upstream; for Call routes it defaults to the
	// service's upstream (or split).
	Upstream string `yaml:"upstream"`
	// SplitConfig, instead of Upstream, shares a Call route's calls
	// between upstreams.
	SplitConfig `yaml:",inline"`
	Rewrite     *RewriteSpec `yaml:"rewrite"`
	Timeout     Duration     `yaml:"timeout"`
	// Policies names security policies of the method the route calls:
	// they guard the method however it is reached, not only by this route.
	Policies []string `yaml:"policies"`
	// Validation switches buf.validate enforcement of the method the
	// route calls (a method has one setting: its service's and its
	// routes' must agree).
	Validation *ValidationConfig `yaml:"validation"`
	// Cache caches the answers of the method the route calls (a method
	// has one setting: the routes calling it must agree).
	Cache *MethodCacheConfig `yaml:"cache"`
	// Aggregate composes the route from several upstream calls.
	Aggregate *AggregateConfig `yaml:"aggregate"`
	// WebSocket is an aggregate route's WebSocket path, under the
	// WebSocket prefix.
	WebSocket string `yaml:"websocket"`
	// MQTTRouteConfig makes the route an MQTT uplink rule, downlink
	// command or state route.
	MQTTRouteConfig `yaml:",inline"`
}

// RewriteSpec is the method and path sent to a plain HTTP upstream; "{var}"
// in the path takes the route's path variable.
type RewriteSpec struct {
	Method string `yaml:"method"`
	Path   string `yaml:"path"`
}

// HTTPConfig tunes the HTTP ingress.
type HTTPConfig struct {
	MaxBodyBytes   ByteSize `yaml:"max_body_bytes"`
	ForwardHeaders []string `yaml:"forward_headers"`
	// StrictQuery refuses (400 INVALID_ARGUMENT) query parameters that set
	// nothing: unknown names, any on a body "*" rule, fields already bound
	// by the path or body. Off by default: they are ignored, as
	// grpc-gateway ignores them.
	StrictQuery bool `yaml:"strict_query"`
	// StreamIdleTimeout ends a streaming call over gRPC, gRPC-Web, Connect
	// or REST (NDJSON, SSE) that has carried no message either way for
	// that long, with DEADLINE_EXCEEDED (default 5m).
	StreamIdleTimeout Duration `yaml:"stream_idle_timeout"`
}

// Duration is a time.Duration written as "5s", "250ms".
type Duration time.Duration

// UnmarshalYAML parses a Go duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil || v < 0 {
		return fmt.Errorf("line %d: invalid duration %q (want e.g. 5s, 250ms)", n.Line, n.Value)
	}
	*d = Duration(v)
	return nil
}

// ByteSize is a size in bytes, written as a number or with a KiB/MiB suffix.
type ByteSize int64

// UnmarshalYAML parses "4MiB", "512KiB" or a plain number of bytes.
func (b *ByteSize) UnmarshalYAML(n *yaml.Node) error {
	s := strings.TrimSpace(n.Value)
	mult := int64(1)
	for suffix, m := range map[string]int64{"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30} {
		if strings.HasSuffix(s, suffix) {
			s, mult = strings.TrimSpace(strings.TrimSuffix(s, suffix)), m
		}
	}
	var v int64
	if _, err := fmt.Sscan(s, &v); err != nil || v <= 0 {
		return fmt.Errorf("line %d: invalid size %q (want e.g. 4MiB, 65536)", n.Line, n.Value)
	}
	*b = ByteSize(v * mult)
	return nil
}

// LoadConfig reads and strictly decodes the configuration file.
func LoadConfig(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	cfg, err := ParseConfig(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	cfg.dir = filepath.Dir(path)
	if abs, err := filepath.Abs(path); err == nil {
		cfg.file = abs
	}
	return cfg, nil
}

// ParseConfig strictly decodes a configuration: an unknown key is an error
// naming its line.
func ParseConfig(data []byte) (*Config, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	cfg := &Config{dir: "."}
	if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return cfg, nil
}

// path resolves p relative to the config file's directory and records it
// as a file of the configuration.
func (c *Config) path(p string) string {
	if p == "" {
		return p
	}
	if !filepath.IsAbs(p) {
		p = filepath.Join(c.dir, p)
	}
	if abs, err := filepath.Abs(p); err == nil {
		p = abs
	}
	if c.files != nil {
		c.files[p] = true
	}
	return p
}

// methodPath returns the route's HTTP method and path template.
func (r *RouteConfig) methodPath() (string, string, error) {
	var method, path string
	n := 0
	for m, p := range map[string]string{"GET": r.Get, "POST": r.Post, "PUT": r.Put, "PATCH": r.Patch, "DELETE": r.Delete} {
		if p != "" {
			method, path = m, p
			n++
		}
	}
	if n != 1 {
		return "", "", fmt.Errorf("a route needs exactly one of get, post, put, patch, delete")
	}
	return method, path, nil
}
