package router

import (
	"fmt"
	"testing"

	"google.golang.org/grpc/metadata"
)

func split(weights ...int) *Split {
	s := &Split{}
	for i, w := range weights {
		s.Targets = append(s.Targets, SplitTarget{Name: fmt.Sprintf("v%d", i+1), Weight: w})
	}
	return s
}

func TestSplitWeightsExact(t *testing.T) {
	s := split(90, 10)
	var n [2]int
	for range 10000 {
		n[s.Choose(&Call{})]++
	}
	if n != [2]int{9000, 1000} {
		t.Fatalf("10000 calls split %v, want exactly [9000 1000]", n)
	}
	// Smooth: the canary's calls are spread, never two in a row at 90/10.
	prev := -1
	for range 100 {
		i := s.Choose(nil)
		if i == 1 && prev == 1 {
			t.Fatal("two canary calls in a row at 90/10")
		}
		prev = i
	}
}

func TestSplitPins(t *testing.T) {
	s := split(100, 0)
	s.Pins = []SplitPin{{Header: "x-canary", Cookie: "canary", Value: "1", Target: 1}}
	for _, tc := range []struct {
		md   metadata.MD
		want int
	}{
		{metadata.Pairs("x-canary", "1"), 1},
		{metadata.Pairs("x-canary", "0"), 0},
		{metadata.Pairs("cookie", "a=b; canary=1"), 1},
		{metadata.Pairs("cookie", "canary=never"), 0},
		{nil, 0},
	} {
		if got := s.Choose(&Call{Incoming: tc.md}); got != tc.want {
			t.Errorf("%v: target %d, want %d", tc.md, got, tc.want)
		}
	}
}

func TestSplitSticky(t *testing.T) {
	s := split(50, 50)
	s.Sticky = &SplitSticky{Identity: true, Header: "x-user", Cookie: "uid"}
	call := func(i int) *Call { return &Call{Identity: &Identity{Subject: fmt.Sprint("user-", i)}} }
	first := map[int]int{}
	var n [2]int
	for i := range 10000 {
		first[i] = s.Choose(call(i))
		n[first[i]]++
	}
	for i := range 10000 {
		if got := s.Choose(call(i)); got != first[i] {
			t.Fatalf("user-%d moved from %d to %d", i, first[i], got)
		}
	}
	if n[0] < 4800 || n[0] > 5200 {
		t.Errorf("50/50 by key placed %v", n)
	}
	// The header and the cookie are keys too, the identity first.
	for _, md := range []metadata.MD{metadata.Pairs("x-user", "someone"), metadata.Pairs("cookie", "uid=someone")} {
		first := s.Choose(&Call{Incoming: md})
		for range 10 {
			if s.Choose(&Call{Incoming: md}) != first {
				t.Fatalf("%v: not sticky", md)
			}
		}
	}

	// 50/50 → 80/20: only users of v2 move, and only to v1, about 30% of all.
	s2 := split(80, 20)
	s2.Sticky = s.Sticky
	moved := 0
	for i := range 10000 {
		got := s2.Choose(call(i))
		if got != first[i] {
			if got != 0 {
				t.Fatalf("user-%d moved from v1 to v2 though v2's weight shrank", i)
			}
			moved++
		}
	}
	if moved < 2800 || moved > 3200 {
		t.Errorf("%d of 10000 users moved from 50/50 to 80/20, want about 3000", moved)
	}
}

func TestSplitString(t *testing.T) {
	s := split(90, 10)
	s.Pins = []SplitPin{{Header: "x-canary", Value: "1", Target: 1}}
	s.Sticky = &SplitSticky{Identity: true, Cookie: "uid"}
	want := "split(v1 90, v2 10; pin header x-canary = 1 → v2; sticky: identity, cookie uid)"
	if got := s.String(); got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

// BenchmarkSplitChoose is the cost of placing one call: by weight (smooth
// weighted round-robin, under a mutex), by a sticky key (rendezvous hash
// over the targets) and by a pin.
func BenchmarkSplitChoose(b *testing.B) {
	s := split(90, 10)
	s.Pins = []SplitPin{{Header: "x-canary", Value: "1", Target: 1}}
	s.Sticky = &SplitSticky{Identity: true}
	for _, bc := range []struct {
		name string
		call *Call
	}{
		{"weight", &Call{}},
		{"sticky", &Call{Identity: &Identity{Subject: "user-12345"}}},
		{"pin", &Call{Incoming: metadata.Pairs("x-canary", "1")}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				s.Choose(bc.call)
			}
		})
	}
}
