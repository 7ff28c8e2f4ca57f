package gateway

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/rosettagw/rosetta/accesslog"
	"github.com/rosettagw/rosetta/router"
	"github.com/rosettagw/rosetta/security/cors"
	"github.com/rosettagw/rosetta/security/limits"
	"github.com/rosettagw/rosetta/tracing"
	"github.com/rosettagw/rosetta/transports/admin"
	"github.com/rosettagw/rosetta/transports/grpcserver"
	"github.com/rosettagw/rosetta/transports/grpcweb"
	"github.com/rosettagw/rosetta/transports/rest"
	"github.com/rosettagw/rosetta/transports/websocket"
)

// ServeOptions configure Serve.
type ServeOptions struct {
	// File is the configuration file, read again by each reload ("": no
	// reload).
	File string
	// Logger receives the log.
	Logger *slog.Logger
	// AccessLog, when set, receives one line per call (see NewLogger).
	AccessLog *accesslog.Logger
	// Reload asks for a reload each time it receives (SIGHUP).
	Reload <-chan struct{}
	// Ready is called once every listener serves, with the HTTP
	// listener's address and the serving generation.
	Ready func(httpAddr string, g *Generation)
}

// Serve runs the gateway cfg describes until ctx ends, then stops accepting
// and drains the calls in flight for shutdown_timeout. It reloads the
// configuration on opts.Reload, on POST /admin/reload and, unless
// reload.watch is false, when the configuration file or a file it names
// changes.
func Serve(ctx context.Context, cfg *Config, opts ServeOptions) error {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	// go-redis logs its own (connection pool) problems; they go to the
	// process's log, in its format, not as plain text beside it.
	redis.SetLogger(redisLog{logger})
	var metrics *admin.Metrics
	if cfg.Listen.Admin != "" {
		metrics = admin.NewMetrics()
	}
	tp, err := tracing.New(ctx, cfg.Tracing)
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := tp.Shutdown(sctx); err != nil {
			logger.Warn("tracing: the last spans were not exported", "error", err)
		}
	}()
	live, err := NewLive(ctx, cfg, LiveOptions{File: opts.File, Logger: logger, Metrics: metrics, Tracer: tp.Tracer()})
	if err != nil {
		return err
	}
	defer live.Close()
	first := live.Current()
	adm, err := startAdmin(ctx, cfg.Listen.Admin, live, metrics, logger)
	if err != nil {
		return err
	}
	defer adm.stop()
	ln, err := net.Listen("tcp", cmp.Or(cfg.Listen.HTTP, "127.0.0.1:8080"))
	if err != nil {
		return err
	}
	var grpcLn net.Listener
	if cfg.Listen.GRPC != "" {
		if grpcLn, err = net.Listen("tcp", cfg.Listen.GRPC); err != nil {
			ln.Close()
			return err
		}
		grpcLn = connLimit(grpcLn, first.sec)
	}
	// A listener that fails ends the other's serving too.
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	door := newFrontDoor(cfg, live, opts.AccessLog)
	// Streams end when draining starts: they would hold it to its deadline.
	door.limits.Stop = ctx
	if metrics != nil {
		metrics.Register(door.ws.Collector())
	}
	stopMQTT, err := startMQTT(ctx, live, logger, opts.AccessLog)
	if err != nil {
		ln.Close()
		if grpcLn != nil {
			grpcLn.Close()
		}
		return err
	}
	defer stopMQTT()
	stopWatch := watch(ctx, live, cfg, opts.Reload, logger)
	defer stopWatch()
	adm.markReady()
	attrs := []any{"http", ln.Addr().String(), "generation", first.Seq, "routes", len(first.routes.HTTP.Routes()), "methods", len(first.routes.Methods)}
	if grpcLn != nil {
		attrs = append(attrs, "grpc", grpcLn.Addr().String())
	}
	logger.Info("serving", attrs...)
	if opts.Ready != nil {
		opts.Ready(ln.Addr().String(), first)
	}
	drain := time.Duration(cfg.ShutdownTimeout)
	grpcDone := make(chan error, 1)
	if grpcLn != nil {
		native := door.newNativeGRPC(cfg, first.sec.tls)
		go func() {
			err := serveNativeGRPC(ctx, grpcLn, native, drain, logger)
			stop()
			grpcDone <- err
		}()
	} else {
		grpcDone <- nil
	}
	err = serveHTTP(ctx, listener(ln, first.sec), door, drain, logger)
	stop()
	door.closeStreams(drain, logger)
	return errors.Join(err, <-grpcDone)
}

// listener bounds the connections per client and makes ln speak TLS, as
// the security section configures.
func listener(ln net.Listener, s *securityParts) net.Listener {
	ln = connLimit(ln, s)
	if s.tls != nil {
		ln = tls.NewListener(ln, s.tls)
	}
	return ln
}

// connLimit bounds the connections per client on ln, as the security
// section's limits configure.
func connLimit(ln net.Listener, s *securityParts) net.Listener {
	if n := s.limits.MaxConnsPerClient; n > 0 {
		ln = limits.Listener(ln, n, nil)
	}
	return ln
}

// serveHTTP serves door on ln (HTTP/1.1 and h2c) until ctx ends, then
// stops accepting and waits up to drain for in-flight calls. Every
// request's context carries door's stream limits, set once in the
// listener's base context rather than per request.
func serveHTTP(ctx context.Context, ln net.Listener, door *frontDoor, drain time.Duration, logger *slog.Logger) error {
	base := router.WithStreamLimits(context.Background(), door.limits)
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	protocols.SetHTTP2(true) // over TLS, when security.tls is set
	srv := &http.Server{
		Handler:           door,
		BaseContext:       func(net.Listener) context.Context { return base },
		Protocols:         &protocols,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    1 << 20,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	if drain <= 0 {
		drain = 15 * time.Second
	}
	logger.Info("shutting down", "drain", drain)
	sctx, cancel := context.WithTimeout(context.Background(), drain)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("drain: %w", err)
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// genKey keys the generation a request runs on (its *held) in its context.
type genKey struct{}

// routesOf returns the routes of the generation ctx holds, or else of the
// serving one: what the ingresses read.
func (l *Live) routesOf(ctx context.Context) *router.Routes {
	if h, ok := ctx.Value(genKey{}).(*held); ok {
		return h.gen.routes
	}
	return l.Routes()
}

// holdOf holds the generation ctx runs on once more, for a call that
// outlives its request's handler (an upgraded WebSocket).
func holdOf(ctx context.Context) (release func()) {
	h, ok := ctx.Value(genKey{}).(*held)
	if !ok {
		return func() {}
	}
	h.refs.Add(1) // the request holds it: it cannot have been closed
	if x, ok := ctx.Value(exchangeKey{}).(*exchange); ok {
		// The call's access-log line waits for its end.
		x.detached = true
		return func() {
			x.finish()
			h.release()
		}
	}
	return h.release
}

// frontDoor puts every ingress on one HTTP listener. For each request it
// takes the serving generation (held until the request, a stream's whole
// life included, ends), answers CORS preflights from the cors policy of the
// method asked about, and chooses the ingress by the request: a WebSocket
// upgrade, gRPC (HTTP/2 with application/grpc), gRPC-Web or Connect (by
// Content-Type and Connect-Protocol-Version), or REST.
type frontDoor struct {
	live    *Live
	rest    http.Handler
	ws      *websocket.Handler
	grpc    *grpcserver.Server
	grpcWeb *grpcweb.Handler
	inner   http.Handler // limits, then CORS, then the ingresses
	// limits bound the streams of every request.
	limits router.StreamLimits
	access *accesslog.Logger
}

// newFrontDoor builds the ingresses. Their settings are the listener's
// and are read once, at start.
func newFrontDoor(cfg *Config, live *Live, access *accesslog.Logger) *frontDoor {
	wc := cfg.WebSocket
	maxBody := int(cfg.HTTP.MaxBodyBytes)
	f := &frontDoor{
		live:   live,
		limits: router.StreamLimits{Idle: cmp.Or(time.Duration(cfg.HTTP.StreamIdleTimeout), 5*time.Minute)},
		access: access,
		rest:   rest.New(live.routesOf, rest.Options{MaxBodyBytes: int64(maxBody), ForwardHeaders: cfg.HTTP.ForwardHeaders}),
		ws: websocket.New(live.routesOf, websocket.Options{
			Prefix: wc.Prefix, PingInterval: time.Duration(wc.PingInterval), IdleTimeout: time.Duration(wc.IdleTimeout),
			MaxMessageBytes: int64(wc.MaxMessage), ForwardHeaders: cfg.HTTP.ForwardHeaders,
			WriteTimeout: time.Duration(wc.WriteTimeout), Logger: live.log,
			Hold: holdOf,
		}),
		grpc:    grpcserver.New(live.routesOf, grpcserver.Options{MaxMessageBytes: maxBody}),
		grpcWeb: grpcweb.New(live.routesOf, grpcweb.Options{MaxMessageBytes: maxBody}),
	}
	f.inner = limits.Handler(cors.Handler(http.HandlerFunc(f.dispatch), f.corsPolicy), cfg.Security.Limits)
	return f
}

// ServeHTTP serves one request on the generation serving now. Its context
// comes from the listener's base context (see serveHTTP), which carries
// the stream limits.
func (f *frontDoor) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h, _ := f.live.acquire()
	defer h.release()
	if f.access != nil {
		f.serveLogged(w, r, h)
		return
	}
	f.inner.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), genKey{}, h)))
}

// corsPolicy finds the cors policy of the method a request (or preflight)
// asks for: SameOrigin for a route whose method has none, nil when no
// route takes it.
func (f *frontDoor) corsPolicy(method string, r *http.Request) *cors.Policy {
	g := r.Context().Value(genKey{}).(*held).gen
	var route *router.Route
	if method == http.MethodPost || method == http.MethodGet {
		route = g.routes.Methods[r.URL.Path]
	}
	if route == nil {
		route = g.routes.HTTP.Lookup(method, r.URL.EscapedPath(), nil).Route
	}
	if route == nil {
		return nil
	}
	if p := g.sec.cors[route]; p != nil {
		return p
	}
	return cors.SameOrigin
}

func (f *frontDoor) dispatch(w http.ResponseWriter, r *http.Request) {
	ct := r.Header.Get("Content-Type")
	var h http.Handler
	var protocol string
	switch {
	case f.ws.IsUpgrade(r):
		h, protocol = f.ws, "websocket"
	case r.ProtoMajor == 2 && (ct == "application/grpc" || strings.HasPrefix(ct, "application/grpc+")):
		h, protocol = f.grpc, "grpc"
	case f.grpcWeb.Handles(r):
		h, protocol = f.grpcWeb, "connect"
		if strings.HasPrefix(ct, "application/grpc-web") {
			protocol = "grpc-web"
		}
	default:
		h, protocol = f.rest, "http"
	}
	if rec := accesslog.FromContext(r.Context()); rec != nil {
		rec.Protocol = protocol
	}
	h.ServeHTTP(w, r)
}

// closeStreams ends the WebSocket calls still open once the HTTP server has
// drained (it does not track upgraded connections), waiting up to drain.
func (f *frontDoor) closeStreams(drain time.Duration, logger *slog.Logger) {
	if drain <= 0 {
		drain = 15 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), drain)
	defer cancel()
	if err := f.ws.Shutdown(ctx); err != nil {
		logger.Warn("WebSocket calls did not end in time", "err", err)
	}
}

// adminServer serves the admin endpoints of listen.admin.
type adminServer struct {
	srv *http.Server
	// ready is set once the gateway takes calls; readiness ends with the
	// serve context, when draining starts.
	ready atomic.Bool
}

// startAdmin serves the admin endpoints when addr is set; it returns nil
// otherwise. /readyz answers 200 from markReady until ctx ends.
func startAdmin(ctx context.Context, addr string, live *Live, metrics *admin.Metrics, logger *slog.Logger) (*adminServer, error) {
	if addr == "" {
		return nil, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	a := &adminServer{}
	a.srv = &http.Server{
		Handler: admin.New(admin.Options{
			Metrics: metrics,
			Ready:   func() bool { return a.ready.Load() && ctx.Err() == nil },
			Routes:  func() any { return live.Current().Table() },
			Reload: func(ctx context.Context) (any, error) {
				err := live.Reload(ctx)
				return live.Status(), err
			},
			Status:    func() any { return live.Status() },
			Upstreams: func() any { return live.Current().UpstreamStatus() },
			Down:      func() []string { return live.Current().DownUpstreams() },
			Purge: func(ctx context.Context, prefix string) (int, error) {
				return live.Current().PurgeCache(ctx, prefix)
			},
		}),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      2 * time.Minute, // a reload may load schemas by reflection
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	go func() {
		if err := a.srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			logger.Error("admin listener failed", "error", err)
		}
	}()
	logger.Info("serving", "admin", ln.Addr().String())
	return a, nil
}

// markReady makes /readyz answer 200 (until the serve context ends).
func (a *adminServer) markReady() {
	if a != nil {
		a.ready.Store(true)
	}
}

// stop closes the admin listener and its connections.
func (a *adminServer) stop() {
	if a != nil {
		a.srv.Close()
	}
}
