package test

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/rosettagw/rosetta/discovery/discoverytest"
)

// registry is where a test registers the library-servers the gateway
// must find.
type registry struct {
	// discovery is the upstream's discovery section.
	discovery string
	// set registers exactly these library-servers, by name.
	set func(names ...string)
}

// TestDiscovery: an upstream found in etcd (a real etcd), in DNS SRV
// records (a real dnsmasq) and in Consul (a stand-in of its health API):
// the gateway serves the registered server, keeps the watch across a
// reload, and follows servers added and removed under steady load without
// a failed call.
func TestDiscovery(t *testing.T) {
	for _, source := range []string{"etcd", "dns", "consul"} {
		t.Run(source, func(t *testing.T) {
			addrs := map[string]string{"a": startNamedLibrary(t, "a"), "b": startNamedLibrary(t, "b")}
			reg := map[string]func(*testing.T, map[string]string) registry{"etcd": etcdRegistry, "dns": dnsRegistry, "consul": consulRegistry}[source](t, addrs)
			reg.set("a")
			admin := freePort(t)
			gw := startRosettaListen(t, fmt.Sprintf("admin: %q", admin), fmt.Sprintf(`schemas:
%supstreams:
  library: {grpc: {}, discovery: %s, timeout: 5s}
services:
  - name: example.library.v1.LibraryService
    upstream: library
`, descriptorSetSchema(), reg.discovery))
			if who := servedBy(t, gw.base, nil); who != "a" {
				t.Fatalf("served by %q, want a (the registered server)", who)
			}
			updates := fmt.Sprintf(`rosetta_discovery_updates_total{source=%q,upstream="library"} 1`, source)
			if _, m := adminGet(t, admin, "/metrics"); !strings.Contains(m, updates) || !strings.Contains(m, `rosetta_discovery_endpoints{upstream="library"} 1`) {
				t.Fatalf("/metrics lacks %s and the endpoint count", updates)
			}
			// A reload with the same discovery keeps the watch (a new one
			// would count one more update).
			gen := getReloadStatus(t, admin).Generation
			if code, body := postReload(t, admin); code != 200 {
				t.Fatalf("POST /admin/reload: %d %s", code, body)
			}
			waitFor(t, "the reload", func() bool { return getReloadStatus(t, admin).Generation > gen })
			if _, m := adminGet(t, admin, "/metrics"); !strings.Contains(m, updates) {
				t.Errorf("after a reload /metrics lacks %s: the watch was restarted", updates)
			}

			// Steady load while servers come and go: no call may fail.
			var (
				mu      sync.Mutex
				served  = map[string]int{}
				failed  atomic.Int64
				stop    = make(chan struct{})
				stopped sync.WaitGroup
			)
			var once sync.Once
			end := func() {
				once.Do(func() { close(stop) })
				stopped.Wait()
			}
			defer end()
			for range 4 {
				stopped.Go(func() {
					for {
						select {
						case <-stop:
							return
						default:
						}
						resp, err := client.Get(gw.base + "/v1/shelves/1")
						if err != nil || resp.StatusCode != 200 {
							failed.Add(1)
							if resp != nil {
								resp.Body.Close()
							}
							continue
						}
						resp.Body.Close()
						mu.Lock()
						served[resp.Header.Get("Grpc-Metadata-X-Served-By")]++
						mu.Unlock()
					}
				})
			}
			reset := func() {
				mu.Lock()
				clear(served)
				mu.Unlock()
			}
			count := func(name string) int {
				mu.Lock()
				defer mu.Unlock()
				return served[name]
			}
			reg.set("a", "b")
			waitFor(t, "calls served by the added server b", func() bool { return count("b") > 0 })
			reg.set("b")
			// Once a is removed, calls go to b only: 200 in a row.
			waitFor(t, "the removal of a", func() bool {
				reset()
				waitFor(t, "200 calls", func() bool { return count("a")+count("b") >= 200 })
				return count("a") == 0
			})
			end()
			if n := failed.Load(); n > 0 {
				t.Errorf("%d calls failed while the endpoints changed", n)
			}
		})
	}
}

// etcdRegistry registers the servers in a real etcd, one key each under
// /services/library/.
func etcdRegistry(t *testing.T, addrs map[string]string) registry {
	url := discoverytest.StartEtcd(t)
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{url}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return registry{
		discovery: fmt.Sprintf("{etcd: {endpoints: [%q], prefix: /services/library/}}", url),
		set: func(names ...string) {
			ctx := context.Background()
			if _, err := cli.Delete(ctx, "/services/library/", clientv3.WithPrefix()); err != nil {
				t.Fatal(err)
			}
			for _, n := range names {
				if _, err := cli.Put(ctx, "/services/library/"+n, fmt.Sprintf(`{"addr": %q, "weight": 1}`, addrs[n])); err != nil {
					t.Fatal(err)
				}
			}
		},
	}
}

// dnsRegistry registers the servers as SRV records of
// _grpc._tcp.library.test in a real dnsmasq (restarted with each set).
func dnsRegistry(t *testing.T, addrs map[string]string) registry {
	srv := func(names ...string) []string {
		var out []string
		for _, n := range names {
			_, port, _ := net.SplitHostPort(addrs[n])
			out = append(out, fmt.Sprintf("_grpc._tcp.library.test,%s.library.test,%s,0,1", n, port))
		}
		return out
	}
	d := discoverytest.StartDnsmasq(t, 1, "127.0.0.1 a.library.test\n127.0.0.1 b.library.test\n", srv("a")...)
	return registry{
		discovery: fmt.Sprintf("{dns: {name: _grpc._tcp.library.test, srv: true, resolver: %q, min_ttl: 1s}}", d.Addr),
		set: func(names ...string) {
			d.Stop()
			d.Configure(1, srv(names...)...)
			d.Start()
		},
	}
}

// consulRegistry registers the servers, passing their checks, in the
// Consul stand-in (no Consul agent can be installed here).
func consulRegistry(t *testing.T, addrs map[string]string) registry {
	c, addr := discoverytest.NewConsul(t)
	return registry{
		discovery: fmt.Sprintf("{consul: {address: %q, service: library}}", addr),
		set: func(names ...string) {
			var in []discoverytest.ConsulInstance
			for _, n := range names {
				host, port, _ := net.SplitHostPort(addrs[n])
				p := 0
				fmt.Sscan(port, &p)
				in = append(in, discoverytest.ConsulInstance{ID: n, Node: n, NodeAddr: host, Port: p, Weight: 1, Status: "passing"})
			}
			c.Set("library", in...)
		},
	}
}
