package mqtt

import (
	"context"
	"fmt"
	"net/url"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
)

// paho5 is an MQTT 5 connection (paho.golang autopaho): it reconnects with
// backoff and subscribes again to its filters on every connection.
type paho5 struct {
	cm *autopaho.ConnectionManager
}

// dial5 connects as clientID, subscribed to filters (filter → QoS), passing
// received messages to handle, which must acknowledge them.
func dial5(ctx context.Context, cfg ExternalConfig, u *url.URL, clientID string, subs *filterSet, handle func(delivery)) (conn, error) {
	subscribed := make(chan error, 1)
	ac := autopaho.ClientConfig{
		ServerUrls:                    []*url.URL{u},
		TlsCfg:                        cfg.TLS,
		KeepAlive:                     30,
		CleanStartOnInitialConnection: false,
		SessionExpiryInterval:         uint32(cfg.SessionExpiry / time.Second),
		ReconnectBackoff:              autopaho.NewExponentialBackoff(100*time.Millisecond, 10*time.Second, 500*time.Millisecond, 2),
		ConnectTimeout:                10 * time.Second,
		ConnectUsername:               cfg.Username,
		ConnectPassword:               []byte(cfg.Password),
		OnConnectionUp: func(cm *autopaho.ConnectionManager, _ *paho.Connack) {
			cfg.Logger.Info("mqtt broker connected", "broker", u.Redacted(), "client_id", clientID)
			filters := subs.snapshot()
			if len(filters) == 0 {
				select {
				case subscribed <- nil:
				default:
				}
				return
			}
			go func() {
				sub := &paho.Subscribe{}
				for f, q := range filters {
					sub.Subscriptions = append(sub.Subscriptions, paho.SubscribeOptions{Topic: f, QoS: q})
				}
				sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				_, err := cm.Subscribe(sctx, sub)
				if err != nil {
					cfg.Logger.Error("mqtt subscribe failed", "broker", u.Redacted(), "error", err)
				}
				select {
				case subscribed <- err:
				default:
				}
			}()
		},
		OnConnectError: func(err error) {
			cfg.Logger.Warn("mqtt broker connection failed", "broker", u.Redacted(), "client_id", clientID, "error", err)
		},
		ClientConfig: paho.ClientConfig{
			ClientID:                   clientID,
			EnableManualAcknowledgment: true,
			OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
				pk := pr.Packet
				handle(delivery{m: fromPaho5(pk), ack: func() { _ = pr.Client.Ack(pk) }})
				return true, nil
			}},
		},
	}
	cm, err := autopaho.NewConnection(context.Background(), ac)
	if err != nil {
		return nil, err
	}
	c := &paho5{cm: cm}
	select {
	case err := <-subscribed:
		if err != nil {
			c.close()
			return nil, fmt.Errorf("mqtt broker %s: subscribe: %w", u.Redacted(), err)
		}
	case <-ctx.Done():
		c.close()
		return nil, fmt.Errorf("mqtt broker %s: not connected: %w", u.Redacted(), ctx.Err())
	}
	return c, nil
}

func fromPaho5(pk *paho.Publish) *Message {
	m := &Message{Topic: pk.Topic, Payload: pk.Payload, QoS: pk.QoS, Retain: pk.Retain}
	if p := pk.Properties; p != nil {
		m.ContentType, m.ResponseTopic, m.CorrelationData = p.ContentType, p.ResponseTopic, p.CorrelationData
		for _, u := range p.User {
			m.UserProperties = append(m.UserProperties, UserProperty{Key: u.Key, Value: u.Value})
		}
	}
	return m
}

func (c *paho5) publish(ctx context.Context, m *Message) error {
	props := &paho.PublishProperties{ContentType: m.ContentType, ResponseTopic: m.ResponseTopic, CorrelationData: m.CorrelationData}
	for _, u := range m.UserProperties {
		props.User = append(props.User, paho.UserProperty{Key: u.Key, Value: u.Value})
	}
	resp, err := c.cm.Publish(ctx, &paho.Publish{Topic: m.Topic, Payload: m.Payload, QoS: m.QoS, Retain: m.Retain, Properties: props})
	if err != nil {
		return err
	}
	if resp != nil && resp.ReasonCode >= 0x80 {
		return fmt.Errorf("broker refused the message: reason 0x%02x", resp.ReasonCode)
	}
	return nil
}

func (c *paho5) subscribe(ctx context.Context, filter string, qos byte) error {
	ack, err := c.cm.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: filter, QoS: qos}}})
	if err != nil {
		return err
	}
	if len(ack.Reasons) > 0 && ack.Reasons[0] >= 0x80 {
		return fmt.Errorf("broker refused the subscription to %s: reason 0x%02x", filter, ack.Reasons[0])
	}
	return nil
}

func (c *paho5) unsubscribe(ctx context.Context, filter string) error {
	_, err := c.cm.Unsubscribe(ctx, &paho.Unsubscribe{Topics: []string{filter}})
	return err
}

func (c *paho5) close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return c.cm.Disconnect(ctx)
}
