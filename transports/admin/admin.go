// Package admin serves a gateway's operational endpoints on their own
// listener: liveness, readiness, the route table and Prometheus metrics.
package admin

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"

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
	// Routes returns what /routes serves as JSON: the serving
	// generation's methods and routes.
	Routes func() any
	// Reload, when set, is run by POST /admin/reload: it reloads the
	// configuration and returns the outcome to serve as JSON, with the
	// error that refused the new configuration, if any. GET /admin/reload
	// serves Status.
	Reload func(ctx context.Context) (any, error)
	// Status returns the last reload's outcome.
	Status func() any
	// Upstreams, when set, returns what /admin/upstreams serves as JSON:
	// every upstream with its endpoints' state.
	Upstreams func() any
	// Down, when set, lists the upstreams with no usable endpoint: while
	// it lists any, /readyz answers 503 naming them.
	Down func() []string
	// Purge, when set, is run by POST /admin/cache/purge: it removes the
	// cached answers of the methods whose name starts with the prefix
	// query parameter (all when absent) and returns how many, or an error
	// carrying a gRPC status.
	Purge func(ctx context.Context, prefix string) (int, error)
}

// maxScrapes bounds the concurrent /metrics requests; more get 503.
const maxScrapes = 4

// New returns the admin handler: GET /healthz (200 while the process
// runs), GET /readyz, GET /routes, GET /metrics (the Prometheus text
// format), GET /admin/upstreams, POST /admin/reload (GET: the last reload's
// outcome) and POST /admin/cache/purge?prefix=package.Service/Method. Any
// other path is 404 and any other method 405, as JSON google.rpc.Status.
func New(o Options) http.Handler {
	metrics := promhttp.HandlerFor(o.Metrics.registry, promhttp.HandlerOpts{MaxRequestsInFlight: maxScrapes})
	endpoints := map[string]http.Handler{
		"/healthz": http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			text(w, http.StatusOK, "ok\n")
		}),
		"/readyz": http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			if !o.Ready() {
				text(w, http.StatusServiceUnavailable, "not ready\n")
				return
			}
			if o.Down != nil {
				if down := o.Down(); len(down) > 0 {
					text(w, http.StatusServiceUnavailable, "not ready: no usable endpoint in upstreams "+strings.Join(down, ", ")+"\n")
					return
				}
			}
			text(w, http.StatusOK, "ready\n")
		}),
		"/routes": http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			writeJSON(w, http.StatusOK, o.Routes())
		}),
		"/metrics": metrics,
	}
	if o.Upstreams != nil {
		endpoints["/admin/upstreams"] = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			writeJSON(w, http.StatusOK, o.Upstreams())
		})
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h, ok := endpoints[r.URL.Path]
		switch {
		case r.URL.Path == "/admin/reload" && o.Reload != nil:
			reload(w, r, o)
		case r.URL.Path == "/admin/cache/purge" && o.Purge != nil:
			purge(w, r, o)
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

// reload serves /admin/reload: POST reloads, GET reports the last reload.
func reload(w http.ResponseWriter, r *http.Request, o Options) {
	switch r.Method {
	case http.MethodPost:
		out, err := o.Reload(r.Context())
		if err != nil {
			fail(w, codes.FailedPrecondition, "the new configuration was refused; the running one keeps serving: "+err.Error())
			return
		}
		writeJSON(w, http.StatusOK, out)
	case http.MethodGet, http.MethodHead:
		writeJSON(w, http.StatusOK, o.Status())
	default:
		w.Header().Set("Allow", "GET, HEAD, POST")
		fail(w, codes.Unimplemented, "method "+r.Method+" not allowed; use POST to reload")
	}
}

// purge serves POST /admin/cache/purge.
func purge(w http.ResponseWriter, r *http.Request, o Options) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		fail(w, codes.Unimplemented, "method "+r.Method+" not allowed; use POST to purge")
		return
	}
	n, err := o.Purge(r.Context(), r.URL.Query().Get("prefix"))
	if err != nil {
		st := status.Convert(err)
		fail(w, st.Code(), st.Message())
		return
	}
	writeJSON(w, http.StatusOK, map[string]int{"purged": n})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		fail(w, codes.Internal, "the answer does not encode as JSON: "+err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	w.Write(body)
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
