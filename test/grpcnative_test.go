package test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	libraryv1 "github.com/rosettagw/rosetta/proto/example/library/v1"
)

// TestNativeGRPCListener serves the library over TLS with optional client
// certificates and a native gRPC listener (listen.grpc) beside the shared
// one, and calls it with grpc-go over the native listener: the client
// certificate's identity reaches the chain and the upstream; a call
// without one is refused by the mtls policy, one over the rate limit and
// one breaking the schema's rules are refused with their statuses, details
// and headers, none of them reaching the upstream; a server stream
// arrives whole; each call has its access-log line. Then a reload hides a
// method while a bidirectional stream is open: new calls see it at once,
// the stream goes on on its generation; and SIGTERM ends that stream with
// UNAVAILABLE and the process with 0.
func TestNativeGRPCListener(t *testing.T) {
	t.Parallel()
	up := startObservedUpstream(t, "")
	dir := t.TempDir()
	ca := newTestCA(t)
	certFile, keyFile, caFile := filepath.Join(dir, "server.pem"), filepath.Join(dir, "server.key"), filepath.Join(dir, "ca.pem")
	srvCert, srvKey := issueCert(t, "gateway", 100, ca)
	writeCert(t, certFile, keyFile, srvCert, srvKey)
	os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.cert.Raw}), 0o600)
	cliCert, cliKey := issueCert(t, "device-7", 101, ca)
	config := func(service string) string {
		return libraryConfig(descriptorSetSchema(), up.addr, "    policies: [certs, tight]\n"+service, fmt.Sprintf(`policies:
  certs: {mtls: {identity: subject_cn}}
  tight: {rate_limit: {rate: 2/h, key: header:x-tenant}}
security:
  tls: {cert_file: %q, key_file: %q, client_ca_file: %q, client_auth: optional}
  identity_headers: {x-user-id: subject}
`, certFile, keyFile, caFile))
	}
	gw := startRosettaGRPC(t, "", config(""))
	roots := x509.NewCertPool()
	roots.AddCert(ca.cert)
	dial := func(cfg *tls.Config) libraryv1.LibraryServiceClient {
		conn, err := grpc.NewClient(gw.grpc, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return libraryv1.NewLibraryServiceClient(conn)
	}
	lib := dial(&tls.Config{RootCAs: roots, Certificates: []tls.Certificate{{Certificate: [][]byte{cliCert.Raw}, PrivateKey: cliKey}}})
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	tenant := func(name string) context.Context { return metadata.AppendToOutgoingContext(ctx, "x-tenant", name) }

	// The client certificate's identity, through the chain, upstream.
	if s, err := lib.GetShelf(tenant("ok"), &libraryv1.GetShelfRequest{Name: "shelves/1"}); err != nil || s.GetName() != "shelves/1" {
		t.Fatalf("GetShelf: %v, %v", s, err)
	}
	if md := up.last(t, "/example.library.v1.LibraryService/GetShelf"); !reflect.DeepEqual(md.Get("x-user-id"), []string{"device-7"}) {
		t.Errorf("upstream identity metadata %v, want x-user-id: device-7", md)
	}

	before := up.callCount()
	// No client certificate: the mtls policy refuses.
	_, err := dial(&tls.Config{RootCAs: roots}).GetShelf(tenant("anonymous"), &libraryv1.GetShelfRequest{Name: "shelves/1"})
	if status.Code(err) != codes.Unauthenticated {
		t.Errorf("without a client certificate: %v, want UNAUTHENTICATED", err)
	}
	// Over the rate limit: RESOURCE_EXHAUSTED, with the limit's headers.
	var header metadata.MD
	var got []codes.Code
	for range 3 {
		_, err := lib.GetShelf(tenant("limited"), &libraryv1.GetShelfRequest{Name: "shelves/1"}, grpc.Header(&header))
		got = append(got, status.Code(err))
	}
	if fmt.Sprint(got) != fmt.Sprint([]codes.Code{codes.OK, codes.OK, codes.ResourceExhausted}) {
		t.Errorf("three calls with a limit of 2/h: %v", got)
	}
	if v := header.Get("ratelimit-policy"); len(v) != 1 || v[0] != `"default";q=2;w=3600` {
		t.Errorf("ratelimit-policy header metadata %q", v)
	}
	// Breaking the schema's rules: INVALID_ARGUMENT with every violation.
	for i, vc := range validationCases[:3] {
		_, err := lib.CreateBook(tenant(fmt.Sprint("invalid-", i)), vc.request(t, "native-bad"))
		b, _ := protojson.Marshal(status.Convert(err).Proto())
		wantViolations(t, statusOf(t, string(b)), vc.want)
	}
	if n := up.callCount(); n != before+2 {
		t.Errorf("the upstream saw %d calls, want only the 2 within the rate limit", n-before)
	}

	// A server stream, whole.
	s, err := lib.StreamBooks(tenant("stream"), &libraryv1.ListBooksRequest{Parent: "shelves/1"})
	if err != nil {
		t.Fatal(err)
	}
	books := 0
	for {
		_, err := s.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("StreamBooks after %d books: %v", books, err)
		}
		books++
	}
	if books == 0 {
		t.Error("StreamBooks sent no book")
	}

	// Each call's access-log line, as the shared listener writes it.
	for _, want := range []string{
		`"protocol":"grpc","route":"example.library.v1.LibraryService/GetShelf","method":"POST","path":"/example.library.v1.LibraryService/GetShelf","status":200,"code":"Unauthenticated"`,
		`"code":"ResourceExhausted"`,
		`"path":"/example.library.v1.LibraryService/StreamBooks","status":200,"code":"OK"`,
		`"subject":"device-7"`,
	} {
		waitFor(t, "the access-log line with "+want, func() bool { return strings.Contains(gw.stderr.String(), want) })
	}

	// A reload while a stream is open on the listener.
	chat, err := lib.Chat(tenant("chat"))
	if err != nil {
		t.Fatal(err)
	}
	echo := func(msg string) error {
		if err := chat.Send(&libraryv1.PingRequest{Message: msg}); err != nil {
			return err
		}
		r, err := chat.Recv()
		if err == nil && r.GetMessage() != msg {
			err = fmt.Errorf("echo %q, want %q", r.GetMessage(), msg)
		}
		return err
	}
	if err := echo("before"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(gw.config, []byte(fmt.Sprintf("listen: {http: %q, grpc: %q}\n%s", strings.TrimPrefix(gw.base, "http://"), gw.grpc,
		config("    hide_methods: [GetShelf]\n"))), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the reload hiding GetShelf on the native listener", func() bool {
		_, err := lib.GetShelf(tenant("reload"), &libraryv1.GetShelfRequest{Name: "shelves/1"})
		return status.Code(err) == codes.Unimplemented
	})
	if err := echo("after the reload"); err != nil {
		t.Errorf("the stream open across the reload: %v", err)
	}

	// SIGTERM: the stream ends with UNAVAILABLE, the process with 0.
	if code := gw.stop(t); code != 0 {
		t.Errorf("rosetta exited with %d after SIGTERM, want 0\n%s", code, gw.stderr)
	}
	if _, err := chat.Recv(); status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "shutting down") {
		t.Errorf("the open stream at SIGTERM: %v, want UNAVAILABLE: the gateway is shutting down", err)
	}
}
