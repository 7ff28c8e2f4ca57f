package translate

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"strings"
	"sync"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Encodings are the message compressions the gateway decodes and writes,
// as gRPC's grpc-accept-encoding and Connect's Accept-Encoding name them.
// "identity" (none) is always accepted besides.
const Encodings = "gzip"

// SupportedEncoding reports whether the gateway reads messages compressed
// with enc ("" and "identity" mean uncompressed).
func SupportedEncoding(enc string) bool {
	return enc == "" || enc == "identity" || enc == "gzip"
}

// NegotiateEncoding is the compression of a response: the request's own
// when it is one the gateway writes, else the first of accept (a
// comma-separated list, as in grpc-accept-encoding) that it writes, else
// none ("").
func NegotiateEncoding(request, accept string) string {
	if request == "gzip" {
		return request
	}
	for _, e := range strings.Split(accept, ",") {
		if e = strings.TrimSpace(e); e == "gzip" {
			return e
		}
		if i := strings.IndexByte(e, ';'); i >= 0 && strings.TrimSpace(e[:i]) == "gzip" {
			return "gzip"
		}
	}
	return ""
}

// UnsupportedEncodingError is the status of a message compressed with an
// encoding the gateway does not read: UNIMPLEMENTED, as gRPC and Connect
// both say.
func UnsupportedEncodingError(enc string) error {
	return status.Errorf(codes.Unimplemented, "unsupported compression %q: the gateway reads identity and %s", enc, Encodings)
}

// gzipWriters write at gzip's best speed (level 1, as nginx's default
// gzip_comp_level): at the default level (6), resetting a writer for the
// next message clears 256 KiB of match tables, which took a fifth of the
// gateway's CPU under a gRPC-Web server-stream load.
var gzipWriters = sync.Pool{New: func() any {
	zw, _ := gzip.NewWriterLevel(nil, gzip.BestSpeed) // a valid level
	return zw
}}

// MinCompressBytes is the size under which a message that may go out
// uncompressed (a flag says so per message: gRPC-Web and Connect streams)
// is not compressed: a few hundred bytes of protobuf gain little, and cost
// the compression each time (connect-go's WithCompressMinBytes does the
// same).
const MinCompressBytes = 1024

// Compress appends data compressed with enc (gzip) to dst; with "" or
// "identity" it appends data as it is.
func Compress(dst []byte, enc string, data []byte) []byte {
	if enc != "gzip" {
		return append(dst, data...)
	}
	buf := bytes.NewBuffer(dst)
	zw := gzipWriters.Get().(*gzip.Writer)
	zw.Reset(buf)
	zw.Write(data) // a bytes.Buffer does not fail
	zw.Close()
	gzipWriters.Put(zw)
	return buf.Bytes()
}

// Decompress returns data decompressed with enc, refusing (a *SizeError)
// a result longer than limit without producing more than limit+1 bytes:
// a small compressed message cannot expand without bound. Corrupt data is
// INVALID_ARGUMENT; an encoding the gateway does not read is UNIMPLEMENTED.
func Decompress(enc string, data []byte, limit int) ([]byte, error) {
	switch enc {
	case "", "identity":
		return data, nil
	case "gzip":
	default:
		return nil, UnsupportedEncodingError(enc)
	}
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, &BadRequestError{Description: fmt.Sprintf("the message is not valid gzip: %v", err)}
	}
	out, err := io.ReadAll(io.LimitReader(zr, int64(limit)+1))
	if err != nil {
		return nil, &BadRequestError{Description: fmt.Sprintf("the message is not valid gzip: %v", err)}
	}
	if len(out) > limit {
		return nil, &SizeError{Size: int64(len(out)), Limit: int64(limit), Decompressed: true}
	}
	return out, nil
}
