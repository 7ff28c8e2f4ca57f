package descriptors

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthgrpc "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"
	reflectionv1 "google.golang.org/grpc/reflection/grpc_reflection_v1"
	reflectionv1alpha "google.golang.org/grpc/reflection/grpc_reflection_v1alpha"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/descriptorpb"
)

// serve starts a gRPC server on a loopback port with what register adds,
// and returns a client connection to it.
func serve(t *testing.T, register func(*grpc.Server)) *grpc.ClientConn {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	register(srv)
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// serviceNames lists services to a reflection server without
// implementing them.
type serviceNames []string

func (names serviceNames) GetServiceInfo() map[string]grpc.ServiceInfo {
	m := map[string]grpc.ServiceInfo{}
	for _, name := range names {
		m[name] = grpc.ServiceInfo{}
	}
	return m
}

func TestLoadReflection(t *testing.T) {
	withHealth := func(reflect func(reflection.GRPCServer)) func(*grpc.Server) {
		return func(srv *grpc.Server) {
			healthgrpc.RegisterHealthServer(srv, health.NewServer())
			reflect(srv)
		}
	}
	for _, tc := range []struct {
		name     string
		register func(*grpc.Server)
		services []string
		want     string // services found, comma-separated
	}{
		{
			name:     "v1",
			register: withHealth(reflection.RegisterV1),
			services: []string{"grpc.health.v1.Health"},
			want:     "grpc.health.v1.Health",
		},
		{
			name: "v1alpha only",
			register: withHealth(func(srv reflection.GRPCServer) {
				reflectionv1alpha.RegisterServerReflectionServer(srv, reflection.NewServer(reflection.ServerOptions{Services: srv}))
			}),
			services: []string{"grpc.health.v1.Health"},
			want:     "grpc.health.v1.Health",
		},
		{
			name:     "all listed services skip health and reflection",
			register: withHealth(reflection.Register),
			want:     "",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn := serve(t, tc.register)
			s, err := Load(context.Background(), []Source{{Reflection: &ReflectionSource{Conn: conn, Services: tc.services}}})
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, sd := range s.Services() {
				names = append(names, string(sd.FullName()))
			}
			if got := strings.Join(names, ","); got != tc.want {
				t.Errorf("services = %q, want %q", got, tc.want)
			}
		})
	}
}

// serveShelf serves the shelf schema, from a local registry, through
// reflection v1 and v1alpha. The server also lists grpc.health.v1.Health,
// whose descriptors it cannot serve, so a client that asked for it would
// fail.
func serveShelf(t *testing.T) *grpc.ClientConn {
	t.Helper()
	s := loadShelf(t)
	return serve(t, func(srv *grpc.Server) {
		opts := reflection.ServerOptions{
			Services:           serviceNames{"test.shelf.v1.ShelfService", "grpc.health.v1.Health"},
			DescriptorResolver: s.Files(),
			ExtensionResolver:  s.Types(),
		}
		reflectionv1.RegisterServerReflectionServer(srv, reflection.NewServerV1(opts))
	})
}

func TestLoadReflectionFetchesImportClosure(t *testing.T) {
	s, err := Load(context.Background(), []Source{{Reflection: &ReflectionSource{Conn: serveShelf(t)}}})
	if err != nil {
		t.Fatal(err)
	}
	checkShelf(t, s)
}

func TestLoadReflectionMixedWithOtherSources(t *testing.T) {
	s, err := Load(context.Background(), []Source{
		{DescriptorSet: shelfSet(t)},
		{Reflection: &ReflectionSource{Conn: serveShelf(t)}},
	})
	if err != nil {
		t.Fatal(err)
	}
	checkShelf(t, s)
}

func TestLoadReflectionErrors(t *testing.T) {
	for _, tc := range []struct {
		name     string
		server   reflectionv1.ServerReflectionServer
		services []string
		timeout  time.Duration
		want     string
		code     codes.Code
	}{
		{
			name:     "service absent",
			server:   reflection.NewServerV1(reflection.ServerOptions{Services: serviceNames{}}),
			services: []string{"no.such.Service"},
			want:     `service "no.such.Service": server answered NotFound`,
		},
		{
			name:     "endless imports",
			server:   endlessImports{},
			services: []string{"x.Service"},
			want:     fmt.Sprintf("server sent more than the limit of %d files", maxReflectionFiles),
		},
		{
			name:     "server never answers",
			server:   silent{},
			services: []string{"x.Service"},
			timeout:  100 * time.Millisecond,
			code:     codes.DeadlineExceeded,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn := serve(t, func(srv *grpc.Server) { reflectionv1.RegisterServerReflectionServer(srv, tc.server) })
			ctx := context.Background()
			if tc.timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tc.timeout)
				defer cancel()
			}
			_, err := Load(ctx, []Source{{Reflection: &ReflectionSource{Conn: conn, Services: tc.services}}})
			if err == nil {
				t.Fatal("Load succeeded")
			}
			if !strings.HasPrefix(err.Error(), "reflection from ") || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q, want one from reflection containing %q", err, tc.want)
			}
			if tc.code != codes.OK && status.Code(err) != tc.code {
				t.Errorf("error code %v, want %v", status.Code(err), tc.code)
			}
		})
	}
}

// endlessImports is a hostile reflection server: every file it sends
// imports a file it has not sent yet.
type endlessImports struct {
	reflectionv1.UnimplementedServerReflectionServer
}

func (endlessImports) ServerReflectionInfo(stream reflectionv1.ServerReflection_ServerReflectionInfoServer) error {
	for n := 0; ; n++ {
		if _, err := stream.Recv(); err != nil {
			return err
		}
		b, err := proto.Marshal(&descriptorpb.FileDescriptorProto{
			Name:       proto.String(fmt.Sprintf("f%d.proto", n)),
			Dependency: []string{fmt.Sprintf("f%d.proto", n+1)},
		})
		if err != nil {
			return err
		}
		if err := stream.Send(&reflectionv1.ServerReflectionResponse{
			MessageResponse: &reflectionv1.ServerReflectionResponse_FileDescriptorResponse{
				FileDescriptorResponse: &reflectionv1.FileDescriptorResponse{FileDescriptorProto: [][]byte{b}},
			},
		}); err != nil {
			return err
		}
	}
}

// silent is a reflection server that never answers.
type silent struct {
	reflectionv1.UnimplementedServerReflectionServer
}

func (silent) ServerReflectionInfo(stream reflectionv1.ServerReflection_ServerReflectionInfoServer) error {
	<-stream.Context().Done()
	return stream.Context().Err()
}
