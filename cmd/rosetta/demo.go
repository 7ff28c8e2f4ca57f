package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/reflection"

	"github.com/rosettagw/rosetta/examples/library"
	"github.com/rosettagw/rosetta/transports/rest"
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

	cfg, err := ParseConfig([]byte(fmt.Sprintf(`
listen: {http: %q}
schemas:
  - reflection: {upstream: library}
upstreams:
  library: {grpc: {targets: [%q]}, timeout: 5s}
services:
  - name: example.library.v1.LibraryService
    upstream: library
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
	g, err := build(ctx, cfg)
	defer g.close()
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	base := "http://" + ln.Addr().String()
	stopMQTT, err := startMQTT(ctx, cfg, g, logger)
	if err != nil {
		ln.Close()
		return err
	}
	defer stopMQTT()
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

Routes: %[2]s is serving %d routes; stop with Ctrl-C.
`, upLn.Addr(), base, len(g.table.Routes()))
	fmt.Fprint(out, demoOrderTry(base))
	fmt.Fprint(out, demoIoTTry(base, g))
	fmt.Fprint(out, demoStreamingTry(base))
	handler := newFrontDoor(cfg, g, rest.New(g.restGeneration(), rest.Options{Logger: logger}), logger)
	return serveHTTP(ctx, ln, handler, 5*time.Second, logger)
}
