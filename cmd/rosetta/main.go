// Command rosetta is the Rosetta gateway: it serves gRPC services as
// REST/JSON from their google.api.http annotations, and the same methods
// over WebSocket, gRPC-Web, Connect, gRPC and MQTT, with schemas loaded at
// start-up and no generated code. It only wires listeners and signals to
// the gateway package, which builds and serves each generation.
//
// Usage:
//
//	rosetta serve  -config FILE   serve until SIGINT/SIGTERM, then drain; SIGHUP reloads
//	rosetta check  -config FILE   validate everything a start would; list every problem
//	rosetta routes -config FILE   print the compiled routes and each method's chain
//	rosetta demo   [-listen ADDR] run the example services and the gateway in-process
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/rosettagw/rosetta/gateway"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `usage: rosetta <command> [flags]

commands:
  serve  -config FILE   serve until SIGINT/SIGTERM, then drain in-flight calls; SIGHUP reloads
  check  -config FILE   validate the configuration, schemas and routes; exit 1 listing every problem
  routes -config FILE   print the compiled routes and, per method, its ways in and its chain
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
	cfg, err := gateway.LoadConfig(*configPath)
	if err != nil {
		fmt.Fprintln(stderr, "rosetta:", err)
		return 1
	}
	if args[0] == "serve" {
		logger, access := gateway.NewLogger(stderr, cfg)
		defer access.Close()
		if err := gateway.Serve(ctx, cfg, gateway.ServeOptions{File: *configPath, Logger: logger, AccessLog: access, Reload: hangups(ctx)}); err != nil {
			return fail(stderr, "serve", *configPath, err)
		}
		return 0
	}
	// check and routes build exactly what serve would start, then release
	// it.
	g, err := gateway.Build(ctx, cfg, gateway.Options{})
	if err != nil {
		return fail(stderr, args[0], *configPath, err)
	}
	defer g.Close()
	if args[0] == "routes" {
		g.Table().Print(stdout)
		return 0
	}
	fmt.Fprintf(stdout, "%s: OK (%d routes); %d chains, one per method\n", *configPath, len(g.Routes().HTTP.Routes()), len(g.Table().Methods))
	for _, s := range g.Skipped() {
		fmt.Fprintln(stdout, "  note:", s)
	}
	return 0
}

// fail reports a configuration's problems, one a line.
func fail(stderr io.Writer, cmd, path string, err error) int {
	fmt.Fprintf(stderr, "rosetta %s: %s: configuration has problems:\n", cmd, path)
	for _, e := range gateway.Flatten(err) {
		fmt.Fprintln(stderr, "  -", e)
	}
	return 1
}

// hangups delivers one value per SIGHUP until ctx ends.
func hangups(ctx context.Context) <-chan struct{} {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGHUP)
	out := make(chan struct{}, 1)
	go func() {
		defer signal.Stop(sig)
		for {
			select {
			case <-ctx.Done():
				return
			case <-sig:
				select {
				case out <- struct{}{}:
				default: // a reload is already asked for
				}
			}
		}
	}()
	return out
}
