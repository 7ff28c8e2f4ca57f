package test

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// singleRoute exposes the slowest of those steps alone, the baseline.
const singleRoute = `routes:
  - post: /api/order/create
    call: example.order.v1.InventoryService/Reserve
    upstream: shop
    body: "*"
`

// parallelRoute is a composed route of three independent gRPC steps.
const parallelRoute = `routes:
  - post: /api/order/create
    aggregate:
      input: example.order.v1.CreateOrderRequest
      steps:
        - {name: product, call: example.order.v1.ProductService/GetProduct, upstream: shop, request: {id: input.product_id}}
        - {name: related, call: example.order.v1.ProductService/ListRelated, upstream: shop, request: {product_id: input.product_id}}
        - {name: reserve, call: example.order.v1.InventoryService/Reserve, upstream: shop, request: {product_id: input.product_id, quantity: input.quantity}}
`

// BenchmarkAggregateParallel measures a 3-step parallel aggregate through
// the rosetta binary: the latency it adds over its steps (the client's
// latency less the span from the first step's start to the last step's end,
// as the upstream recorded them) and the gateway process's CPU time per
// composed call. The upstream holds the three methods 1, 3 and 5 ms, or not
// at all. The "single" cases call only the slowest method, through a plain
// route, for comparison.
//
//	go test ./test -run '^$' -bench AggregateParallel -benchtime 2000x
func BenchmarkAggregateParallel(b *testing.B) {
	for _, bc := range []struct {
		name  string
		route string
		steps int
	}{{"aggregate", parallelRoute, 3}, {"single", singleRoute, 1}} {
		for _, slowest := range []time.Duration{0, 5 * time.Millisecond} {
			b.Run(bc.name+"/slowest="+slowest.String(), func(b *testing.B) {
				benchRoute(b, bc.route, bc.steps, slowest)
			})
		}
	}
}

// benchRoute measures the route POST /api/order/create, whose call makes
// steps upstream calls.
func benchRoute(b *testing.B, route string, steps int, slowest time.Duration) {
	delay := map[string]time.Duration{"GetProduct": slowest / 5, "ListRelated": slowest * 3 / 5, "Reserve": slowest}
	shop, cfg := startShop(b, delay)
	cfg = cfg[:strings.Index(cfg, "routes:")] + route
	r := startRosetta(b, cfg)
	body := `{"productId":"kb-1","quantity":1}`
	if resp := placeOrder(b, r, body); resp.status != http.StatusOK {
		b.Fatalf("status %d\n%s", resp.status, resp.body)
	}
	var overhead, inSteps time.Duration
	cpu0 := processCPU(b, r.cmd.Process.Pid)
	b.ResetTimer()
	for range b.N {
		req, _ := http.NewRequest(http.MethodPost, r.base+"/api/order/create", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		start := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		latency := time.Since(start)
		if err != nil || resp.StatusCode != http.StatusOK {
			b.Fatalf("status %d, %v", resp.StatusCode, err)
		}
		calls := shop.LastCalls(steps)
		first, last := calls[0].Start, calls[0].End
		for _, c := range calls[1:] {
			first, last = minTime(first, c.Start), maxTime(last, c.End)
		}
		inSteps += last.Sub(first)
		overhead += latency - last.Sub(first)
	}
	b.StopTimer()
	cpu := processCPU(b, r.cmd.Process.Pid) - cpu0
	b.ReportMetric(float64(overhead/time.Duration(b.N))/1e3, "µs-overhead/op")
	b.ReportMetric(float64(inSteps/time.Duration(b.N))/1e3, "µs-in-steps/op")
	b.ReportMetric(float64(cpu)/1e3/float64(b.N), "gateway-cpu-µs/op")
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// processCPU returns the user and system CPU time a process has used, from
// /proc (Linux).
func processCPU(b *testing.B, pid int) time.Duration {
	b.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatalf("reading the gateway's CPU time: %v", err)
	}
	// Fields after the parenthesised command name; utime and stime are
	// the 14th and 15th fields, in clock ticks of 1/100 s.
	fields := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+2:]))
	var ticks int64
	for _, f := range fields[11:13] {
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			b.Fatalf("parsing /proc/%d/stat: %v", pid, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * 10 * time.Millisecond
}
