package translate

import (
	"net/http"

	"google.golang.org/grpc/codes"
)

// CodeFromHTTP maps the HTTP status of a plain HTTP upstream's answer onto
// the gRPC code a caller should see: the inverse of HTTPStatus where that
// table is one-to-one, FAILED_PRECONDITION for the other 4xx statuses and
// UNKNOWN for the other 5xx (and any non-error status).
func CodeFromHTTP(status int) codes.Code {
	switch status {
	case http.StatusBadRequest:
		return codes.InvalidArgument
	case http.StatusUnauthorized:
		return codes.Unauthenticated
	case http.StatusForbidden:
		return codes.PermissionDenied
	case http.StatusNotFound:
		return codes.NotFound
	case http.StatusConflict:
		return codes.Aborted
	case http.StatusTooManyRequests:
		return codes.ResourceExhausted
	case 499:
		return codes.Canceled
	case http.StatusNotImplemented:
		return codes.Unimplemented
	case http.StatusBadGateway, http.StatusServiceUnavailable:
		return codes.Unavailable
	case http.StatusGatewayTimeout:
		return codes.DeadlineExceeded
	}
	if status >= 400 && status < 500 {
		return codes.FailedPrecondition
	}
	return codes.Unknown
}
