package order

import (
	"fmt"
	"io"
	"net/http"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/rosettagw/rosetta/translate"

	orderv1 "github.com/rosettagw/rosetta/proto/example/order/v1"
)

// maxChargeBytes bounds a charge request body.
const maxChargeBytes = 64 << 10

// charge answers POST /v1/charges.
func (s *Shop) charge(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxChargeBytes))
	req := &orderv1.ChargeRequest{}
	if err == nil {
		err = protojson.Unmarshal(body, req)
	}
	if err != nil {
		writeJSONStatus(w, status.New(codes.InvalidArgument, "invalid charge request: "+err.Error()))
		return
	}
	ch, err := serve(r.Context(), s, "Charge", req, func() (*orderv1.Charge, error) {
		if req.GetCard() == "declined" {
			return nil, status.Error(codes.FailedPrecondition, "card declined")
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		s.nextID++
		return &orderv1.Charge{ChargeId: fmt.Sprintf("ch-%d", s.nextID), AmountCents: req.GetUnitPriceCents() * int64(req.GetQuantity())}, nil
	})
	if err != nil {
		writeJSONStatus(w, status.Convert(err))
		return
	}
	out, _ := protojson.Marshal(ch) // a generated message always marshals
	w.Header().Set("Content-Type", "application/json")
	w.Write(out)
}

// writeJSONStatus answers an error as a JSON google.rpc.Status; a declined
// card is 402 Payment Required.
func writeJSONStatus(w http.ResponseWriter, st *status.Status) {
	code := translate.HTTPStatus(st.Code())
	if st.Code() == codes.FailedPrecondition {
		code = http.StatusPaymentRequired
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	w.Write(translate.StatusJSON(st.Proto(), nil))
}
