// Command vanguard serves example.library.v1.LibraryService as REST through a
// connectrpc.com/vanguard transcoder built at run time from a descriptor set
// (no generated code linked in), forwarding each call as gRPC to the upstream
// through an h2c reverse proxy: vanguard's documented set-up for a gRPC
// back end in another process.
//
// Usage:
//
//	vanguard -listen 127.0.0.1:8082 -upstream 127.0.0.1:9090 -descriptors proto/library.binpb
//
// It stops on SIGINT or SIGTERM.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/signal"
	"syscall"

	"connectrpc.com/vanguard"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"
)

// service is the service the transcoder exposes.
const service = "example.library.v1.LibraryService"

func main() {
	listen := flag.String("listen", "127.0.0.1:8082", "address to serve HTTP on")
	upstream := flag.String("upstream", "127.0.0.1:9090", "the gRPC upstream's address")
	descriptors := flag.String("descriptors", "proto/library.binpb", "FileDescriptorSet holding the service")
	flag.Parse()
	if err := run(*listen, *upstream, *descriptors); err != nil {
		log.Fatal(err)
	}
}

func run(addr, upstream, descriptors string) error {
	handler, err := transcoder(upstream, descriptors)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: handler}
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	fmt.Printf("listening on %s\n", lis.Addr())
	if err := srv.Serve(lis); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// transcoder loads the descriptor set into a private registry (nothing is
// registered globally) and builds the vanguard transcoder for service,
// whose handler proxies gRPC to upstream over h2c.
func transcoder(upstream, descriptors string) (http.Handler, error) {
	raw, err := os.ReadFile(descriptors)
	if err != nil {
		return nil, err
	}
	var set descriptorpb.FileDescriptorSet
	if err := proto.Unmarshal(raw, &set); err != nil {
		return nil, fmt.Errorf("%s: %w", descriptors, err)
	}
	files, err := protodesc.NewFiles(&set)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", descriptors, err)
	}
	desc, err := files.FindDescriptorByName(service)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", descriptors, err)
	}
	svc, ok := desc.(protoreflect.ServiceDescriptor)
	if !ok {
		return nil, fmt.Errorf("%s: %s is not a service", descriptors, service)
	}

	target := &url.URL{Scheme: "http", Host: upstream}
	var h2c http.Protocols
	h2c.SetUnencryptedHTTP2(true)
	proxy := &httputil.ReverseProxy{
		Rewrite:   func(r *httputil.ProxyRequest) { r.SetURL(target) },
		Transport: &http.Transport{Protocols: &h2c},
	}
	return vanguard.NewTranscoder([]*vanguard.Service{
		vanguard.NewServiceWithSchema(svc, proxy,
			vanguard.WithTargetProtocols(vanguard.ProtocolGRPC),
			vanguard.WithTargetCodecs(vanguard.CodecProto),
			vanguard.WithNoTargetCompression(),
			vanguard.WithTypeResolver(dynamicpb.NewTypes(files)),
		),
	})
}
