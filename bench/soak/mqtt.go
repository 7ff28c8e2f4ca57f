package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"sync"

	"github.com/eclipse/paho.golang/paho"
)

// delivery is the MQTT end-to-end check: the ids of the readings the
// broker acknowledged to the devices, against the ids the upstream
// replicas wrote down (serveUpstream).
type delivery struct {
	files []string // one per replica

	mu    sync.Mutex
	acked map[string]struct{}
	tries int64 // publishes, retries included
	last  int64 // the last reading id handed out
}

// nextID returns a reading id not used before in the run, whichever device
// asks.
func (d *delivery) nextID() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.last++
	return strconv.FormatInt(d.last, 10)
}

func newDelivery(files []string) *delivery {
	return &delivery{files: files, acked: map[string]struct{}{}}
}

func (d *delivery) ack(id string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.acked[id] = struct{}{}
}

func (d *delivery) try() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.tries++
}

// count returns how many readings were acknowledged, how many of them no
// replica recorded, up to 10 of those, how many Record calls the replicas
// made in all (duplicates included) and the publishes tried.
func (d *delivery) count() (acked, lost int, missing []string, calls int, tries int64, err error) {
	seen := map[string]struct{}{}
	for _, name := range d.files {
		f, err := os.Open(name)
		if err != nil {
			return 0, 0, nil, 0, 0, err
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			seen[sc.Text()] = struct{}{}
			calls++
		}
		f.Close()
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for id := range d.acked {
		if _, ok := seen[id]; !ok {
			lost++
			if len(missing) < 10 {
				missing = append(missing, id)
			}
		}
	}
	return len(d.acked), lost, missing, calls, d.tries, nil
}

// device is an MQTT 5 device on the external broker: each call publishes
// one telemetry reading with QoS 1 and waits for the broker's PUBACK. A
// reading not acknowledged is published again, with the same id, at the
// next call (a QoS 1 device's duty), on a new connection.
type device struct {
	broker, id string
	rec        *delivery
	c          *paho.Client
	pending    string // id of the reading not yet acknowledged
}

func (d *device) call(ctx context.Context, _ int64) error {
	if d.c == nil {
		if err := d.connect(ctx); err != nil {
			return err
		}
	}
	if d.pending == "" {
		d.pending = d.rec.nextID()
	}
	d.rec.try()
	resp, err := d.c.Publish(ctx, &paho.Publish{
		Topic:   "soak/" + d.id + "/telemetry",
		QoS:     1,
		Payload: []byte(`{"id":"` + d.pending + `","reading":{"temperature":20,"humidity":50}}`),
	})
	if err == nil && resp != nil && resp.ReasonCode >= 0x80 {
		err = fmt.Errorf("PUBACK reason 0x%x %s", resp.ReasonCode, resp.Properties.ReasonString)
	}
	if err != nil {
		d.close()
		return fmt.Errorf("publish: %w", err)
	}
	d.rec.ack(d.pending)
	d.pending = ""
	return nil
}

func (d *device) connect(ctx context.Context) error {
	var dialer net.Dialer
	conn, err := dialer.DialContext(ctx, "tcp", d.broker)
	if err != nil {
		return fmt.Errorf("dial broker: %w", err)
	}
	c := paho.NewClient(paho.ClientConfig{ClientID: d.id, Conn: conn})
	if _, err := c.Connect(ctx, &paho.Connect{ClientID: d.id, KeepAlive: 30, CleanStart: true}); err != nil {
		conn.Close()
		return fmt.Errorf("connect: %w", err)
	}
	d.c = c
	return nil
}

func (d *device) close() {
	if d.c != nil {
		_ = d.c.Disconnect(&paho.Disconnect{})
		d.c = nil
	}
}
