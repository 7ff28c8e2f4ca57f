// Package discoverytest runs the peers the discovery tests need on
// loopback ports: a real dnsmasq, a real etcd, and a stand-in for Consul's
// health API (no Consul agent can be installed on these machines).
package discoverytest

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Timeout bounds the wait for a peer to start.
const Timeout = 30 * time.Second

// Binary finds a test peer's executable, failing the test when it is
// missing: scripts/test.sh installs it.
func Binary(t testing.TB, name, pkg string) string {
	t.Helper()
	for _, p := range []string{name, "/usr/sbin/" + name, "/usr/bin/" + name} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	t.Fatalf("%s is not installed; scripts/test.sh installs it (apt-get install -y %s)", name, pkg)
	return ""
}

// FreeAddr returns a loopback address whose TCP and UDP ports were free a
// moment ago.
func FreeAddr(t testing.TB) string {
	t.Helper()
	for range 20 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		if pc, err := net.ListenPacket("udp", addr); err == nil {
			pc.Close()
			return addr
		}
	}
	t.Fatal("no free port")
	return ""
}

// syncBuffer collects a process's output.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Dnsmasq is a real resolver serving the test's records on a loopback
// port: A records from a hosts file (reloaded on SIGHUP), SRV records from
// its configuration (read at start).
type Dnsmasq struct {
	t   testing.TB
	bin string
	dir string
	// Addr is the resolver's address.
	Addr  string
	cmd   *exec.Cmd
	out   *syncBuffer
	done  chan struct{}
	loads int // "read HOSTS" lines seen
}

// StartDnsmasq starts dnsmasq with the hosts file, the records' TTL and
// SRV records ("_grpc._tcp.name,target,port,priority,weight"); it stops
// when the test ends.
func StartDnsmasq(t testing.TB, ttl int, hosts string, srv ...string) *Dnsmasq {
	t.Helper()
	d := &Dnsmasq{t: t, bin: Binary(t, "dnsmasq", "dnsmasq"), dir: t.TempDir(), Addr: FreeAddr(t)}
	// dnsmasq started as root drops to nobody, who must read the files.
	if err := os.Chmod(d.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	d.WriteHosts(hosts)
	d.Configure(ttl, srv...)
	d.Start()
	t.Cleanup(d.Stop)
	return d
}

// WriteHosts rewrites the hosts file (read at start and on SIGHUP).
func (d *Dnsmasq) WriteHosts(hosts string) {
	if err := os.WriteFile(filepath.Join(d.dir, "hosts"), []byte(hosts), 0o644); err != nil {
		d.t.Fatal(err)
	}
}

// Configure rewrites the configuration (read at start).
func (d *Dnsmasq) Configure(ttl int, srv ...string) {
	_, port, _ := strings.Cut(d.Addr, ":")
	conf := fmt.Sprintf("port=%s\nlisten-address=127.0.0.1\nbind-interfaces\nno-resolv\nno-hosts\naddn-hosts=%s\nlocal-ttl=%d\n",
		port, filepath.Join(d.dir, "hosts"), ttl)
	for _, s := range srv {
		conf += "srv-host=" + s + "\n"
	}
	if err := os.WriteFile(filepath.Join(d.dir, "dnsmasq.conf"), []byte(conf), 0o644); err != nil {
		d.t.Fatal(err)
	}
}

// Start runs dnsmasq and waits until it has read the hosts file.
func (d *Dnsmasq) Start() {
	d.out = &syncBuffer{}
	d.cmd = exec.Command(d.bin, "--no-daemon", "--conf-file="+filepath.Join(d.dir, "dnsmasq.conf"), "--pid-file=", "--log-facility=-")
	d.cmd.Stdout, d.cmd.Stderr = d.out, d.out
	if err := d.cmd.Start(); err != nil {
		d.t.Fatal(err)
	}
	d.done = make(chan struct{})
	go func() {
		d.cmd.Wait()
		close(d.done)
	}()
	d.loads = 0
	d.waitLoad()
}

// waitLoad waits for dnsmasq to log one more reading of the hosts file.
func (d *Dnsmasq) waitLoad() {
	d.t.Helper()
	d.loads++
	deadline := time.After(Timeout)
	for strings.Count(d.out.String(), "read "+filepath.Join(d.dir, "hosts")) < d.loads {
		select {
		case <-d.done:
			d.t.Fatalf("dnsmasq exited:\n%s", d.out)
		case <-deadline:
			d.t.Fatalf("dnsmasq did not read its hosts file within %v:\n%s", Timeout, d.out)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Reload rewrites the hosts file and sends SIGHUP.
func (d *Dnsmasq) Reload(hosts string) {
	d.t.Helper()
	d.WriteHosts(hosts)
	if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		d.t.Fatal(err)
	}
	d.waitLoad()
}

// Stop stops dnsmasq.
func (d *Dnsmasq) Stop() {
	select {
	case <-d.done:
		return
	default:
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(5 * time.Second):
		d.cmd.Process.Kill()
		<-d.done
	}
}

// StartEtcd runs a single-member etcd on loopback ports with a temporary
// data directory and returns its client URL.
func StartEtcd(t testing.TB) string {
	t.Helper()
	bin := Binary(t, "etcd", "etcd-server")
	client, peer := "http://"+FreeAddr(t), "http://"+FreeAddr(t)
	out := &syncBuffer{}
	cmd := exec.Command(bin, "--name", "test", "--data-dir", t.TempDir(),
		"--listen-client-urls", client, "--advertise-client-urls", client,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
		"--initial-cluster", "test="+peer, "--log-level", "warn")
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		close(done)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
	})
	deadline := time.After(Timeout)
	for {
		if resp, err := http.Get(client + "/health"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return client
			}
		}
		select {
		case <-done:
			t.Fatalf("etcd exited:\n%s", out)
		case <-deadline:
			t.Fatalf("etcd not healthy within %v:\n%s", Timeout, out)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// ConsulInstance is one registered instance of the stand-in.
type ConsulInstance struct {
	ID, Node, NodeAddr, Addr string
	Port, Weight             int
	Tags                     []string
	// Status is the instance's check status: passing, warning, critical.
	Status string
}

// Consul serves /v1/health/service/NAME as a Consul agent does (no
// agent can be installed here): the documented JSON of health entries,
// ?passing filtering on the checks, ?tag=, and blocking queries (?index=
// waits until X-Consul-Index moves past it, or ?wait= passes).
type Consul struct {
	mu        sync.Mutex
	index     uint64
	changed   chan struct{} // closed at the next change
	instances map[string][]ConsulInstance
	// queries counts the queries, blocked those that waited for a change
	// (read them with Counts).
	queries, blocked int
}

// NewConsul starts a Consul stand-in and returns it with its address; it
// stops when the test ends.
func NewConsul(t testing.TB) (*Consul, string) {
	c := &Consul{index: 7, changed: make(chan struct{}), instances: map[string][]ConsulInstance{}}
	srv := httptest.NewServer(c)
	t.Cleanup(srv.Close)
	return c, strings.TrimPrefix(srv.URL, "http://")
}

// Set replaces the instances of a service and moves the index.
func (c *Consul) Set(service string, in ...ConsulInstance) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.instances[service] = in
	c.index++
	close(c.changed)
	c.changed = make(chan struct{})
}

// Counts returns how many queries came, and how many of them blocked.
func (c *Consul) Counts() (queries, blocked int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.queries, c.blocked
}

// ServeHTTP answers the health API.
func (c *Consul) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	name, ok := strings.CutPrefix(r.URL.Path, "/v1/health/service/")
	if !ok || r.Method != "GET" {
		http.NotFound(w, r)
		return
	}
	q := r.URL.Query()
	wait := 5 * time.Minute
	if s := q.Get("wait"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			http.Error(w, "bad wait", 400)
			return
		}
		wait = d
	}
	index, _ := strconv.ParseUint(q.Get("index"), 10, 64)
	c.mu.Lock()
	c.queries++
	if index > 0 && index >= c.index {
		c.blocked++
		ch := c.changed
		c.mu.Unlock()
		select {
		case <-ch:
		case <-time.After(wait):
		case <-r.Context().Done():
			return
		}
		c.mu.Lock()
	}
	var out []map[string]any
	for _, in := range c.instances[name] {
		if _, passing := q["passing"]; passing && in.Status != "passing" {
			continue
		}
		if tag := q.Get("tag"); tag != "" && !slices.Contains(in.Tags, tag) {
			continue
		}
		out = append(out, map[string]any{
			"Node": map[string]any{"Node": in.Node, "Address": in.NodeAddr, "Datacenter": "dc1"},
			"Service": map[string]any{"ID": in.ID, "Service": name, "Tags": in.Tags, "Address": in.Addr, "Port": in.Port,
				"Weights": map[string]any{"Passing": in.Weight, "Warning": 1}},
			"Checks": []map[string]any{{"Node": in.Node, "CheckID": "service:" + in.ID, "Status": in.Status, "ServiceID": in.ID}},
		})
	}
	w.Header().Set("X-Consul-Index", strconv.FormatUint(c.index, 10))
	w.Header().Set("X-Consul-KnownLeader", "true")
	c.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if out == nil {
		out = []map[string]any{}
	}
	json.NewEncoder(w).Encode(out)
}
