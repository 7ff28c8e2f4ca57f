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
// limits with store: redis).
type RedisConfig struct {
	Addr string `yaml:"addr"`
	// PasswordFile holds the password (the file, not the config, holds the
	// secret).
	PasswordFile string `yaml:"password_file"`
	DB           int    `yaml:"db"`
	// Timeout bounds one rate-limit decision (default 100ms); a slower
	// Redis counts as unreachable.
	Timeout Duration `yaml:"timeout"`
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
	MaxMessage   ByteSize `yaml:"max_message_bytes"`
	// AllowQueryToken accepts a bearer token in the access_token query
	// parameter (default false: such a request is refused).
	AllowQueryToken bool `yaml:"allow_query_token"`
}

// Listen names the listeners' addresses.
type Listen struct {
	HTTP string `yaml:"http"`
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
	Targets []string   `yaml:"targets"`
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
}

// ServiceConfig exposes one gRPC service from its HTTP rules.
type ServiceConfig struct {
	Name     string     `yaml:"name"`
	Upstream string     `yaml:"upstream"`
	Timeout  Duration   `yaml:"timeout"`
	JSON     JSONConfig `yaml:"json"`
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
	// service's upstream.
	Upstream string       `yaml:"upstream"`
	Rewrite  *RewriteSpec `yaml:"rewrite"`
	Timeout  Duration     `yaml:"timeout"`
	// Policies names security policies of the method the route calls:
	// they guard the method however it is reached, not only by this route.
	Policies []string `yaml:"policies"`
	// Validation switches buf.validate enforcement of the method the
	// route calls (a method has one setting: its service's and its
	// routes' must agree).
	Validation *ValidationConfig `yaml:"validation"`
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
