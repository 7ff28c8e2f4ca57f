package router

import "github.com/rosettagw/rosetta/translate"

// Routes is one generation's compiled routes as every ingress reads them.
// A generation is built whole and never edited; a reload swaps in another.
// An ingress loads the current Routes once per call, so a call runs on the
// routes, chains and upstreams of the generation it started on.
type Routes struct {
	// HTTP is the REST route table.
	HTTP *Table
	// Methods are the routes by which gRPC, gRPC-Web and Connect reach
	// each method, by "/package.Service/Method".
	Methods map[string]*Route
	// WebSocket are the WebSocket routes by path under the WebSocket
	// prefix: every method's, and the aggregates' websocket paths.
	WebSocket map[string]*Route
	// Resolver resolves Any types in error details.
	Resolver translate.Resolver
}
