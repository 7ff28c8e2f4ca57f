// Package security holds Rosetta's policies, one subpackage each: jwt,
// apikey and mtls authenticate a call, authz decides whether the caller may
// make it, identity forwards who the caller is, ipfilter allows or denies
// client addresses (found by clientip), ratelimit limits the rate of calls,
// cors answers browser preflights, limits bounds requests and connections,
// and servertls serves TLS with certificates reloaded from disk.
//
// Every per-call policy is a router.Middleware: it reads only the fields of
// the protocol-neutral router.Call, so one policy guards a method however it
// is reached. A policy refuses a call by returning an error made by Deny;
// each ingress turns it into its protocol's answer (401, 403, 429 over HTTP,
// the gRPC status over gRPC, an MQTT reason code over MQTT). A refused call
// never reaches router.Dispatch: it is never decoded and no upstream sees it.
package security

import (
	"net/http"
	"strconv"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/protoadapt"

	"github.com/rosettagw/rosetta/translate"
)

// Domain is the google.rpc.ErrorInfo domain of the errors the policies
// return.
const Domain = "security.rosetta"

// ForwardAuthorization is the key of a router.Call's Incoming entry that an
// ingress adds when its protocol forwards an Authorization header upstream
// (the gRPC family always; REST and WebSocket when http.forward_headers
// names Authorization). The ingresses never forward a client's
// Authorization themselves: the jwt policy forwards the one it verified,
// and only when the call is so marked. No client can send the key (header
// and metadata names never start with a colon, but the HTTP/2 pseudo-headers)
// and the ingresses drop any copy.
const ForwardAuthorization = ":rosetta-forward-authorization"

// Deny returns the error a policy refuses a call with: a gRPC status with
// code and message, a google.rpc.ErrorInfo detail carrying reason (an
// UPPER_SNAKE_CASE constant such as "TOKEN_EXPIRED"), and any further
// details (such as a google.rpc.RetryInfo). The message is shown to the
// client, so it must never contain a secret.
func Deny(code codes.Code, reason, message string, details ...protoadapt.MessageV1) error {
	details = append([]protoadapt.MessageV1{&errdetails.ErrorInfo{Reason: reason, Domain: Domain}}, details...)
	st, err := status.New(code, message).WithDetails(details...)
	if err != nil { // google.rpc details always marshal
		return status.Error(code, message)
	}
	return st.Err()
}

// WriteHTTP answers an HTTP request with err (made by Deny) as a JSON
// google.rpc.Status and the given HTTP status, for the policies that guard
// HTTP itself (CORS preflights, request limits) rather than calls.
func WriteHTTP(w http.ResponseWriter, httpStatus int, err error) {
	body := translate.StatusJSON(status.Convert(err).Proto(), nil)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(httpStatus)
	w.Write(body)
}
