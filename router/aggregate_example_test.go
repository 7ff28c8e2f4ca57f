package router_test

import (
	"context"
	"encoding/json"
	"fmt"

	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/structpb"

	orderv1 "github.com/rosettagw/rosetta/proto/example/order/v1"
	"github.com/rosettagw/rosetta/router"
)

// catalogue is an in-memory gRPC upstream: it answers GetProduct.
type catalogue struct{}

func (catalogue) Invoke(_ context.Context, target string, req []byte, _ metadata.MD) (*router.Reply, error) {
	in := &orderv1.GetProductRequest{}
	if err := proto.Unmarshal(req, in); err != nil {
		return nil, err
	}
	out, err := proto.Marshal(&orderv1.Product{Id: in.Id, Name: "Desk pad", PriceCents: 1500})
	return &router.Reply{Message: out}, err
}

// inventory is an in-memory gRPC upstream: it answers Reserve.
type inventory struct{}

func (inventory) Invoke(_ context.Context, target string, req []byte, _ metadata.MD) (*router.Reply, error) {
	in := &orderv1.ReserveRequest{}
	if err := proto.Unmarshal(req, in); err != nil {
		return nil, err
	}
	out, err := proto.Marshal(&orderv1.Reservation{ReservationId: "res-1", ProductId: in.ProductId, Quantity: in.Quantity})
	return &router.Reply{Message: out}, err
}

// A composed call: look the product up, then reserve it (the reservation
// takes the product's id from the first step's response), and answer with
// the product under one key and the reservation's fields at the top level.
func ExampleNewAggregate() {
	types := orderv1.File_example_order_v1_order_proto.Messages()
	message := func(name string) protoreflect.MessageDescriptor { return types.ByName(protoreflect.Name(name)) }
	agg, err := router.NewAggregate(router.AggregateSpec{
		Input: message("CreateOrderRequest"),
		Steps: []router.StepSpec{{
			Name: "product", Invoker: catalogue{}, Target: "/example.order.v1.ProductService/GetProduct",
			Request: message("GetProductRequest"), Response: message("Product"),
			Fields: map[string]string{"id": "input.product_id"},
		}, {
			Name: "reserve", Invoker: inventory{}, Target: "/example.order.v1.InventoryService/Reserve",
			Request: message("ReserveRequest"), Response: message("Reservation"),
			Fields: map[string]string{"product_id": "product.id", "quantity": "input.quantity"},
		}},
		Respond: map[string]string{"product": "product"},
		Merge:   []string{"reserve"},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	// The ingress decodes the request into the input message.
	input, _ := proto.Marshal(&orderv1.CreateOrderRequest{ProductId: "pad-1", Quantity: 2})
	call := &router.Call{Decode: func() ([]byte, error) { return input, nil }}
	if err := agg.Handle(context.Background(), call); err != nil {
		fmt.Println(err)
		return
	}
	// The answer is a google.protobuf.Struct, which the ingress renders.
	answer := &structpb.Struct{}
	if err := proto.Unmarshal(call.Reply.Message, answer); err != nil {
		fmt.Println(err)
		return
	}
	out, _ := json.Marshal(answer.AsMap())
	fmt.Println(string(out))
	// Output: {"product":{"id":"pad-1","name":"Desk pad","priceCents":"1500"},"productId":"pad-1","quantity":2,"reservationId":"res-1"}
}
