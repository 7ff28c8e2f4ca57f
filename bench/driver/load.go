package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
)

// result is what one load-generator run measured.
type result struct {
	requests int64 // completed requests
	seconds  float64
	p50, p99 time.Duration
	errors   int64 // answers with status ≥ 400 and socket errors (wrk), non-OK calls (ghz)
}

// loadGen runs wrk against the proxies and ghz against the upstream, each
// with the same concurrency.
type loadGen struct {
	wrk, ghz    string // executables
	descriptors string // FileDescriptorSet ghz reads the method from
	dir         string // where request files and scripts go
	concurrency int
}

// wrkResultTag starts the line the Lua done() hook prints.
const wrkResultTag = "wrk-result"

// wrkScript is the Lua script of a scenario: it sets the method and body and
// prints exact numbers (microseconds) on one line when the run is done.
const wrkScript = `wrk.method = %q
%s
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("%s %%d %%d %%d %%d %%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.status + e.connect + e.read + e.write + e.timeout))
end
`

// wrkBody is the part of wrkScript that loads a JSON body from a file.
const wrkBody = `wrk.headers["Content-Type"] = "application/json"
local f = assert(io.open(%q, "rb"))
wrk.body = f:read("*a")
f:close()`

// prepare writes the files the scenario's runs read: the wrk script, the JSON
// body and the binary gRPC request for ghz.
func (g *loadGen) prepare(i int, sc *scenario) error {
	body := ""
	if sc.body != nil {
		bodyFile := filepath.Join(g.dir, fmt.Sprintf("scenario%d.json", i))
		if err := os.WriteFile(bodyFile, sc.body, 0o644); err != nil {
			return err
		}
		body = fmt.Sprintf(wrkBody, bodyFile)
	}
	script := fmt.Sprintf(wrkScript, sc.method, body, wrkResultTag)
	if err := os.WriteFile(g.script(i), []byte(script), 0o644); err != nil {
		return err
	}
	bin, err := proto.Marshal(sc.grpcRequest)
	if err != nil {
		return err
	}
	return os.WriteFile(g.grpcFile(i), bin, 0o644)
}

// script is the wrk script of scenario i.
func (g *loadGen) script(i int) string {
	return filepath.Join(g.dir, fmt.Sprintf("scenario%d.lua", i))
}

// grpcFile is the binary request of scenario i for ghz.
func (g *loadGen) grpcFile(i int) string {
	return filepath.Join(g.dir, fmt.Sprintf("scenario%d.bin", i))
}

// run loads target t with scenario i for d.
func (g *loadGen) run(ctx context.Context, t *target, i int, sc *scenario, upstream string, d time.Duration) (result, error) {
	ctx, cancel := context.WithTimeout(ctx, d+30*time.Second)
	defer cancel()
	if t.proc == nil {
		return g.runGhz(ctx, i, sc, upstream, d)
	}
	return g.runWrk(ctx, i, t.url+sc.path, d)
}

// runWrk runs wrk with one thread and concurrency connections (HTTP/1.1
// keep-alive).
func (g *loadGen) runWrk(ctx context.Context, i int, url string, d time.Duration) (result, error) {
	out, err := exec.CommandContext(ctx, g.wrk, "-t1", "-c"+strconv.Itoa(g.concurrency),
		"-d"+strconv.Itoa(int(d.Seconds()))+"s", "--timeout", "5s", "-s", g.script(i), url).CombinedOutput()
	if err != nil {
		return result{}, fmt.Errorf("wrk: %w: %s", err, out)
	}
	for line := range strings.Lines(string(out)) {
		f := strings.Fields(line)
		if len(f) != 6 || f[0] != wrkResultTag {
			continue
		}
		var n [5]int64
		for k := range n {
			if n[k], err = strconv.ParseInt(f[k+1], 10, 64); err != nil {
				return result{}, fmt.Errorf("wrk: %q: %w", line, err)
			}
		}
		return result{
			requests: n[0], seconds: float64(n[1]) / 1e6,
			p50: time.Duration(n[2]) * time.Microsecond, p99: time.Duration(n[3]) * time.Microsecond,
			errors: n[4],
		}, nil
	}
	return result{}, fmt.Errorf("wrk printed no %s line: %s", wrkResultTag, out)
}

// ghzReport is the part of ghz's JSON report the driver reads.
type ghzReport struct {
	Count        int64            `json:"count"`
	Total        time.Duration    `json:"total"`
	StatusCodes  map[string]int64 `json:"statusCodeDistribution"`
	LatencyDistr []struct {
		Percentage int           `json:"percentage"`
		Latency    time.Duration `json:"latency"`
	} `json:"latencyDistribution"`
}

// runGhz calls the upstream directly with ghz: concurrency workers sharing
// one HTTP/2 connection, as a gRPC client does, on one CPU like wrk's thread.
// Calls still in flight when the duration ends are not counted, as with wrk.
func (g *loadGen) runGhz(ctx context.Context, i int, sc *scenario, upstream string, d time.Duration) (result, error) {
	cmd := exec.CommandContext(ctx, g.ghz, "--insecure", "--protoset", g.descriptors,
		"--call", "example.library.v1.LibraryService/"+sc.grpcMethod, "--binary-file", g.grpcFile(i),
		"-c", strconv.Itoa(g.concurrency), "--connections", "1", "--cpus", "1",
		"-z", d.String(), "--duration-stop", "ignore", "-O", "json", upstream)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return result{}, fmt.Errorf("ghz: %w: %s", err, stderr.Bytes())
	}
	var rep ghzReport
	if err := json.Unmarshal(out, &rep); err != nil {
		return result{}, fmt.Errorf("ghz report: %w", err)
	}
	r := result{requests: rep.Count, seconds: rep.Total.Seconds(), errors: rep.Count - rep.StatusCodes["OK"]}
	for _, l := range rep.LatencyDistr {
		switch l.Percentage {
		case 50:
			r.p50 = l.Latency
		case 99:
			r.p99 = l.Latency
		}
	}
	return r, nil
}
