package discovery

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// Etcd finds endpoints under a key prefix of etcd: each key is one
// endpoint, its value {"addr": "host:port", "weight": 2} or a plain
// "host:port". It lists the prefix, then watches it from the listed
// revision, so no change is missed; a key written with a lease goes when
// the lease expires (etcd deletes it), so a registration whose owner died
// stops receiving calls.
type Etcd struct {
	Endpoints []string
	Prefix    string
	// Username and Password authenticate to etcd, when set.
	Username, Password string
	// DialTimeout bounds connecting (default 5s).
	DialTimeout time.Duration
}

// Kind is "etcd".
func (*Etcd) Kind() string { return "etcd" }

// etcdValue is the JSON form of a key's value.
type etcdValue struct {
	Addr   string `json:"addr"`
	Weight int    `json:"weight"`
}

// parseEtcdValue reads one key's value.
func parseEtcdValue(v []byte) (Endpoint, bool) {
	s := strings.TrimSpace(string(v))
	if strings.HasPrefix(s, "{") {
		var ev etcdValue
		if json.Unmarshal([]byte(s), &ev) != nil || ev.Addr == "" {
			return Endpoint{}, false
		}
		return Endpoint(ev), true
	}
	return Endpoint{Addr: s, Weight: 1}, s != ""
}

// Watch lists the prefix and follows its changes until the watch fails.
func (e *Etcd) Watch(ctx context.Context, update func([]Endpoint)) error {
	if e.Prefix == "" {
		return fmt.Errorf("etcd: no prefix")
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints: e.Endpoints, DialTimeout: cmp.Or(e.DialTimeout, 5*time.Second),
		Username: e.Username, Password: e.Password, Context: ctx, Logger: zap.NewNop(),
	})
	if err != nil {
		return fmt.Errorf("etcd: %w", err)
	}
	defer cli.Close()
	getCtx, cancel := context.WithTimeout(ctx, cmp.Or(e.DialTimeout, 5*time.Second))
	resp, err := cli.Get(getCtx, e.Prefix, clientv3.WithPrefix())
	cancel()
	if err != nil {
		return fmt.Errorf("etcd: list %s: %w", e.Prefix, err)
	}
	set := map[string]Endpoint{}
	for _, kv := range resp.Kvs {
		if ep, ok := parseEtcdValue(kv.Value); ok {
			set[string(kv.Key)] = ep
		}
	}
	publish := func() { update(slices.Collect(maps.Values(set))) }
	publish()
	wctx, wcancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer wcancel()
	for wr := range cli.Watch(wctx, e.Prefix, clientv3.WithPrefix(), clientv3.WithRev(resp.Header.Revision+1)) {
		if err := wr.Err(); err != nil {
			return fmt.Errorf("etcd: watch %s: %w", e.Prefix, err)
		}
		for _, ev := range wr.Events {
			key := string(ev.Kv.Key)
			if ev.Type == clientv3.EventTypeDelete {
				delete(set, key)
			} else if ep, ok := parseEtcdValue(ev.Kv.Value); ok {
				set[key] = ep
			} else {
				delete(set, key)
			}
		}
		publish()
	}
	if ctx.Err() != nil {
		return nil
	}
	return fmt.Errorf("etcd: watch %s ended", e.Prefix)
}
