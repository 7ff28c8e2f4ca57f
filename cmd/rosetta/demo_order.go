package main

import (
	"fmt"
	"net"
	"net/http"
	"time"

	"google.golang.org/grpc"

	"github.com/rosettagw/rosetta/examples/order"
	"github.com/rosettagw/rosetta/gateway"
)

// demoOrder registers the order example's gRPC services on srv (served at
// grpcAddr), starts its payment service on a loopback port and adds the
// composed POST /api/order/create, with its upstreams, to cfg. stop ends
// the payment service.
func demoOrder(srv *grpc.Server, grpcAddr string, cfg *gateway.Config) (stop func(), err error) {
	shop := order.New()
	shop.RegisterGRPC(srv)
	oc, err := gateway.ParseConfig(order.Config)
	if err != nil {
		return nil, fmt.Errorf("examples/order/rosetta.yaml: %w", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	pay := &http.Server{Handler: shop.PaymentHandler(), ReadHeaderTimeout: 10 * time.Second}
	go pay.Serve(ln)
	oc.Upstreams["shop"].GRPC.Targets = []gateway.Target{{Addr: grpcAddr}}
	oc.Upstreams["payments"].HTTP.URL = "http://" + ln.Addr().String()
	for name, up := range oc.Upstreams {
		cfg.Upstreams[name] = up
	}
	cfg.Routes = append(cfg.Routes, oc.Routes...)
	return func() { pay.Close() }, nil
}

// demoOrderTry is what the demo suggests trying on the composed route.
func demoOrderTry(base string) string {
	return fmt.Sprintf(`
Aggregation: POST /api/order/create calls the product service, its related
products (fanned out), the inventory (gRPC) and the payment service (HTTP):
  curl -s -X POST %[1]s/api/order/create -H 'Content-Type: application/json' \
       -d '{"orderId":"o-1","productId":"kb-1","quantity":2,"card":"4242"}'
  curl -s -i -X POST %[1]s/api/order/create -H 'Content-Type: application/json' \
       -d '{"orderId":"o-2","productId":"kb-1","quantity":1,"card":"declined"}'   # 400; the reservation is released
  curl -s -i -X POST %[1]s/api/order/create -H 'Content-Type: application/json' \
       -d '{"orderId":"o-3","productId":"nope","quantity":1}'   # 404 from the product step
`, base)
}
