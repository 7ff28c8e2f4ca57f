package gateway

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"

	"github.com/rosettagw/rosetta/accesslog"
	"github.com/rosettagw/rosetta/transports/mqtt"
)

// startMQTT starts the process's broker (embedded or external) from the
// serving generation's settings, and the bridge, which takes each device
// message through the rules of the generation serving when it arrives. A
// reload keeps the broker, its sessions and its subscriptions; those of the
// state routes and, on an external broker, of the rules are diffed. The returned function stops them.
func startMQTT(ctx context.Context, live *Live, logger *slog.Logger, access *accesslog.Logger) (func(), error) {
	g := live.Current()
	s := g.mqttSettings
	if s == nil {
		return func() {}, nil
	}
	parts := g.mqtt
	if parts == nil { // a broker without routes: devices may still talk among themselves
		parts = &mqttParts{broker: &brokerRef{}, state: mqtt.NewState(0, nil)}
	}
	cfg := g.cfg
	var metrics *mqtt.Metrics
	if live.metrics != nil {
		metrics = &mqtt.Metrics{}
		live.metrics.Register(metrics)
	}
	bridge := mqtt.NewBridge(live.MQTTRules, parts.broker, mqtt.BridgeOptions{
		DeadLetter: cfg.MQTT.DeadLetter, ForwardHeaders: cfg.HTTP.ForwardHeaders, Logger: logger, Access: access, Metrics: metrics,
	})
	var br mqtt.Broker
	var ext *mqtt.External
	if ec := s.external; ec != nil {
		ec := *ec
		ec.Logger = logger
		rules, done := live.MQTTRules()
		filters := rules.Filters()
		done()
		var err error
		if ext, err = mqtt.DialExternal(ctx, ec, filters, bridge.Uplink); err != nil {
			return nil, err
		}
		br = ext
		logger.Info("mqtt bridge connected", "broker", ec.URL, "rules", len(filters))
	} else {
		ec := *s.embedded
		ec.Logger, ec.Metrics = logger, metrics
		if pw := s.passwords; pw != nil {
			ec.Authenticate = func(s *mqtt.Sender) bool { return pw.Check(s.Username, s.Password) }
		}
		ec.Passthrough = func(topic string) bool {
			rules, done := live.MQTTRules()
			defer done()
			if rules.Matches(topic) {
				return false
			}
			cur := live.Current()
			return cur.mqtt != nil && slices.ContainsFunc(cur.mqtt.deviceFilters, func(f string) bool { return mqtt.MatchFilter(f, topic) })
		}
		emb, err := mqtt.NewEmbedded(ec, bridge.Uplink)
		if err != nil {
			return nil, err
		}
		if err := emb.Serve(); err != nil {
			return nil, err
		}
		br = emb
		logger.Info("serving", "mqtt", emb.Addr(), "rules", len(parts.rules))
	}
	parts.broker.set(br, metrics)
	subs := &stateSubs{broker: br, unsub: map[string]func(){}}
	if err := subs.follow(ctx, g); err != nil {
		br.Close()
		return nil, err
	}
	live.OnSwap(func(_, cur *Generation) {
		if err := subs.follow(ctx, cur); err != nil {
			logger.Error("mqtt state subscriptions", "error", err)
		}
		if ext != nil { // the rules' filters, diffed: the others keep their session
			filters := map[string]byte{}
			if cur.mqtt != nil {
				filters = (&mqtt.Rules{List: cur.mqtt.rules}).Filters()
			}
			if err := ext.SetFilters(ctx, filters); err != nil {
				logger.Error("mqtt rule subscriptions", "error", err)
			}
		}
	})
	return func() {
		if err := br.Close(); err != nil {
			logger.Warn("mqtt broker close", "error", err)
		}
	}, nil
}

// stateSubs are the broker subscriptions that feed the state store: one
// per state filter of the serving generation.
type stateSubs struct {
	mu     sync.Mutex
	broker mqtt.Broker
	unsub  map[string]func()
}

// follow subscribes to the filters g's state routes read and drops the
// subscriptions no route reads any more.
func (s *stateSubs) follow(ctx context.Context, g *Generation) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var want []string
	var state *mqtt.State
	if g.mqtt != nil {
		want, state = g.mqtt.stateFilters, g.mqtt.state
	}
	for _, f := range want {
		if s.unsub[f] != nil {
			continue
		}
		stop, err := s.broker.Subscribe(ctx, f, state.Observe)
		if err != nil {
			return fmt.Errorf("mqtt state %s: %w", f, err)
		}
		s.unsub[f] = stop
	}
	for f, stop := range s.unsub {
		if !slices.Contains(want, f) {
			stop()
			delete(s.unsub, f)
		}
	}
	return nil
}
