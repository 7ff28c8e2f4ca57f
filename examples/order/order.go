// Package order is the example of an aggregated endpoint: a product
// catalogue and an inventory served over gRPC, and a payment service served
// as plain HTTP/JSON, which Rosetta composes into POST /api/order/create
// (see rosetta.yaml). Every service records its calls, with timestamps and
// whether the caller cancelled them, so tests can see what the gateway did.
package order

import (
	"context"
	_ "embed"
	"fmt"
	"net/http"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	orderv1 "github.com/rosettagw/rosetta/proto/example/order/v1"
)

// Call is one recorded call of a service method.
type Call struct {
	// Method is the method's name: "GetProduct", "ListRelated", "Reserve",
	// "Release" or "Charge".
	Method string
	// Request is a copy of the request message.
	Request proto.Message
	// Start and End are when the service received the call and answered it.
	Start, End time.Time
	// Canceled says the caller cancelled the call (or its deadline passed)
	// before the service answered.
	Canceled bool
}

// Shop serves the three example services and records their calls.
type Shop struct {
	// Delay holds every call of the named method for that long, or until
	// the caller cancels it. Set it before serving.
	Delay map[string]time.Duration
	// Gate, when set, is called as each call arrives (after it counts as
	// in flight, before its delay); an error answers the call with it.
	// Tests use it to hold calls until an event. Set it before serving.
	Gate func(ctx context.Context, method string, req proto.Message) error

	mu           sync.Mutex
	calls        []Call
	inFlight     map[string]int
	maxInFlight  map[string]int
	reservations map[string]*orderv1.Reservation
	nextID       int
}

// New returns a Shop with the example catalogue.
func New() *Shop {
	return &Shop{inFlight: map[string]int{}, maxInFlight: map[string]int{}, reservations: map[string]*orderv1.Reservation{}}
}

var catalogue = map[string]*orderv1.Product{
	"kb-1":  {Id: "kb-1", Name: "Mechanical keyboard", PriceCents: 8900},
	"ms-1":  {Id: "ms-1", Name: "Wireless mouse", PriceCents: 2900},
	"mon-1": {Id: "mon-1", Name: "27-inch monitor", PriceCents: 24900},
	"pad-1": {Id: "pad-1", Name: "Desk pad", PriceCents: 1500},
	"cab-1": {Id: "cab-1", Name: "USB-C cable", PriceCents: 900},
}

var related = map[string][]string{
	"kb-1":  {"ms-1", "pad-1", "cab-1"},
	"ms-1":  {"pad-1", "kb-1"},
	"mon-1": {"cab-1", "kb-1", "ms-1"},
}

// Calls returns the calls recorded so far, in the order they ended.
func (s *Shop) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Call(nil), s.calls...)
}

// LastCalls returns the last n calls recorded (fewer if there were fewer).
func (s *Shop) LastCalls(n int) []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Call(nil), s.calls[max(0, len(s.calls)-n):]...)
}

// CallsOf returns the recorded calls of one method.
func (s *Shop) CallsOf(method string) []Call {
	var out []Call
	for _, c := range s.Calls() {
		if c.Method == method {
			out = append(out, c)
		}
	}
	return out
}

// MaxInFlight returns the largest number of calls of method that the shop
// was serving at once.
func (s *Shop) MaxInFlight(method string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.maxInFlight[method]
}

// InFlight returns the number of calls of method the shop is serving now:
// received and not yet answered (so not yet in Calls).
func (s *Shop) InFlight(method string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.inFlight[method]
}

// Reservations returns the reservations held (made and not released).
func (s *Shop) Reservations() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.reservations)
}

// serve records one call of method around handle, after the method's delay.
func serve[T proto.Message](ctx context.Context, s *Shop, method string, req proto.Message, handle func() (T, error)) (T, error) {
	c := Call{Method: method, Request: proto.Clone(req), Start: time.Now()}
	s.mu.Lock()
	s.inFlight[method]++
	s.maxInFlight[method] = max(s.maxInFlight[method], s.inFlight[method])
	s.mu.Unlock()
	defer func() {
		c.End = time.Now()
		c.Canceled = ctx.Err() != nil
		s.mu.Lock()
		s.inFlight[method]--
		s.calls = append(s.calls, c)
		s.mu.Unlock()
	}()
	if s.Gate != nil {
		if err := s.Gate(ctx, method, req); err != nil {
			var zero T
			return zero, err
		}
	}
	if d := s.Delay[method]; d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			var zero T
			return zero, status.FromContextError(ctx.Err()).Err()
		}
	}
	return handle()
}

// RegisterGRPC registers the product and inventory services on srv.
func (s *Shop) RegisterGRPC(srv *grpc.Server) {
	orderv1.RegisterProductServiceServer(srv, products{s: s})
	orderv1.RegisterInventoryServiceServer(srv, inventory{s: s})
}

type products struct {
	orderv1.UnimplementedProductServiceServer
	s *Shop
}

func (p products) GetProduct(ctx context.Context, req *orderv1.GetProductRequest) (*orderv1.Product, error) {
	return serve(ctx, p.s, "GetProduct", req, func() (*orderv1.Product, error) {
		prod, ok := catalogue[req.GetId()]
		if !ok {
			return nil, status.Errorf(codes.NotFound, "no product %q", req.GetId())
		}
		return prod, nil
	})
}

func (p products) ListRelated(ctx context.Context, req *orderv1.ListRelatedRequest) (*orderv1.ListRelatedResponse, error) {
	return serve(ctx, p.s, "ListRelated", req, func() (*orderv1.ListRelatedResponse, error) {
		return &orderv1.ListRelatedResponse{ProductIds: related[req.GetProductId()]}, nil
	})
}

type inventory struct {
	orderv1.UnimplementedInventoryServiceServer
	s *Shop
}

func (i inventory) Reserve(ctx context.Context, req *orderv1.ReserveRequest) (*orderv1.Reservation, error) {
	return serve(ctx, i.s, "Reserve", req, func() (*orderv1.Reservation, error) {
		if req.GetQuantity() <= 0 {
			return nil, status.Errorf(codes.InvalidArgument, "quantity must be positive, not %d", req.GetQuantity())
		}
		if _, ok := catalogue[req.GetProductId()]; !ok {
			return nil, status.Errorf(codes.NotFound, "no product %q", req.GetProductId())
		}
		i.s.mu.Lock()
		defer i.s.mu.Unlock()
		i.s.nextID++
		r := &orderv1.Reservation{ReservationId: fmt.Sprintf("res-%d", i.s.nextID), ProductId: req.GetProductId(), Quantity: req.GetQuantity()}
		i.s.reservations[r.ReservationId] = r
		return r, nil
	})
}

func (i inventory) Release(ctx context.Context, req *orderv1.ReleaseRequest) (*orderv1.ReleaseResponse, error) {
	return serve(ctx, i.s, "Release", req, func() (*orderv1.ReleaseResponse, error) {
		i.s.mu.Lock()
		defer i.s.mu.Unlock()
		_, held := i.s.reservations[req.GetReservationId()]
		delete(i.s.reservations, req.GetReservationId())
		return &orderv1.ReleaseResponse{Released: held}, nil
	})
}

// PaymentHandler serves the payment service: POST /v1/charges takes a JSON
// ChargeRequest and answers a JSON Charge, or, for the card "declined", 402
// with a google.rpc.Status of code FAILED_PRECONDITION.
func (s *Shop) PaymentHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/charges", s.charge)
	return mux
}

// Config is rosetta.yaml: the composed route and the upstreams it needs.
//
//go:embed rosetta.yaml
var Config []byte
