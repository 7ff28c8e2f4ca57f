package translate

import (
	"context"
	"errors"

	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
)

// CallStatus is the google.rpc.Status a client gets for err, an error that
// ended a call: INVALID_ARGUMENT with a BadRequest detail for a
// *BadRequestError, DEADLINE_EXCEEDED and CANCELLED for the context's
// errors, and the status err carries otherwise (UNKNOWN when none).
func CallStatus(err error) *spb.Status {
	var bad *BadRequestError
	switch {
	case errors.As(err, &bad):
		return BadRequestStatus(bad)
	case errors.Is(err, context.DeadlineExceeded):
		return &spb.Status{Code: int32(codes.DeadlineExceeded), Message: "deadline exceeded"}
	case errors.Is(err, context.Canceled):
		return &spb.Status{Code: int32(codes.Canceled), Message: "call cancelled"}
	}
	return StatusOf(err)
}
