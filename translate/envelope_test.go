package translate

import (
	"errors"
	"strings"
	"testing"

	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
)

func TestEnvelope(t *testing.T) {
	frame := AppendEnvelope(nil, FlagTrailer, []byte("abc"))
	if string(frame) != "\x80\x00\x00\x00\x03abc" {
		t.Fatalf("frame %q", frame)
	}
	var h [EnvelopeHeaderLen]byte
	copy(h[:], frame)
	flags, n, err := ParseEnvelopeHeader(h, 3)
	if flags != FlagTrailer || n != 3 || err != nil {
		t.Errorf("parse = %x %d %v", flags, n, err)
	}
	var size *SizeError
	if _, _, err := ParseEnvelopeHeader(h, 2); !errors.As(err, &size) || size.Size != 3 {
		t.Errorf("over the limit: %v, want a SizeError", err)
	}
	h[0] = FlagCompressed
	if flags, _, err := ParseEnvelopeHeader(h, 3); flags != FlagCompressed || err != nil {
		t.Errorf("compressed: %x %v, want the flag and no error (the payload is decompressed later)", flags, err)
	}
}

func TestGRPCWebTrailer(t *testing.T) {
	got := string(GRPCWebTrailer(&spb.Status{Code: 5, Message: "no such book"}, metadata.Pairs("x-a", "1", "grpc-x", "hidden")))
	want := "grpc-status: 5\r\ngrpc-message: no%20such%20book\r\nx-a: 1\r\n"
	if got != want {
		t.Errorf("trailer %q, want %q", got, want)
	}
}

func TestConnectErrors(t *testing.T) {
	if got := string(ConnectErrorJSON(&spb.Status{Code: int32(codes.NotFound), Message: "gone"})); got != `{"code":"not_found","message":"gone"}` {
		t.Errorf("error JSON %s", got)
	}
	if got := ConnectHTTPStatus(codes.ResourceExhausted); got != 429 {
		t.Errorf("RESOURCE_EXHAUSTED → %d, want 429", got)
	}
	end := string(ConnectEndStream(&spb.Status{}, metadata.Pairs("x-a", "1")))
	if end != `{"metadata":{"x-a":["1"]}}` {
		t.Errorf("end of stream %s", end)
	}
	if end := string(ConnectEndStream(&spb.Status{Code: 10, Message: "m"}, nil)); !strings.Contains(end, `"error":{"code":"aborted","message":"m"}`) {
		t.Errorf("end of stream %s", end)
	}
}
