// Command rosetta is the Rosetta gateway: it serves gRPC services as
// REST/JSON from their google.api.http annotations, with schemas loaded at
// start-up and no generated code.
//
// Usage:
//
//	rosetta serve  -config FILE   serve until SIGINT/SIGTERM, then drain
//	rosetta check  -config FILE   validate everything a start would; list every problem
//	rosetta routes -config FILE   print the compiled route table
//	rosetta demo   [-listen ADDR] run the example services and the gateway in-process
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/rosettagw/rosetta/transports/rest"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `usage: rosetta <command> [flags]

commands:
  serve  -config FILE   serve until SIGINT/SIGTERM, then drain in-flight calls
  check  -config FILE   validate the configuration, schemas and routes; exit 1 listing every problem
  routes -config FILE   print the compiled route table
  demo   [-listen ADDR] start the example services and the gateway, and print what to try
`

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "configuration file (YAML)")
	listen := fs.String("listen", "127.0.0.1:8080", "demo: the gateway's HTTP address")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	logger := slog.New(slog.NewTextHandler(stderr, nil))

	switch args[0] {
	case "demo":
		if err := demo(ctx, *listen, stdout, logger); err != nil {
			fmt.Fprintln(stderr, "rosetta demo:", err)
			return 1
		}
		return 0
	case "serve", "check", "routes":
	default:
		fmt.Fprint(stderr, usage)
		return 2
	}
	if *configPath == "" {
		fmt.Fprintf(stderr, "rosetta %s: -config is required\n", args[0])
		return 2
	}
	cfg, err := LoadConfig(*configPath)
	if err != nil {
		fmt.Fprintln(stderr, "rosetta:", err)
		return 1
	}
	g, err := build(ctx, cfg)
	defer g.close()
	if err != nil {
		fmt.Fprintf(stderr, "rosetta %s: %s: configuration has problems:\n", args[0], *configPath)
		for _, e := range flatten(err) {
			fmt.Fprintln(stderr, "  -", e)
		}
		return 1
	}
	switch args[0] {
	case "check":
		fmt.Fprintf(stdout, "%s: OK (%d routes)\n", *configPath, len(g.table.Routes()))
		for _, s := range g.skipped {
			fmt.Fprintln(stdout, "  note:", s)
		}
		return 0
	case "routes":
		printRoutes(stdout, g)
		return 0
	}
	if cfg.AccessLog != nil && !*cfg.AccessLog {
		logger = slog.New(withoutAccess{logger.Handler()})
	}
	if err := serve(ctx, cfg, g, logger); err != nil {
		fmt.Fprintln(stderr, "rosetta serve:", err)
		return 1
	}
	return 0
}

// flatten lists the errors joined into err.
func flatten(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, flatten(e)...)
		}
		return out
	}
	return []error{err}
}

func printRoutes(w io.Writer, g *gateway) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "METHOD\tTEMPLATE\tTARGET\tUPSTREAM")
	for _, r := range routeRows(g) {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.Method, r.Template, r.Target, r.Upstream)
	}
	tw.Flush()
}

// serve runs the HTTP listener until ctx ends, then drains.
func serve(ctx context.Context, cfg *Config, g *gateway, logger *slog.Logger) error {
	adm, err := startAdmin(ctx, cfg, g, logger)
	if err != nil {
		return err
	}
	defer adm.stop()
	addr := cfg.Listen.HTTP
	if addr == "" {
		addr = "127.0.0.1:8080"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	handler := newFrontDoor(cfg, g, rest.New(g.restGeneration(), rest.Options{
		MaxBodyBytes: int64(cfg.HTTP.MaxBodyBytes), ForwardHeaders: cfg.HTTP.ForwardHeaders, Logger: logger,
	}), logger)
	stopMQTT, err := startMQTT(ctx, cfg, g, logger)
	if err != nil {
		ln.Close()
		return err
	}
	defer stopMQTT()
	adm.markReady()
	logger.Info("serving", "http", ln.Addr().String(), "routes", len(g.table.Routes()))
	err = serveHTTP(ctx, g.security.listener(ln), g.security.httpHandler(g, handler), time.Duration(cfg.ShutdownTimeout), logger)
	handler.closeStreams(time.Duration(cfg.ShutdownTimeout), logger)
	return err
}

// serveHTTP serves h on ln (HTTP/1.1 and h2c) until ctx ends, then stops
// accepting and waits up to drain for in-flight calls.
func serveHTTP(ctx context.Context, ln net.Listener, h http.Handler, drain time.Duration, logger *slog.Logger) error {
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	protocols.SetHTTP2(true) // over TLS, when security.tls is set
	srv := &http.Server{
		Handler:           h,
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

// withoutAccess drops the per-call "access" records every ingress writes.
type withoutAccess struct{ slog.Handler }

func (h withoutAccess) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == "access" {
		return nil
	}
	return h.Handler.Handle(ctx, r)
}

func (h withoutAccess) WithAttrs(attrs []slog.Attr) slog.Handler {
	return withoutAccess{h.Handler.WithAttrs(attrs)}
}

func (h withoutAccess) WithGroup(name string) slog.Handler {
	return withoutAccess{h.Handler.WithGroup(name)}
}
