package discovery

import (
	"context"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/rosettagw/rosetta/discovery/discoverytest"
)

// TestEtcd: the endpoints under a prefix (JSON or plain values), followed
// as keys are put and deleted, and a key on a lease removed when the lease
// expires.
func TestEtcd(t *testing.T) {
	url := discoverytest.StartEtcd(t)
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{url}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx := context.Background()
	put := func(k, v string, opts ...clientv3.OpOption) {
		t.Helper()
		if _, err := cli.Put(ctx, k, v, opts...); err != nil {
			t.Fatal(err)
		}
	}
	put("/services/library/a", `{"addr": "127.0.0.1:9001", "weight": 3}`)
	put("/services/libraryx/z", "127.0.0.1:9999") // another prefix's
	w := watch(t, &Etcd{Endpoints: []string{url}, Prefix: "/services/library/"}, Options{})
	w.want(t, "127.0.0.1:9001/3")

	put("/services/library/b", "127.0.0.1:9002")
	w.want(t, "127.0.0.1:9001/3", "127.0.0.1:9002/1")
	put("/services/library/a", `{"addr": "127.0.0.1:9001", "weight": 1}`)
	w.want(t, "127.0.0.1:9001/1", "127.0.0.1:9002/1")
	if _, err := cli.Delete(ctx, "/services/library/a"); err != nil {
		t.Fatal(err)
	}
	w.want(t, "127.0.0.1:9002/1")

	// A registration on a lease (as a replica keeps alive) goes with it.
	lease, err := cli.Grant(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	put("/services/library/c", "127.0.0.1:9003", clientv3.WithLease(lease.ID))
	w.want(t, "127.0.0.1:9002/1", "127.0.0.1:9003/1")
	w.want(t, "127.0.0.1:9002/1") // the lease expired: etcd deleted the key
}
