package mqtt

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
)

// ExternalConfig configures the connection to an external broker.
type ExternalConfig struct {
	// URL is the broker: mqtt://host:1883, mqtts://host:8883 (or tls://),
	// ws://host/mqtt.
	URL string
	// Version is the protocol: 5 (default) or 4 for MQTT 3.1.1.
	Version byte
	// ClientID identifies the gateway's session; every replica needs its
	// own. The gateway opens two connections: ClientID, a persistent
	// session receiving device messages, and ClientID+"-ctl", publishing
	// and following replies and state.
	ClientID string
	// Username and Password authenticate the gateway to the broker.
	Username string
	Password string
	// TLS configures mqtts:// connections.
	TLS *tls.Config
	// ShareGroup, when set, subscribes to the rules' filters as
	// $share/<ShareGroup>/<filter>, so that the replicas of one group split
	// device messages between them.
	ShareGroup string
	// Workers is the number of messages handled at once (default 16); the
	// broker's further messages wait, bounded by its in-flight window.
	Workers int
	// SessionExpiry is how long the broker keeps the session, and its
	// undelivered QoS 1 messages, while the gateway is away (default 1h).
	SessionExpiry time.Duration
	// Logger receives connection events.
	Logger *slog.Logger
}

// conn is one client connection of one of the two client libraries.
type conn interface {
	publish(ctx context.Context, m *Message) error
	subscribe(ctx context.Context, filter string, qos byte) error
	unsubscribe(ctx context.Context, filter string) error
	close() error
}

// delivery is a received message and how to acknowledge it.
type delivery struct {
	m   *Message
	ack func()
}

// External is an external broker reached as a client.
type External struct {
	cfg  ExternalConfig
	ctl  conn
	dev  conn // nil without rules
	work chan delivery
	done chan struct{} // closed by Close: no more deliveries
	stop context.CancelFunc
	wg   sync.WaitGroup
	full atomic.Int64

	// subMu serializes the SUBSCRIBE and UNSUBSCRIBE of the control
	// connection; mu guards subs and is never held across the network, for
	// follow needs it while those wait for their acknowledgement.
	subMu sync.Mutex
	mu    sync.Mutex
	subs  map[string]*followers // by filter, on the control connection
	next  int

	// devFilters are the device connection's subscriptions, subscribed
	// again at each reconnect; SetFilters changes them.
	devFilters *filterSet
}

// filterSet is a connection's subscriptions (filter → QoS).
type filterSet struct {
	mu sync.Mutex
	m  map[string]byte
}

// snapshot returns a copy of the set.
func (s *filterSet) snapshot() map[string]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.m)
}

// shared names filters as the device connection subscribes to them: in
// the share group, when there is one.
func (e *External) shared(filters map[string]byte) map[string]byte {
	out := make(map[string]byte, len(filters))
	for f, q := range filters {
		if e.cfg.ShareGroup != "" {
			f = "$share/" + e.cfg.ShareGroup + "/" + f
		}
		out[f] = q
	}
	return out
}

// SetFilters makes the device connection's subscriptions filters (filter →
// QoS), as a reload's rules need: it subscribes to the new ones and
// unsubscribes from those no rule takes any more, leaving the others, and
// the messages the broker holds for them, untouched. A reconnect
// subscribes to the set last given.
func (e *External) SetFilters(ctx context.Context, filters map[string]byte) error {
	want := e.shared(filters)
	e.devFilters.mu.Lock()
	defer e.devFilters.mu.Unlock()
	var errs []error
	for f, q := range want {
		if old, ok := e.devFilters.m[f]; ok && old == q {
			continue
		}
		if err := e.dev.subscribe(ctx, f, q); err != nil {
			errs = append(errs, err)
			continue
		}
		e.devFilters.m[f] = q
	}
	for f := range e.devFilters.m {
		if _, ok := want[f]; ok {
			continue
		}
		if err := e.dev.unsubscribe(ctx, f); err != nil {
			errs = append(errs, err)
			continue
		}
		delete(e.devFilters.m, f)
	}
	return errors.Join(errs...)
}

// followers are the Subscribe callers of one filter.
type followers struct {
	fns map[int]func(*Message)
}

// DialExternal connects to the broker. Device messages matching filters
// (filter → QoS; SetFilters changes them) go to up, Workers at a time; each is acknowledged when up
// returns. It waits up to ctx for the first connections and subscriptions
// and keeps reconnecting, with backoff, after that.
func DialExternal(ctx context.Context, cfg ExternalConfig, filters map[string]byte, up Uplink) (*External, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("broker url %q: want mqtt://host:port", cfg.URL)
	}
	if cfg.ClientID == "" {
		return nil, fmt.Errorf("broker: a client_id is needed (one per replica)")
	}
	if cfg.Version == 0 {
		cfg.Version = 5
	}
	if cfg.Version != 4 && cfg.Version != 5 {
		return nil, fmt.Errorf("broker version %d: want 5 or 4 (3.1.1)", cfg.Version)
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 16
	}
	if cfg.SessionExpiry <= 0 {
		cfg.SessionExpiry = time.Hour
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	e := &External{cfg: cfg, work: make(chan delivery, cfg.Workers), done: make(chan struct{}), subs: map[string]*followers{}}
	dial := dial5
	if cfg.Version == 4 {
		dial = dial3
	}
	if e.ctl, err = dial(ctx, cfg, u, cfg.ClientID+"-ctl", &filterSet{}, e.follow); err != nil {
		return nil, err
	}
	e.devFilters = &filterSet{m: e.shared(filters)}
	workCtx, stop := context.WithCancel(context.Background())
	e.stop = stop
	for range cfg.Workers {
		e.wg.Add(1)
		go func() {
			defer e.wg.Done()
			for {
				select {
				case <-e.done:
					return
				case d := <-e.work:
					// Failures are dead-lettered by the bridge; the
					// message is acknowledged once handled either way,
					// unless Close interrupted it: the broker then
					// redelivers it to the session.
					_ = up(workCtx, d.m)
					if workCtx.Err() != nil {
						return
					}
					d.ack()
				}
			}
		}()
	}
	if e.dev, err = dial(ctx, cfg, u, cfg.ClientID, e.devFilters, e.deliver); err != nil {
		e.Close()
		return nil, err
	}
	return e, nil
}

// deliver queues a device message for the workers; when they are all busy
// it blocks the connection's reader, which holds the broker back.
func (e *External) deliver(d delivery) {
	select {
	case e.work <- d:
		return
	default:
	}
	if n := e.full.Add(1); n&(n-1) == 0 {
		e.cfg.Logger.Warn("mqtt workers busy; holding the broker back", "workers", e.cfg.Workers, "times", n)
	}
	select {
	case e.work <- d:
	case <-e.done: // not acknowledged: the broker redelivers it to the session
	}
}

// follow passes a message of the control connection to the Subscribe
// callers whose filter it matches, and acknowledges it.
func (e *External) follow(d delivery) {
	e.mu.Lock()
	var fns []func(*Message)
	for f, fs := range e.subs {
		if MatchFilter(f, d.m.Topic) {
			for _, fn := range fs.fns {
				fns = append(fns, fn)
			}
		}
	}
	e.mu.Unlock()
	for _, fn := range fns {
		fn(d.m)
	}
	d.ack()
}

// Publish sends m on the control connection.
func (e *External) Publish(ctx context.Context, m *Message) error {
	return e.ctl.publish(ctx, m)
}

// Subscribe follows filter on the control connection.
func (e *External) Subscribe(ctx context.Context, filter string, fn func(*Message)) (func(), error) {
	e.subMu.Lock()
	defer e.subMu.Unlock()
	e.mu.Lock()
	fs := e.subs[filter]
	e.mu.Unlock()
	if fs == nil {
		if err := e.ctl.subscribe(ctx, filter, 1); err != nil {
			return nil, err
		}
		fs = &followers{fns: map[int]func(*Message){}}
	}
	e.mu.Lock()
	e.subs[filter] = fs
	e.next++
	id := e.next
	fs.fns[id] = fn
	e.mu.Unlock()
	return func() {
		e.subMu.Lock()
		defer e.subMu.Unlock()
		e.mu.Lock()
		delete(fs.fns, id)
		last := len(fs.fns) == 0
		if last {
			delete(e.subs, filter)
		}
		e.mu.Unlock()
		if last {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = e.ctl.unsubscribe(ctx, filter)
		}
	}, nil
}

// Close interrupts the messages being handled and disconnects. Those and
// the queued ones are left unacknowledged, for the broker to redeliver to
// the session.
func (e *External) Close() error {
	close(e.done)
	if e.stop != nil {
		e.stop()
	}
	e.wg.Wait()
	var err error
	if e.dev != nil {
		err = e.dev.close()
	}
	if cerr := e.ctl.close(); err == nil {
		err = cerr
	}
	return err
}
