package router

import (
	"context"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/cespare/xxhash/v2"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Split is an Invoker (and stream opener) that sends each call to one of
// several upstreams: a canary or traffic split. A call is placed, in order,
// by the first Pin it matches (a header or cookie value that always picks
// one upstream, such as X-Canary: 1), else by its sticky key (consistent
// hashing, so that one caller stays on one upstream), else by smooth
// weighted round-robin, which is exact: over any run of calls each upstream
// gets its weight's share, within one call.
//
// The choice is made once per call by SplitStep, which the chain runs after
// authentication (the sticky key may be the caller's identity); retries of
// the call go to the same upstream. A Split reached without the step (it
// is not part of a chain) places each call by weight.
type Split struct {
	// Targets are the upstreams, with their weights (a weight of zero
	// receives pinned calls only).
	Targets []SplitTarget
	// Pins send matching calls to one target, whatever the weights.
	Pins []SplitPin
	// Sticky, when set, says where a call's sticky key comes from.
	Sticky *SplitSticky
	// Chosen, when set, is called with the index of the target of every
	// call (metrics).
	Chosen func(target int)

	mu      sync.Mutex
	current []int64 // smooth weighted round-robin state, one per target
}

// SplitTarget is one upstream of a Split.
type SplitTarget struct {
	// Name is the upstream's name in the configuration.
	Name    string
	Weight  int
	Invoker Invoker
}

// SplitPin sends the calls that carry Value in a header or a cookie to one
// target.
type SplitPin struct {
	// Header (lower-case) and Cookie name where the value is read (either
	// may be empty).
	Header, Cookie string
	Value          string
	// Target is the index of the target in Split.Targets.
	Target int
}

// SplitSticky says where a call's sticky key is read: the caller's
// identity subject when Identity is set and the call is authenticated,
// else the Header, else the Cookie. A call with no key is placed by weight.
type SplitSticky struct {
	Identity bool
	// Header is lower-case.
	Header, Cookie string
}

// splitChoice is the context key of a Split's choice for the call.
type splitChoice struct{ s *Split }

// SplitStep is the chain step that places a call whose route's Invoker is a
// Split: it records the chosen target in the context Dispatch passes to the
// Invoker. Calls to other routes pass through.
func SplitStep(next Handler) Handler {
	return HandlerFunc(func(ctx context.Context, c *Call) error {
		if s, ok := c.Route.Invoker.(*Split); ok {
			ctx = context.WithValue(ctx, splitChoice{s}, s.Choose(c))
		}
		return next.Handle(ctx, c)
	})
}

// Choose returns the index of the target c goes to (c may be nil: by
// weight), and counts it.
func (s *Split) Choose(c *Call) int {
	i := s.choose(c)
	if s.Chosen != nil {
		s.Chosen(i)
	}
	return i
}

func (s *Split) choose(c *Call) int {
	if c != nil {
		for _, p := range s.Pins {
			if p.matches(c.Incoming) {
				return p.Target
			}
		}
		if key := s.Sticky.key(c); key != "" {
			return s.hash(key)
		}
	}
	return s.next()
}

// matches reports whether the call's headers carry the pin's value.
func (p *SplitPin) matches(in metadata.MD) bool {
	if p.Header != "" {
		for _, v := range in.Get(p.Header) {
			if strings.TrimSpace(v) == p.Value {
				return true
			}
		}
	}
	return p.Cookie != "" && cookie(in, p.Cookie) == p.Value
}

// cookie returns the value of the named cookie of the call's Cookie
// headers, or "".
func cookie(in metadata.MD, name string) string {
	for _, line := range in.Get("cookie") {
		cs, err := http.ParseCookie(line)
		if err != nil {
			continue
		}
		for _, c := range cs {
			if c.Name == name {
				return c.Value
			}
		}
	}
	return ""
}

// key is the call's sticky key, or "".
func (st *SplitSticky) key(c *Call) string {
	if st == nil {
		return ""
	}
	if st.Identity && c.Identity != nil && c.Identity.Subject != "" {
		return "sub:" + c.Identity.Subject
	}
	if st.Header != "" {
		if v := c.Incoming.Get(st.Header); len(v) > 0 && v[0] != "" {
			return "hdr:" + v[0]
		}
	}
	if st.Cookie != "" {
		if v := cookie(c.Incoming, st.Cookie); v != "" {
			return "ck:" + v
		}
	}
	return ""
}

// hash places a key by weighted rendezvous hashing: each target scores
// weight / -ln(u), u being a hash of the key and the target's name mapped
// to (0,1), and the best score wins. A target gets its weight's share of
// keys; a key moves only when the weights change in a way that must move
// it (to a target whose weight grew, or away from one whose weight shrank),
// and never because a target was renamed or reordered elsewhere.
func (s *Split) hash(key string) int {
	best, bestScore := 0, math.Inf(-1)
	k := xxhash.Sum64String(key)
	for i, t := range s.Targets {
		if t.Weight <= 0 {
			continue
		}
		h := mix(k ^ xxhash.Sum64String(t.Name))
		u := (float64(h>>11) + 0.5) / (1 << 53)
		if score := float64(t.Weight) / -math.Log(u); score > bestScore {
			best, bestScore = i, score
		}
	}
	return best
}

// mix is splitmix64's finaliser: every bit of x moves every bit of the
// result, so the key's hash combined with each target's gives independent
// draws.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}

// next is smooth weighted round-robin (as nginx): every target's current
// value grows by its weight, the largest wins and loses the total.
func (s *Split) next() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.current == nil {
		s.current = make([]int64, len(s.Targets))
	}
	best, total := -1, int64(0)
	for i, t := range s.Targets {
		w := int64(max(t.Weight, 0))
		total += w
		s.current[i] += w
		if w > 0 && (best < 0 || s.current[i] > s.current[best]) {
			best = i
		}
	}
	if best < 0 {
		return 0
	}
	s.current[best] -= total
	return best
}

// target returns the invoker of the call's target.
func (s *Split) target(ctx context.Context) SplitTarget {
	i, ok := ctx.Value(splitChoice{s}).(int)
	if !ok {
		i = s.Choose(nil)
	}
	return s.Targets[i]
}

// Invoke calls the chosen upstream.
func (s *Split) Invoke(ctx context.Context, target string, req []byte, md metadata.MD) (*Reply, error) {
	return s.target(ctx).Invoker.Invoke(ctx, target, req, md)
}

// NewStream opens a stream to the chosen upstream.
func (s *Split) NewStream(ctx context.Context, target string, method protoreflect.MethodDescriptor, md metadata.MD) (UpstreamStream, error) {
	t := s.target(ctx)
	si, ok := t.Invoker.(StreamInvoker)
	if !ok {
		return nil, status.Errorf(codes.Unimplemented, "upstream %q does not support streaming calls", t.Name)
	}
	return si.NewStream(ctx, target, method, md)
}

// String describes the split for `rosetta routes`: "split(v1 90, v2 10;
// pin header x-canary=1 → v2; sticky: identity, header x-user)".
func (s *Split) String() string {
	var b strings.Builder
	b.WriteString("split(")
	for i, t := range s.Targets {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(t.Name + " " + strconv.Itoa(t.Weight))
	}
	for _, p := range s.Pins {
		var where []string
		if p.Header != "" {
			where = append(where, "header "+strings.ToLower(p.Header))
		}
		if p.Cookie != "" {
			where = append(where, "cookie "+p.Cookie)
		}
		b.WriteString("; pin " + strings.Join(where, " or ") + " = " + p.Value + " → " + s.Targets[p.Target].Name)
	}
	if st := s.Sticky; st != nil {
		var keys []string
		if st.Identity {
			keys = append(keys, "identity")
		}
		if st.Header != "" {
			keys = append(keys, "header "+strings.ToLower(st.Header))
		}
		if st.Cookie != "" {
			keys = append(keys, "cookie "+st.Cookie)
		}
		b.WriteString("; sticky: " + strings.Join(keys, ", "))
	}
	b.WriteString(")")
	return b.String()
}
