package test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"testing"

	"google.golang.org/protobuf/proto"

	libraryv1 "github.com/rosettagw/rosetta/proto/example/library/v1"
)

// TestGRPCJSMetadata calls the native gRPC ingress with @grpc/grpc-js
// (test/grpcjs, run by node), on the shared listener and on listen.grpc:
// custom request metadata reaches the upstream, and the upstream's header and trailer metadata reach the client, on
// success and on error; a client compressing with gzip is served.
func TestGRPCJSMetadata(t *testing.T) {
	t.Parallel()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("node is not installed")
	}
	dir := filepath.Join(repoRoot, "test", "grpcjs")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "@grpc", "grpc-js")); err != nil {
		t.Fatal("@grpc/grpc-js is not installed; scripts/test.sh installs it (cd test/grpcjs && npm ci)")
	}
	up := startObservedUpstream(t, "")
	gw := startRosettaGRPC(t, "", libraryConfig(descriptorSetSchema(), up.addr, "", ""))
	for name, addr := range map[string]string{"shared listener": gw.base[len("http://"):], "listen.grpc": gw.grpc} {
		t.Run(name, func(t *testing.T) { grpcJSMetadata(t, node, dir, up, addr) })
	}
}

// grpcJSMetadata runs test/grpcjs/client.js against the gateway at addr.
func grpcJSMetadata(t *testing.T, node, dir string, up *observedUpstream, addr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*requestTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "client.js", addr)
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node client.js: %v\n%s", err, out)
	}
	type result struct {
		Code            int
		Message         string
		Response        []byte
		Header, Trailer map[string]any
	}
	var got struct{ OK, Failed, Gzip result }
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("client output %q: %v", out, err)
	}

	md := up.last(t, "/example.library.v1.LibraryService/GetShelf")
	for k, want := range map[string][]string{"x-something": {"value"}, "x-multi": {"a", "b"}} {
		if got := md.Get(k); !reflect.DeepEqual(got, want) {
			t.Errorf("upstream metadata %q = %q, want %q", k, got, want)
		}
	}
	var shelf libraryv1.Shelf
	if err := proto.Unmarshal(got.OK.Response, &shelf); err != nil || got.OK.Code != 0 || shelf.GetTheme() != "fiction" {
		t.Errorf("GetShelf: code %d, shelf %v (%v)", got.OK.Code, &shelf, err)
	}
	var gzShelf libraryv1.Shelf
	if err := proto.Unmarshal(got.Gzip.Response, &gzShelf); err != nil || got.Gzip.Code != 0 || gzShelf.GetTheme() != "fiction" {
		t.Errorf("GetShelf with gzip: code %d %q, shelf %v (%v)", got.Gzip.Code, got.Gzip.Message, &gzShelf, err)
	}
	if got.Failed.Code != 9 || got.Failed.Message != "shelf is a teapot" {
		t.Errorf("GetShelf teapot: code %d %q, want 9 (FAILED_PRECONDITION)", got.Failed.Code, got.Failed.Message)
	}
	for name, r := range map[string]result{"success": got.OK, "error": got.Failed} {
		if r.Header["x-upstream-header"] != "h1" {
			t.Errorf("%s: response header %v, want x-upstream-header: h1", name, r.Header)
		}
		if r.Trailer["x-upstream-trailer"] != "t1" {
			t.Errorf("%s: response trailer %v, want x-upstream-trailer: t1", name, r.Trailer)
		}
	}
}
