package discovery

import (
	"testing"

	"github.com/rosettagw/rosetta/discovery/discoverytest"
	"github.com/rosettagw/rosetta/internal/testwait"
)

// TestConsul: the passing instances of a service (with the tag), by
// service address or else node address, with their passing weight,
// followed through blocking queries as instances come, go and fail their
// checks.
func TestConsul(t *testing.T) {
	c, addr := discoverytest.NewConsul(t)
	c.Set("library",
		discoverytest.ConsulInstance{ID: "a", Node: "n1", NodeAddr: "10.0.0.1", Addr: "127.0.0.1", Port: 9001, Weight: 2, Tags: []string{"v1"}, Status: "passing"},
		discoverytest.ConsulInstance{ID: "b", Node: "n2", NodeAddr: "127.0.0.2", Port: 9002, Weight: 1, Tags: []string{"v1"}, Status: "passing"},
		discoverytest.ConsulInstance{ID: "c", Node: "n3", NodeAddr: "127.0.0.3", Port: 9003, Weight: 1, Tags: []string{"v1"}, Status: "critical"},
		discoverytest.ConsulInstance{ID: "d", Node: "n4", NodeAddr: "127.0.0.4", Port: 9004, Weight: 1, Tags: []string{"v2"}, Status: "passing"},
	)
	w := watch(t, &Consul{Address: addr, Service: "library", Tag: "v1"}, Options{})
	w.want(t, "127.0.0.1:9001/2", "127.0.0.2:9002/1")

	// The next query blocks on the index; a change answers it.
	testwait.For(t, "a blocking query", func() bool { _, blocked := c.Counts(); return blocked > 0 })
	c.Set("library",
		discoverytest.ConsulInstance{ID: "b", Node: "n2", NodeAddr: "127.0.0.2", Port: 9002, Weight: 1, Tags: []string{"v1"}, Status: "passing"},
		discoverytest.ConsulInstance{ID: "c", Node: "n3", NodeAddr: "127.0.0.3", Port: 9003, Weight: 5, Tags: []string{"v1"}, Status: "passing"},
	)
	w.want(t, "127.0.0.2:9002/1", "127.0.0.3:9003/5")
	c.Set("library",
		discoverytest.ConsulInstance{ID: "c", Node: "n3", NodeAddr: "127.0.0.3", Port: 9003, Weight: 5, Tags: []string{"v1"}, Status: "passing"},
		discoverytest.ConsulInstance{ID: "b", Node: "n2", NodeAddr: "127.0.0.2", Port: 9002, Weight: 1, Tags: []string{"v1"}, Status: "warning"},
	)
	w.want(t, "127.0.0.3:9003/5")
	queries, _ := c.Counts()
	if queries > 6 {
		t.Errorf("%d queries for 3 changes: the watch polls instead of blocking", queries)
	}
}
