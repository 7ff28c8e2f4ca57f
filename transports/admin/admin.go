// Package admin serves a gateway's operational endpoints on their own
// listener: liveness, readiness, the route table and Prometheus metrics.
package admin

import (
	"encoding/json"
	"net/http"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rosettagw/rosetta/translate"
)

// Options are what the admin endpoints report.
type Options struct {
	// Metrics are served at /metrics.
	Metrics *Metrics
	// Ready reports whether the gateway takes calls: /readyz answers 200
	// while it returns true, 503 otherwise.
	Ready func() bool
	// Routes is served at /routes as JSON.
	Routes any
}

// maxScrapes bounds the concurrent /metrics requests; more get 503.
const maxScrapes = 4

// New returns the admin handler: GET /healthz (200 while the process
// runs), GET /readyz, GET /routes and GET /metrics (the Prometheus text
// format). Any other path is 404 and any other method 405, as JSON
// google.rpc.Status.
func New(o Options) http.Handler {
	routes, err := json.Marshal(o.Routes)
	if err != nil {
		routes = nil
	}
	metrics := promhttp.HandlerFor(o.Metrics.registry, promhttp.HandlerOpts{MaxRequestsInFlight: maxScrapes})
	endpoints := map[string]http.Handler{
		"/healthz": http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			text(w, http.StatusOK, "ok\n")
		}),
		"/readyz": http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			if o.Ready() {
				text(w, http.StatusOK, "ready\n")
				return
			}
			text(w, http.StatusServiceUnavailable, "not ready\n")
		}),
		"/routes": http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			if routes == nil {
				fail(w, codes.Internal, "the route table does not encode as JSON")
				return
			}
			w.Header().Set("Content-Type", "application/json")
			w.Write(routes)
		}),
		"/metrics": metrics,
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h, ok := endpoints[r.URL.Path]
		switch {
		case !ok:
			fail(w, codes.NotFound, "no admin endpoint at "+r.URL.Path)
		case r.Method != http.MethodGet && r.Method != http.MethodHead:
			w.Header().Set("Allow", "GET, HEAD")
			fail(w, codes.Unimplemented, "method "+r.Method+" not allowed; use GET")
		default:
			h.ServeHTTP(w, r)
		}
	})
}

func text(w http.ResponseWriter, code int, body string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(code)
	w.Write([]byte(body))
}

// fail answers a JSON google.rpc.Status; a wrong method is 405, not the
// code's 501.
func fail(w http.ResponseWriter, c codes.Code, msg string) {
	httpStatus := translate.HTTPStatus(c)
	if c == codes.Unimplemented {
		httpStatus = http.StatusMethodNotAllowed
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(httpStatus)
	w.Write(translate.StatusJSON(status.New(c, msg).Proto(), nil))
}
