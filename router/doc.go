// Package router holds what every ingress and every policy share: the
// protocol-neutral Call, the Route a call comes by, the handler chain
// (Handler, Middleware, Chain) that ends in Dispatch or an Aggregate, the
// upstream Invoker interface, and the compiled HTTP route Table.
//
// One generation of a configuration (built by package gateway) is read by
// the ingresses as one Routes value: the REST table, the methods as gRPC,
// gRPC-Web and Connect reach them, the WebSocket paths. A generation is
// never edited; a reload swaps in another, and a call runs on the Routes it
// started with.
//
// Chains are per method, not per route: every Route that reaches a method
// (each REST binding, the method's own path, an MQTT rule, an aggregate
// step through MethodInvoker) carries the same Handler, so a policy written
// once guards the method however it is reached. A Route keeps what differs
// between the ways in: its binding, its upstream and its deadline, which
// Dispatch reads. Retries (Retry, set on a Call) wrap the upstream call in
// Dispatch only, never the chain.
package router
