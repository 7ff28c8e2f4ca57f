package translate

import (
	"encoding/json"
	"net/http"
	"strconv"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/known/anypb"
)

// HTTPStatus maps a gRPC code onto an HTTP status with the standard table
// (the one google.rpc.Code documents and grpc-gateway uses); a code outside
// the table is 500. Unlike grpc-gateway's runtime.HTTPStatusFromCode it
// never logs.
func HTTPStatus(c codes.Code) int {
	switch c {
	case codes.OK:
		return http.StatusOK
	case codes.Canceled:
		return 499 // Client Closed Request
	case codes.InvalidArgument, codes.FailedPrecondition, codes.OutOfRange:
		return http.StatusBadRequest
	case codes.DeadlineExceeded:
		return http.StatusGatewayTimeout
	case codes.NotFound:
		return http.StatusNotFound
	case codes.AlreadyExists, codes.Aborted:
		return http.StatusConflict
	case codes.PermissionDenied:
		return http.StatusForbidden
	case codes.Unauthenticated:
		return http.StatusUnauthorized
	case codes.ResourceExhausted:
		return http.StatusTooManyRequests
	case codes.Unimplemented:
		return http.StatusNotImplemented
	case codes.Unavailable:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError // Unknown, Internal, DataLoss and the rest
}

// StatusJSON renders st as a JSON google.rpc.Status: code, message and
// details with their "@type", always all three (details may be empty), as
// grpc-gateway does. Details whose type neither res nor the standard error
// details know are left out rather than failing the answer.
func StatusJSON(st *spb.Status, res Resolver) []byte {
	opts := protojson.MarshalOptions{Resolver: resolverWithFallback{res}}
	out := append([]byte(`{"code":`), strconv.Itoa(int(st.GetCode()))...)
	out = append(out, `,"message":`...)
	msg, _ := json.Marshal(st.GetMessage()) // a string always marshals
	out = append(out, msg...)
	out = append(out, `,"details":[`...)
	n := 0
	for _, d := range st.GetDetails() {
		js, err := opts.Marshal(d)
		if err != nil {
			continue
		}
		if n > 0 {
			out = append(out, ',')
		}
		out = append(out, js...)
		n++
	}
	return append(out, "]}"...)
}

// BadRequestStatus turns a decoding error into INVALID_ARGUMENT with a
// google.rpc.BadRequest detail naming the field.
func BadRequestStatus(e *BadRequestError) *spb.Status {
	st := &spb.Status{Code: int32(codes.InvalidArgument), Message: e.Description}
	if e.Field != "" {
		br := &errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: e.Field, Description: e.Description}}}
		if a, err := anypb.New(br); err == nil {
			st.Details = []*anypb.Any{a}
		}
	}
	return st
}

// StatusOf returns the google.rpc.Status of err (UNKNOWN for errors that
// carry none).
func StatusOf(err error) *spb.Status {
	return status.Convert(err).Proto()
}

// resolverWithFallback looks a type up in the schema first and in the
// types linked into the binary (google.rpc error details) second.
type resolverWithFallback struct{ Resolver }

func (r resolverWithFallback) FindMessageByURL(url string) (protoreflect.MessageType, error) {
	if r.Resolver != nil {
		if mt, err := r.Resolver.FindMessageByURL(url); err == nil {
			return mt, nil
		}
	}
	return protoregistry.GlobalTypes.FindMessageByURL(url)
}

func (r resolverWithFallback) FindMessageByName(name protoreflect.FullName) (protoreflect.MessageType, error) {
	if r.Resolver != nil {
		if mt, err := r.Resolver.FindMessageByName(name); err == nil {
			return mt, nil
		}
	}
	return protoregistry.GlobalTypes.FindMessageByName(name)
}

func (r resolverWithFallback) FindExtensionByName(name protoreflect.FullName) (protoreflect.ExtensionType, error) {
	if r.Resolver != nil {
		if xt, err := r.Resolver.FindExtensionByName(name); err == nil {
			return xt, nil
		}
	}
	return protoregistry.GlobalTypes.FindExtensionByName(name)
}

func (r resolverWithFallback) FindExtensionByNumber(message protoreflect.FullName, field protoreflect.FieldNumber) (protoreflect.ExtensionType, error) {
	if r.Resolver != nil {
		if xt, err := r.Resolver.FindExtensionByNumber(message, field); err == nil {
			return xt, nil
		}
	}
	return protoregistry.GlobalTypes.FindExtensionByNumber(message, field)
}
