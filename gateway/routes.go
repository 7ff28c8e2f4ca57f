package gateway

import (
	"cmp"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

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
	// Upstreams are the upstreams' endpoint settings.
	Upstreams []UpstreamRow `json:"upstreams"`
}

// UpstreamRow is one upstream's endpoint settings, as configured.
type UpstreamRow struct {
	Name     string   `json:"name"`
	Kind     string   `json:"kind"`
	Targets  []string `json:"targets"`
	Balancer string   `json:"balancer"`
	Timeout  string   `json:"timeout,omitempty"`
	Retry    string   `json:"retry"`
	Health   string   `json:"health_check"`
	Outlier  string   `json:"outlier_detection"`
	Breaker  string   `json:"circuit_breaker"`
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
	for _, name := range slices.Sorted(maps.Keys(g.cfg.Upstreams)) {
		t.Upstreams = append(t.Upstreams, upstreamRow(name, g.cfg.Upstreams[name]))
	}
	return t
}

// upstreamRow describes an upstream's settings, defaults filled in.
func upstreamRow(name string, u *Upstream) UpstreamRow {
	o := upstreamOptions(name, u)
	row := UpstreamRow{Name: name, Kind: "grpc", Balancer: cmp.Or(u.Balancer, "round_robin"),
		Retry: "off", Health: "off", Outlier: "off", Breaker: "off"}
	targets := []Target{}
	switch {
	case u.GRPC != nil:
		targets = u.GRPC.Targets
	case u.HTTP != nil:
		row.Kind, targets = "http", u.HTTP.Targets
		if len(targets) == 0 {
			targets = []Target{{Addr: u.HTTP.URL}}
		}
	}
	for _, tg := range targets {
		if tg.Weight > 0 {
			row.Targets = append(row.Targets, fmt.Sprintf("%s (weight %d)", tg.Addr, tg.Weight))
		} else {
			row.Targets = append(row.Targets, tg.Addr)
		}
	}
	if u.Timeout > 0 {
		row.Timeout = time.Duration(u.Timeout).String()
	}
	if r := u.Retry; r != nil {
		row.Retry = fmt.Sprintf("%d attempts, budget %d%%", cmp.Or(r.Attempts, 2), cmp.Or(r.BudgetPercent, 20))
	}
	if h := o.Health; h != nil {
		what := "grpc.health.v1 " + strconv.Quote(h.Service)
		if row.Kind == "http" {
			what = "GET " + cmp.Or(h.Path, "/healthz")
		}
		row.Health = fmt.Sprintf("%s every %v, timeout %v, healthy %d, unhealthy %d", what, cmp.Or(h.Interval, 5*time.Second),
			cmp.Or(h.Timeout, time.Second), cmp.Or(h.HealthyThreshold, 1), cmp.Or(h.UnhealthyThreshold, 2))
	}
	if d := o.Outlier; d != nil {
		row.Outlier = fmt.Sprintf("%d consecutive failures, ejection %v (max %v), at most %d%%", cmp.Or(d.ConsecutiveFailures, 5),
			cmp.Or(d.BaseEjectionTime, 30*time.Second), cmp.Or(d.MaxEjectionTime, 300*time.Second), cmp.Or(d.MaxEjectionPercent, 10))
	}
	if b := o.Breaker; b != nil {
		row.Breaker = fmt.Sprintf("ratio %.2g over %v (min %d calls), open %v, %d half-open probes", cmp.Or(b.FailureRatio, 0.5),
			cmp.Or(b.Window, 10*time.Second), cmp.Or(b.MinRequests, 20), cmp.Or(b.OpenDuration, 30*time.Second), cmp.Or(b.HalfOpenRequests, 3))
	}
	return row
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
	fmt.Fprintln(w, "\nUPSTREAMS")
	for _, u := range t.Upstreams {
		fmt.Fprintf(w, "%s (%s): %s\n  balancer: %s; timeout: %s; retry: %s\n  health check: %s\n  outlier detection: %s\n  circuit breaker: %s\n",
			u.Name, u.Kind, strings.Join(u.Targets, ", "), u.Balancer, cmp.Or(u.Timeout, "none"), u.Retry, u.Health, u.Outlier, u.Breaker)
	}
}
