package translate

import (
	"bytes"
	"errors"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestCompressRoundTrip(t *testing.T) {
	msg := []byte("a message, a message, a message")
	z := Compress(nil, "gzip", msg)
	if bytes.Equal(z, msg) {
		t.Fatal("gzip left the message as it was")
	}
	got, err := Decompress("gzip", z, len(msg))
	if err != nil || !bytes.Equal(got, msg) {
		t.Errorf("round trip %q %v", got, err)
	}
	if got := Compress(nil, "", msg); !bytes.Equal(got, msg) {
		t.Errorf("identity changed the message: %q", got)
	}
}

// TestDecompressBomb: 64 MiB of zeros compress to some 64 KiB; with a 1 MiB
// limit decompression stops past the limit with a SizeError.
func TestDecompressBomb(t *testing.T) {
	bomb := Compress(nil, "gzip", make([]byte, 64<<20))
	_, err := Decompress("gzip", bomb, 1<<20)
	var size *SizeError
	if !errors.As(err, &size) || !size.Decompressed || size.Size > 1<<20+1 {
		t.Fatalf("Decompress(bomb) = %v, want a SizeError stopped at the limit", err)
	}
}

func TestDecompressRefusals(t *testing.T) {
	var bad *BadRequestError
	if _, err := Decompress("gzip", []byte("not gzip"), 100); !errors.As(err, &bad) {
		t.Errorf("corrupt gzip: %v, want a BadRequestError", err)
	}
	if _, err := Decompress("br", []byte("x"), 100); status.Code(err) != codes.Unimplemented {
		t.Errorf("br: %v, want UNIMPLEMENTED", err)
	}
	if NegotiateEncoding("", "br, gzip;q=0.5") != "gzip" || NegotiateEncoding("identity", "br") != "" || NegotiateEncoding("gzip", "") != "gzip" {
		t.Error("NegotiateEncoding")
	}
}
