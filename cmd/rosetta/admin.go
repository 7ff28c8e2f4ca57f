package main

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"slices"
	"sync/atomic"
	"time"

	"github.com/rosettagw/rosetta/router"
	"github.com/rosettagw/rosetta/transports/admin"
)

// routeRow is one line of the compiled route table, as `rosetta routes`
// prints it and the admin endpoint /routes serves it.
type routeRow struct {
	Method   string `json:"method"`
	Template string `json:"template"`
	Target   string `json:"target"`
	Upstream string `json:"upstream"`
}

// routeRows lists g's HTTP routes, then its MQTT uplink rules.
func routeRows(g *gateway) []routeRow {
	var rows []routeRow
	for _, r := range g.table.Routes() {
		target := r.Target
		if r.Method != nil {
			target = string(r.Method.FullName())
		}
		rows = append(rows, routeRow{Method: r.HTTPMethod, Template: r.Template.Source, Target: target, Upstream: r.Upstream})
	}
	return append(rows, mqttRouteRows(g)...)
}

// applyMetrics, when the admin listener is configured, gives the gateway
// its metrics: every route's chain starts with the call counter, and the
// rate limiters and the response validator are read at each scrape.
func (g *gateway) applyMetrics(cfg *Config) {
	if cfg.Listen.Admin == "" {
		return
	}
	m := admin.NewMetrics()
	g.metrics = m
	if g.security != nil {
		for _, name := range slices.Sorted(maps.Keys(g.security.policies)) {
			if p := g.security.policies[name]; p != nil && p.limiter != nil {
				m.AddLimiter(name, p.limiter.Stats)
			}
		}
	}
	if g.validator != nil {
		m.AddResponseViolations(g.validator.ResponseViolations)
	}
	count := func(r *router.Route, name string) {
		r.Handler = router.Chain(r.Handler, m.Middleware(name))
	}
	for _, r := range g.table.Routes() {
		count(r, r.HTTPMethod+" "+r.Template.Source)
	}
	for path, r := range g.methods {
		count(r, "POST "+path)
	}
	if g.mqtt != nil {
		for _, rule := range g.mqtt.rules {
			count(rule.Route, "MQTT "+rule.Filter)
		}
	}
}

// adminServer serves the admin endpoints of listen.admin.
type adminServer struct {
	srv *http.Server
	// ready is set once the gateway takes calls; readiness ends with the
	// serve context, when draining starts.
	ready atomic.Bool
}

// startAdmin serves the admin endpoints when listen.admin is set; it
// returns nil otherwise. /readyz answers 200 from markReady until ctx
// ends.
func startAdmin(ctx context.Context, cfg *Config, g *gateway, logger *slog.Logger) (*adminServer, error) {
	if cfg.Listen.Admin == "" {
		return nil, nil
	}
	ln, err := net.Listen("tcp", cfg.Listen.Admin)
	if err != nil {
		return nil, err
	}
	a := &adminServer{}
	a.srv = &http.Server{
		Handler: admin.New(admin.Options{
			Metrics: g.metrics,
			Ready:   func() bool { return a.ready.Load() && ctx.Err() == nil },
			Routes:  routeRows(g),
		}),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	go func() {
		if err := a.srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			logger.Error("admin listener failed", "error", err)
		}
	}()
	logger.Info("serving", "admin", ln.Addr().String())
	return a, nil
}

// markReady makes /readyz answer 200 (until the serve context ends).
func (a *adminServer) markReady() {
	if a != nil {
		a.ready.Store(true)
	}
}

// stop closes the admin listener and its connections.
func (a *adminServer) stop() {
	if a != nil {
		a.srv.Close()
	}
}
