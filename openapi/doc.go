// Package openapi describes a generation's HTTP routes as an OpenAPI 3.1
// document, built with github.com/getkin/kin-openapi.
//
// Document takes the routes as the gateway serves them (router.Route with
// its translate.Binding) and writes one operation per binding: the path
// template with its variables as path parameters (a multi-segment variable
// such as {name=shelves/*} keeps its pattern), a query parameter for every
// field the rule leaves free, the request body per the rule's body, the
// response per its response_body (server streams as NDJSON and Server-Sent
// Events), errors as google.rpc.Status, and the security schemes of the
// policies that guard the route's method. Schemas follow the proto3 JSON
// mapping with the JSON options of the route's service; .proto comments
// become descriptions, buf.validate rules JSON Schema constraints where
// they map, and google.api.field_behavior required, readOnly and writeOnly.
//
// The package does no I/O and keeps no state: the gateway calls Document
// once per generation.
package openapi
