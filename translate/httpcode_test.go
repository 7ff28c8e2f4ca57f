package translate

import (
	"testing"

	"google.golang.org/grpc/codes"
)

func TestCodeFromHTTP(t *testing.T) {
	for status, want := range map[int]codes.Code{
		400: codes.InvalidArgument, 401: codes.Unauthenticated, 402: codes.FailedPrecondition,
		403: codes.PermissionDenied, 404: codes.NotFound, 409: codes.Aborted, 422: codes.FailedPrecondition,
		429: codes.ResourceExhausted, 499: codes.Canceled, 500: codes.Unknown, 501: codes.Unimplemented,
		502: codes.Unavailable, 503: codes.Unavailable, 504: codes.DeadlineExceeded, 302: codes.Unknown,
	} {
		if got := CodeFromHTTP(status); got != want {
			t.Errorf("CodeFromHTTP(%d) = %v, want %v", status, got, want)
		}
	}
}
