package discovery

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// consulInstance is one registered instance of the stand-in.
type consulInstance struct {
	ID, Node, NodeAddr, Addr string
	Port, Weight             int
	Tags                     []string
	// Status is the instance's check status: passing, warning, critical.
	Status string
}

// consulStandIn serves /v1/health/service/NAME as a Consul agent does (no
// agent can be installed here): the documented JSON of health entries,
// ?passing filtering on the checks, ?tag=, and blocking queries (?index=
// waits until X-Consul-Index moves past it, or ?wait= passes).
type consulStandIn struct {
	mu        sync.Mutex
	index     uint64
	changed   chan struct{} // closed at the next change
	instances map[string][]consulInstance
	queries   int
	blocked   int // queries that waited for a change
}

func newConsul(t *testing.T) (*consulStandIn, string) {
	c := &consulStandIn{index: 7, changed: make(chan struct{}), instances: map[string][]consulInstance{}}
	srv := httptest.NewServer(c)
	t.Cleanup(srv.Close)
	return c, strings.TrimPrefix(srv.URL, "http://")
}

// set replaces the instances of a service and moves the index.
func (c *consulStandIn) set(service string, in ...consulInstance) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.instances[service] = in
	c.index++
	close(c.changed)
	c.changed = make(chan struct{})
}

func (c *consulStandIn) ServeHTTP(w http.ResponseWriter, r *http.Request) {
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

// TestConsul: the passing instances of a service (with the tag), by
// service address or else node address, with their passing weight,
// followed through blocking queries as instances come, go and fail their
// checks.
func TestConsul(t *testing.T) {
	c, addr := newConsul(t)
	c.set("library",
		consulInstance{ID: "a", Node: "n1", NodeAddr: "10.0.0.1", Addr: "127.0.0.1", Port: 9001, Weight: 2, Tags: []string{"v1"}, Status: "passing"},
		consulInstance{ID: "b", Node: "n2", NodeAddr: "127.0.0.2", Port: 9002, Weight: 1, Tags: []string{"v1"}, Status: "passing"},
		consulInstance{ID: "c", Node: "n3", NodeAddr: "127.0.0.3", Port: 9003, Weight: 1, Tags: []string{"v1"}, Status: "critical"},
		consulInstance{ID: "d", Node: "n4", NodeAddr: "127.0.0.4", Port: 9004, Weight: 1, Tags: []string{"v2"}, Status: "passing"},
	)
	w := watch(t, &Consul{Address: addr, Service: "library", Tag: "v1"}, Options{})
	w.want(t, "127.0.0.1:9001/2", "127.0.0.2:9002/1")

	// The next query blocks on the index; a change answers it.
	waitCond(t, "a blocking query", func() bool { c.mu.Lock(); defer c.mu.Unlock(); return c.blocked > 0 })
	c.set("library",
		consulInstance{ID: "b", Node: "n2", NodeAddr: "127.0.0.2", Port: 9002, Weight: 1, Tags: []string{"v1"}, Status: "passing"},
		consulInstance{ID: "c", Node: "n3", NodeAddr: "127.0.0.3", Port: 9003, Weight: 5, Tags: []string{"v1"}, Status: "passing"},
	)
	w.want(t, "127.0.0.2:9002/1", "127.0.0.3:9003/5")
	c.set("library",
		consulInstance{ID: "c", Node: "n3", NodeAddr: "127.0.0.3", Port: 9003, Weight: 5, Tags: []string{"v1"}, Status: "passing"},
		consulInstance{ID: "b", Node: "n2", NodeAddr: "127.0.0.2", Port: 9002, Weight: 1, Tags: []string{"v1"}, Status: "warning"},
	)
	w.want(t, "127.0.0.3:9003/5")
	c.mu.Lock()
	queries := c.queries
	c.mu.Unlock()
	if queries > 6 {
		t.Errorf("%d queries for 3 changes: the watch polls instead of blocking", queries)
	}
}

// waitCond waits for cond.
func waitCond(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(watchTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %v", what, watchTimeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
