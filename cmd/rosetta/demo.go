package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/reflection"

	"github.com/rosettagw/rosetta/examples/iot"
	"github.com/rosettagw/rosetta/examples/library"
	"github.com/rosettagw/rosetta/gateway"
)

// demo starts the example library service on a loopback port, the gateway
// on listen with schemas fetched by server reflection, and prints what to
// try. It runs until ctx ends.
func demo(ctx context.Context, listen string, out io.Writer, logger *slog.Logger) error {
	upLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := grpc.NewServer()
	library.Register(srv)
	reflection.Register(srv)

	cfg, err := gateway.ParseConfig([]byte(fmt.Sprintf(`
listen: {http: %q}
schemas:
  - reflection: {upstream: library}
upstreams:
  library: {grpc: {targets: [%q]}, timeout: 5s}
services:
  - name: example.library.v1.LibraryService
    upstream: library
    auto_mapping: true   # Ping, which has no HTTP rule, at POST /example.library.v1.LibraryService/Ping
`, listen, upLn.Addr().String())))
	if err != nil {
		return err
	}
	stopOrder, err := demoOrder(srv, upLn.Addr().String(), cfg)
	if err != nil {
		return err
	}
	defer stopOrder()
	if err := demoIoT(srv, upLn.Addr().String(), cfg); err != nil {
		return err
	}
	// Every service is registered: serving may start.
	go srv.Serve(upLn)
	defer srv.Stop()
	// The demo serves as `rosetta serve` does, from one in-memory
	// configuration; Ready prints what to try once every listener serves.
	return gateway.Serve(ctx, cfg, gateway.ServeOptions{Logger: logger, Ready: func(addr string, g *gateway.Generation) {
		printDemo(out, upLn.Addr().String(), "http://"+addr, g)
	}})
}

// printDemo prints what to try.
func printDemo(out io.Writer, upstream, base string, g *gateway.Generation) {
	fmt.Fprintf(out, `Rosetta demo: the example library service (gRPC, %s) is served as REST at %s
Schemas came from the upstream's server reflection; no code was generated.

Try:
  curl -s %[2]s/v1/shelves/1
  curl -s '%[2]s/v1/shelves/1/books?page_size=2&filter.genre=GENRE_FICTION&tags=sci-fi'
  curl -s %[2]s/v1/shelves/1/books/dune
  curl -s -X POST %[2]s/v1/shelves/1/books -H 'Content-Type: application/json' \
       -d '{"title":"Solaris","author":{"name":"Stanislaw Lem"},"genre":"GENRE_FICTION","priceCents":"1299"}'
  curl -s -X PATCH '%[2]s/v1/shelves/1/books/dune?update_mask=title' -H 'Content-Type: application/json' -d '{"title":"Dune (1965)"}'
  curl -s '%[2]s/v1/shelves/1/books:batchGet?names=shelves/1/books/dune&names=shelves/1/books/neuromancer'
  curl -s %[2]s/v1/shelves/1/books/dune/title
  curl -s %[2]s/v1/shelves/1/books/dune:download
  curl -s %[2]s/v1/assets/css/site.css
  curl -s -X POST %[2]s/example.library.v1.LibraryService/Ping -H 'Content-Type: application/json' -d '{"message":"hi"}'
  curl -s -i %[2]s/v1/shelves/1/books/missing                                   # 404, a google.rpc.Status
  curl -s -i -X POST %[2]s/v1/shelves/1/books -H 'Content-Type: application/json' -d '{"title":1}'   # 400 naming the field
  curl -s -i -X POST %[2]s/v1/shelves/1/books -H 'Content-Type: application/json' -d '{"title":"Solaris","isbn":"12-34"}'   # 400: breaks the ISBN rule
  curl -s -i -X DELETE %[2]s/v1/shelves/1                                       # 405 with Allow

The API, described: %[2]s/openapi.json (OpenAPI 3.1, also .yaml), explored: %[2]s/docs

Routes: %[2]s is serving %d routes; stop with Ctrl-C.
`, upstream, base, len(g.Routes().HTTP.Routes()))
	fmt.Fprint(out, demoOrderTry(base))
	fmt.Fprint(out, demoIoTTry(base, g))
	fmt.Fprint(out, demoStreamingTry(base))
}

// demoIoT registers the IoT example's DeviceService on srv (served at
// grpcAddr, before it serves) and adds its MQTT rules and REST routes, with
// the embedded broker on 127.0.0.1:1883 (or a free port when that one is
// taken), to cfg.
func demoIoT(srv *grpc.Server, grpcAddr string, cfg *gateway.Config) error {
	iot.Register(srv)
	ic, err := gateway.ParseConfig(iot.Config)
	if err != nil {
		return fmt.Errorf("examples/iot/rosetta.yaml: %w", err)
	}
	ic.Upstreams["iot"].GRPC.Targets = []gateway.Target{{Addr: grpcAddr}}
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
func demoIoTTry(base string, g *gateway.Generation) string {
	addr := g.MQTTAddr()
	if addr == "" {
		return ""
	}
	host, port, _ := net.SplitHostPort(addr)
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
`, addr, host, port, pub, base, strings.TrimPrefix(base, "http://"))
}

// demoStreamingTry lists the demo's streaming calls to try.
func demoStreamingTry(base string) string {
	return fmt.Sprintf(`
Streams (NDJSON, Server-Sent Events, Connect):
  curl -sN %[1]s/v1/shelves/1/books:stream
  curl -sN -H 'Accept: text/event-stream' %[1]s/v1/shelves/2/books:stream
  curl -s -X POST %[1]s/example.library.v1.LibraryService/GetBook -H 'Content-Type: application/json' \
       -H 'Connect-Protocol-Version: 1' -d '{"name":"shelves/1/books/dune"}'
WebSocket and gRPC, with any client:
  %[2]s/ws/example.library.v1.LibraryService/Chat   (subprotocol rosetta.json; send {"message":"hi"}, an empty frame ends)
  gRPC clients (h2c) at %[3]s, e.g. grpcurl -plaintext -proto example/library/v1/library.proto -import-path proto ...
`, base, "ws"+strings.TrimPrefix(base, "http"), strings.TrimPrefix(base, "http://"))
}
