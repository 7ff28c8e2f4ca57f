package mqtt

import (
	"context"
	"fmt"
	"net/url"
	"time"

	paho3 "github.com/eclipse/paho.mqtt.golang"
)

// paho311 is an MQTT 3.1.1 connection (paho.mqtt.golang): it reconnects
// with backoff and, its session being persistent, keeps its subscriptions.
type paho311 struct {
	c paho3.Client
}

// dial3 connects as clientID, subscribed to filters (filter → QoS), passing
// received messages to handle, which must acknowledge them.
func dial3(ctx context.Context, cfg ExternalConfig, u *url.URL, clientID string, subs *filterSet, handle func(delivery)) (conn, error) {
	broker := *u
	if broker.Scheme == "mqtt" {
		broker.Scheme = "tcp"
	}
	onMessage := func(_ paho3.Client, msg paho3.Message) {
		handle(delivery{
			m:   &Message{Topic: msg.Topic(), Payload: msg.Payload(), QoS: msg.Qos(), Retain: msg.Retained()},
			ack: msg.Ack,
		})
	}
	subscribed := make(chan error, 1)
	opts := paho3.NewClientOptions().
		AddBroker(broker.String()).
		SetClientID(clientID).
		SetUsername(cfg.Username).
		SetPassword(cfg.Password).
		SetTLSConfig(cfg.TLS).
		SetProtocolVersion(4).
		SetCleanSession(false).
		SetKeepAlive(30 * time.Second).
		SetAutoReconnect(true).
		SetConnectRetry(true).
		SetConnectRetryInterval(500 * time.Millisecond).
		SetMaxReconnectInterval(10 * time.Second).
		SetOrderMatters(true).
		SetAutoAckDisabled(true).
		SetDefaultPublishHandler(onMessage).
		SetConnectionLostHandler(func(_ paho3.Client, err error) {
			cfg.Logger.Warn("mqtt broker connection lost", "broker", u.Redacted(), "client_id", clientID, "error", err)
		}).
		SetOnConnectHandler(func(c paho3.Client) {
			cfg.Logger.Info("mqtt broker connected", "broker", u.Redacted(), "client_id", clientID)
			var err error
			if filters := subs.snapshot(); len(filters) > 0 {
				tok := c.SubscribeMultiple(filters, onMessage)
				tok.WaitTimeout(10 * time.Second)
				err = tok.Error()
				if err != nil {
					cfg.Logger.Error("mqtt subscribe failed", "broker", u.Redacted(), "error", err)
				}
			}
			select {
			case subscribed <- err:
			default:
			}
		})
	c := &paho311{c: paho3.NewClient(opts)}
	c.c.Connect()
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

// wait waits for tok within ctx.
func wait(ctx context.Context, tok paho3.Token) error {
	select {
	case <-tok.Done():
		return tok.Error()
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (c *paho311) publish(ctx context.Context, m *Message) error {
	return wait(ctx, c.c.Publish(m.Topic, m.QoS, m.Retain, m.Payload))
}

func (c *paho311) subscribe(ctx context.Context, filter string, qos byte) error {
	return wait(ctx, c.c.Subscribe(filter, qos, nil))
}

func (c *paho311) unsubscribe(ctx context.Context, filter string) error {
	return wait(ctx, c.c.Unsubscribe(filter))
}

func (c *paho311) close() error {
	c.c.Disconnect(1000)
	return nil
}
