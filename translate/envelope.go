package translate

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"

	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"
)

// Envelope flags of the gRPC-Web and Connect streaming framings: each
// message is a flags byte, a 4-byte big-endian length and the payload.
const (
	// FlagTrailer marks gRPC-Web's trailer frame.
	FlagTrailer byte = 0x80
	// FlagEndStream marks Connect's end-of-stream message.
	FlagEndStream byte = 0x02
	// FlagCompressed marks a payload compressed with the encoding the
	// stream's headers name.
	FlagCompressed byte = 0x01
)

// EnvelopeHeaderLen is the length of an envelope's prefix.
const EnvelopeHeaderLen = 5

// AppendEnvelope appends payload framed with flags to dst.
func AppendEnvelope(dst []byte, flags byte, payload []byte) []byte {
	dst = append(dst, flags)
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(payload)))
	return append(dst, payload...)
}

// ParseEnvelopeHeader reads an envelope's prefix, refusing a payload longer
// than limit. A compressed payload's size is bounded again once
// decompressed (see Decompress).
func ParseEnvelopeHeader(h [EnvelopeHeaderLen]byte, limit int) (flags byte, n int, err error) {
	flags = h[0]
	size := binary.BigEndian.Uint32(h[1:])
	if int64(size) > int64(limit) {
		return 0, 0, &SizeError{Size: int64(size), Limit: int64(limit)}
	}
	return flags, int(size), nil
}

// SizeError is a message larger than the configured limit; the ingress
// answers RESOURCE_EXHAUSTED.
type SizeError struct {
	Size, Limit int64
	// Decompressed says Size is the message's decompressed size (at
	// least; decompression stops past the limit).
	Decompressed bool
}

// Error says how large the message was and what the limit is.
func (e *SizeError) Error() string {
	if e.Decompressed {
		return fmt.Sprintf("a message decompresses to more than the limit of %d bytes", e.Limit)
	}
	return fmt.Sprintf("a message of %d bytes exceeds the limit of %d bytes", e.Size, e.Limit)
}

// GRPCWebTrailer renders a gRPC-Web trailer frame's payload: grpc-status,
// grpc-message, grpc-status-details-bin (when st has details) and the
// trailer metadata, as HTTP/1 header lines.
func GRPCWebTrailer(st *spb.Status, trailer metadata.MD) []byte {
	var b strings.Builder
	b.WriteString("grpc-status: " + strconv.Itoa(int(st.GetCode())) + "\r\n")
	if st.GetMessage() != "" {
		b.WriteString("grpc-message: " + url.PathEscape(st.GetMessage()) + "\r\n")
	}
	if len(st.GetDetails()) > 0 {
		if bin, err := proto.Marshal(st); err == nil {
			b.WriteString("grpc-status-details-bin: " + base64.RawStdEncoding.EncodeToString(bin) + "\r\n")
		}
	}
	keys := make([]string, 0, len(trailer))
	for k := range trailer {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if strings.HasPrefix(k, "grpc-") || strings.HasPrefix(k, ":") || k == "content-type" {
			continue
		}
		for _, v := range trailer[k] {
			if strings.HasSuffix(k, "-bin") {
				v = base64.RawStdEncoding.EncodeToString([]byte(v))
			}
			b.WriteString(k + ": " + v + "\r\n")
		}
	}
	return []byte(b.String())
}

// connectCodes are the Connect protocol's names of the gRPC codes.
var connectCodes = [...]string{
	codes.Canceled: "canceled", codes.Unknown: "unknown", codes.InvalidArgument: "invalid_argument",
	codes.DeadlineExceeded: "deadline_exceeded", codes.NotFound: "not_found", codes.AlreadyExists: "already_exists",
	codes.PermissionDenied: "permission_denied", codes.ResourceExhausted: "resource_exhausted",
	codes.FailedPrecondition: "failed_precondition", codes.Aborted: "aborted", codes.OutOfRange: "out_of_range",
	codes.Unimplemented: "unimplemented", codes.Internal: "internal", codes.Unavailable: "unavailable",
	codes.DataLoss: "data_loss", codes.Unauthenticated: "unauthenticated",
}

// ConnectHTTPStatus is the HTTP status of a Connect unary error, per the
// Connect protocol's table.
func ConnectHTTPStatus(c codes.Code) int {
	switch c {
	case codes.Canceled:
		return 499
	case codes.InvalidArgument, codes.FailedPrecondition, codes.OutOfRange:
		return 400
	case codes.DeadlineExceeded:
		return 504
	case codes.NotFound:
		return 404
	case codes.AlreadyExists, codes.Aborted:
		return 409
	case codes.PermissionDenied:
		return 403
	case codes.ResourceExhausted:
		return 429
	case codes.Unimplemented:
		return 501
	case codes.Unavailable:
		return 503
	case codes.Unauthenticated:
		return 401
	}
	return 500
}

// connectError is the Connect protocol's error object.
type connectError struct {
	Code    string          `json:"code"`
	Message string          `json:"message,omitempty"`
	Details []connectDetail `json:"details,omitempty"`
}

type connectDetail struct {
	Type  string `json:"type"`
	Value string `json:"value"` // base64 of the detail message, unpadded
}

func newConnectError(st *spb.Status) *connectError {
	e := &connectError{Code: "unknown", Message: st.GetMessage()}
	if c := st.GetCode(); c > 0 && int(c) < len(connectCodes) {
		e.Code = connectCodes[c]
	}
	for _, d := range st.GetDetails() {
		name := d.GetTypeUrl()[strings.LastIndex(d.GetTypeUrl(), "/")+1:]
		e.Details = append(e.Details, connectDetail{Type: name, Value: base64.RawStdEncoding.EncodeToString(d.GetValue())})
	}
	return e
}

// ConnectErrorJSON renders st (not OK) as a Connect error object.
func ConnectErrorJSON(st *spb.Status) []byte {
	b, _ := json.Marshal(newConnectError(st))
	return b
}

// ConnectEndStream renders the payload of Connect's end-of-stream message:
// the error, unless st is OK, and the trailer metadata.
func ConnectEndStream(st *spb.Status, trailer metadata.MD) []byte {
	var end struct {
		Error    *connectError       `json:"error,omitempty"`
		Metadata map[string][]string `json:"metadata,omitempty"`
	}
	if st.GetCode() != 0 {
		end.Error = newConnectError(st)
	}
	for k, vs := range trailer {
		if strings.HasPrefix(k, "grpc-") || strings.HasPrefix(k, ":") || k == "content-type" {
			continue
		}
		if end.Metadata == nil {
			end.Metadata = map[string][]string{}
		}
		end.Metadata[k] = vs
	}
	b, _ := json.Marshal(end)
	return b
}
