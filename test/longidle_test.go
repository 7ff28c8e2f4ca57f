//go:build long

// The long-run tests take minutes, so scripts/test.sh leaves them out
// (the build tag keeps them out of every other run too). Run them with
//
//	go test -tags long ./test/ -run TestLong -timeout 25m -v

package test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	libraryv1 "github.com/rosettagw/rosetta/proto/example/library/v1"
)

// TestLongIdleStreams keeps three bidirectional streams open through the
// gateway, idle, across several minutes (ROSETTA_LONG_IDLE, default 6m)
// against a grpc-go server with the default keepalive enforcement (one ping
// per 5 minutes at most): the gateway's pings must not get the connection
// closed with GOAWAY too_many_pings, so each stream still echoes afterwards.
func TestLongIdleStreams(t *testing.T) {
	idle := 6 * time.Minute
	if s := os.Getenv("ROSETTA_LONG_IDLE"); s != "" {
		var err error
		if idle, err = time.ParseDuration(s); err != nil {
			t.Fatal(err)
		}
	}
	u := startStreamUpstream(t) // grpc.NewServer(): default enforcement policy
	ros := startRosetta(t, libraryConfig(descriptorSetSchema(), u.addr, "", "http: {stream_idle_timeout: 1h}\n"))
	conn, err := grpc.NewClient(strings.TrimPrefix(ros.base, "http://"), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), idle+time.Minute)
	defer cancel()
	lib := libraryv1.NewLibraryServiceClient(conn)
	var streams []grpc.BidiStreamingClient[libraryv1.PingRequest, libraryv1.PingResponse]
	echo := func(s grpc.BidiStreamingClient[libraryv1.PingRequest, libraryv1.PingResponse], msg string) {
		t.Helper()
		if err := s.Send(&libraryv1.PingRequest{Message: msg}); err != nil {
			t.Fatalf("send %s: %v", msg, err)
		}
		if r, err := s.Recv(); err != nil || r.GetMessage() != msg {
			t.Fatalf("echo of %s: %v, %v", msg, r, err)
		}
	}
	for range 3 {
		s, err := lib.Chat(ctx)
		if err != nil {
			t.Fatal(err)
		}
		echo(s, "before")
		streams = append(streams, s)
	}
	start := time.Now()
	t.Logf("3 streams open; idle for %v", idle)
	select { // the test's subject is the passing of time itself
	case <-time.After(idle):
	case <-ros.done:
		t.Fatalf("rosetta exited while idle\n%s", ros.stderr)
	}
	for _, s := range streams {
		echo(s, "after")
		if err := s.CloseSend(); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("all 3 streams echoed after %v of idle", time.Since(start).Round(time.Second))
	if strings.Contains(ros.stderr.String(), "too_many_pings") {
		t.Errorf("the gateway's log mentions too_many_pings\n%s", ros.stderr)
	}
}
