package main

import (
	"fmt"
	"log/slog"

	"github.com/rosettagw/rosetta/router"
	"github.com/rosettagw/rosetta/security/validate"
)

// ValidationConfig switches the enforcement of the schema's own buf.validate
// rules for a service or a route.
type ValidationConfig struct {
	// Requests checks request messages before the upstream sees them
	// (default true wherever the schema declares rules).
	Requests *bool `yaml:"requests"`
	// Responses checks upstream responses: "" (off), "log" (log and count)
	// or "fail" (log, count and answer INTERNAL). Meant for test
	// environments.
	Responses string `yaml:"responses"`
}

// applyValidation sets every route's request check from the schema's rules
// and, where configured, the response check. A route's own switch wins over
// its service's.
func (g *gateway) applyValidation(cfg *Config, log *slog.Logger) error {
	v, err := validate.New(g.schema.Types(), log)
	if err != nil {
		return fmt.Errorf("validation: %v", err)
	}
	g.validator = v
	services := map[string]*ValidationConfig{}
	for _, svc := range cfg.Services {
		services[svc.Name] = svc.Validation
	}
	routes := map[string]*ValidationConfig{} // by "METHOD template" or MQTT filter
	for _, rc := range cfg.Routes {
		if rc.Validation == nil {
			continue
		}
		if rc.MQTT != "" {
			routes["mqtt "+rc.MQTT] = rc.Validation
		} else if m, p, err := rc.methodPath(); err == nil {
			routes[m+" "+p] = rc.Validation
		}
	}
	apply := func(r *router.Route, vc *ValidationConfig) error {
		if r.Method == nil {
			return nil
		}
		if vc == nil {
			vc = services[string(r.Method.Parent().FullName())]
		}
		if vc == nil {
			vc = &ValidationConfig{}
		}
		if vc.Requests == nil || *vc.Requests {
			r.Validate = v.Requests(r.Method)
		}
		mode := validate.ResponseMode(vc.Responses)
		switch mode {
		case validate.ResponsesOff, validate.ResponsesLog, validate.ResponsesFail:
		default:
			return fmt.Errorf("route %s: validation.responses %q: want log or fail", r, vc.Responses)
		}
		if mw := v.Responses(r.Method, mode); mw != nil {
			r.Handler = router.Chain(r.Handler, mw)
		}
		return nil
	}
	for _, r := range g.table.Routes() {
		if err := apply(r, routes[r.HTTPMethod+" "+r.Template.Source]); err != nil {
			return err
		}
	}
	for _, r := range g.methods {
		if err := apply(r, nil); err != nil {
			return err
		}
	}
	if g.mqtt != nil {
		for _, rule := range g.mqtt.rules {
			if err := apply(rule.Route, routes["mqtt "+rule.Filter]); err != nil {
				return err
			}
		}
	}
	return nil
}
