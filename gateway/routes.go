package gateway

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/rosettagw/rosetta/router"
)

// RouteRow is one line of the compiled route table: a REST route or an
// MQTT uplink rule.
type RouteRow struct {
	Method   string `json:"method"`
	Template string `json:"template"`
	Target   string `json:"target"`
	Upstream string `json:"upstream"`
}

// methodInfo is one method (or route with a chain of its own), every way
// it is reached, and the chain that runs whichever way a call comes.
type methodInfo struct {
	Method string   `json:"method"`
	Ways   []string `json:"ways"`
	Chain  []string `json:"chain"`
}

// Table is what `rosetta routes` prints and /routes serves.
type Table struct {
	// Routes are the REST routes, then the MQTT uplink rules.
	Routes []RouteRow `json:"routes"`
	// Methods are the chains, one per method, with the ways in.
	Methods []methodInfo `json:"methods"`
}

// Table returns the generation's route table.
func (g *Generation) Table() Table {
	var t Table
	for _, r := range g.routes.HTTP.Routes() {
		t.Routes = append(t.Routes, RouteRow{Method: r.HTTPMethod, Template: r.Template.Source, Target: rowTarget(r), Upstream: rowUpstream(r)})
	}
	if g.mqtt != nil {
		for _, rule := range g.mqtt.rules {
			t.Routes = append(t.Routes, RouteRow{Method: "MQTT", Template: rule.Filter, Target: rowTarget(rule.Route), Upstream: rowUpstream(rule.Route)})
		}
	}
	for _, k := range slices.Sorted(maps.Keys(g.methods)) {
		t.Methods = append(t.Methods, *g.methods[k])
	}
	return t
}

// rowTarget is the full name of the method a route calls, or its target
// for an aggregate ("aggregate(step, ...)") or an HTTP proxy.
func rowTarget(r *router.Route) string {
	if r.Method == nil || strings.HasPrefix(r.Target, "aggregate(") {
		return r.Target
	}
	return string(r.Method.FullName())
}

// rowUpstream is the route's upstream, or its split described.
func rowUpstream(r *router.Route) string {
	if s, ok := r.Invoker.(*router.Split); ok {
		return s.String()
	}
	return r.Upstream
}

// Print writes the table: the routes, then each method with its ways in
// and its chain.
func (t Table) Print(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "METHOD\tTEMPLATE\tTARGET\tUPSTREAM")
	for _, r := range t.Routes {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.Method, r.Template, r.Target, r.Upstream)
	}
	tw.Flush()
	fmt.Fprintln(w, "\nCHAINS (one per method, whichever way a call comes)")
	for _, m := range t.Methods {
		fmt.Fprintf(w, "%s\n  ways:  %s\n  chain: %s\n", m.Method, strings.Join(m.Ways, "; "), strings.Join(m.Chain, " → "))
	}
}
