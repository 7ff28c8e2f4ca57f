// Package test holds Rosetta's end-to-end tests: they build the rosetta
// binary and the example library-server once, start them as separate
// processes on loopback ports chosen at random, and talk to them over HTTP
// as a client would.
package test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/rosettagw/rosetta/internal/testwait"
)

// Paths set up by TestMain.
var (
	// repoRoot is the module root (the parent of test/).
	repoRoot string
	// rosettaBin and libraryBin are the binaries built for this run.
	rosettaBin, libraryBin string
	// raceBuild builds them with the race detector (set when the tests
	// themselves run with -race; see race_test.go).
	raceBuild bool
)

// Bounds of every wait in the harness: they end a test that would hang,
// and are far above what the awaited event takes on a loaded machine. The
// builds have none: go test's -timeout bounds them.
const (
	startTimeout   = time.Minute
	stopTimeout    = 10 * time.Second
	requestTimeout = 10 * time.Second
)

// client is the HTTP client of every test; its timeout bounds each call.
var client = &http.Client{Timeout: requestTimeout}

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	root, err := filepath.Abs("..")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: cannot find the module root:", err)
		return 1
	}
	repoRoot = root
	dir, err := os.MkdirTemp("", "rosetta-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	rosettaBin = filepath.Join(dir, "rosetta")
	libraryBin = filepath.Join(dir, "library-server")
	for out, pkg := range map[string]string{rosettaBin: "./cmd/rosetta", libraryBin: "./examples/library/cmd/library-server"} {
		args := []string{"build", "-o", out}
		if raceBuild {
			args = append(args, "-race")
		}
		cmd := exec.Command("go", append(args, pkg)...)
		cmd.Dir = repoRoot
		if b, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "e2e: go build %s: %v\n%s", pkg, err, b)
			return 1
		}
	}
	return m.Run()
}

// syncBuffer is a bytes.Buffer safe for a process to write while a test
// reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// process is a child process started by a test.
type process struct {
	name   string
	cmd    *exec.Cmd
	stdout *syncBuffer
	stderr *syncBuffer
	done   chan struct{} // closed when the process has exited
	// stopping is set once a test has sent SIGTERM.
	stopping bool
}

// exited reports whether the process has ended.
func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM and waits (bounded) for the process to exit; it kills
// the process when it does not. It returns the exit code (-1 when killed).
func (p *process) stop(t testing.TB) int {
	t.Helper()
	if !p.exited() {
		p.stopping = true
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
	}
	select {
	case <-p.done:
	case <-time.After(stopTimeout):
		_ = p.cmd.Process.Kill()
		<-p.done
		t.Errorf("%s did not exit within %v of SIGTERM; killed it\nstderr:\n%s", p.name, stopTimeout, p.stderr)
		return -1
	}
	return p.cmd.ProcessState.ExitCode()
}

// startLibrary starts a library-server on a random loopback port and returns
// its address. The server is stopped when the test ends.
func startLibrary(t testing.TB) string {
	t.Helper()
	_, addr := startLibraryAt(t, "127.0.0.1:0")
	return addr
}

// startNamedLibrary starts a library-server whose answers carry the header
// x-served-by: name (Grpc-Metadata-X-Served-By over REST).
func startNamedLibrary(t testing.TB, name string) string {
	t.Helper()
	_, addr := startLibraryAt(t, "127.0.0.1:0", "-name", name)
	return addr
}

// startLibraryAt starts a library-server listening on listen, with more
// arguments, and returns the process and its address. The server is
// stopped when the test ends.
func startLibraryAt(t testing.TB, listen string, args ...string) (*process, string) {
	t.Helper()
	cmd := exec.Command(libraryBin, append([]string{"-listen", listen}, args...)...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &process{name: "library-server", cmd: cmd, stdout: &syncBuffer{}, stderr: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start library-server: %v", err)
	}
	addrc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			p.stdout.Write([]byte(line + "\n"))
			if addr, ok := strings.CutPrefix(line, "listening on "); ok {
				select {
				case addrc <- strings.TrimSpace(addr):
				default:
				}
			}
		}
		_ = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() { p.stop(t) })
	select {
	case addr := <-addrc:
		return p, addr
	case <-p.done:
		t.Fatalf("library-server exited before listening\nstderr:\n%s", p.stderr)
	case <-time.After(startTimeout):
		t.Fatalf("library-server did not print its address within %v\nstderr:\n%s", startTimeout, p.stderr)
	}
	return nil, ""
}

// freePort returns a loopback address that was free a moment ago and that
// no other caller in this process has been given.
func freePort(t testing.TB) string {
	t.Helper()
	for range portRangeSize {
		port := nextPort.Add(1)%portRangeSize + portRangeLow
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue // another process holds it
		}
		addr := ln.Addr().String()
		ln.Close()
		return addr
	}
	t.Fatal("no free port in the test range")
	return ""
}

// The ports freePort hands out: below the kernel's ephemeral range
// (net.ipv4.ip_local_port_range, 32768–60999 by default), so that no
// outgoing connection can take one as its source port between the probe
// and the process that binds it, and each handed out once per test process
// (starting at an offset of the process id, so that test processes running
// side by side start apart).
const (
	portRangeLow  = 20000
	portRangeSize = 12000
)

var nextPort atomic.Int64

func init() { nextPort.Store(int64(os.Getpid()*97) % portRangeSize) }

// rosetta is a running `rosetta serve`.
type rosetta struct {
	*process
	// base is "http://ADDR".
	base string
	// config is the path of its configuration file.
	config string
	// grpc is the address of its native gRPC listener (listen.grpc), ""
	// when it has none.
	grpc string
}

// grpcConn returns a plaintext gRPC connection to the shared listener,
// closed when the test ends.
func (r *rosetta) grpcConn(t testing.TB) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(strings.TrimPrefix(r.base, "http://"), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// writeConfig writes a configuration into the test's temporary directory
// and returns its path.
func writeConfig(t testing.TB, yaml string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "rosetta.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// startRosetta writes cfg (whose listen section it adds) and runs `rosetta
// serve` with it, waiting until the port answers HTTP. When the test ends it
// sends SIGTERM and asserts a graceful exit with status 0.
func startRosetta(t testing.TB, cfg string) *rosetta {
	t.Helper()
	return startRosettaListen(t, "", cfg)
}

// startRosettaGRPC is startRosettaListen with a native gRPC listener
// (listen.grpc) as well, at rosetta.grpc.
func startRosettaGRPC(t testing.TB, listen, cfg string) *rosetta {
	t.Helper()
	addr := freePort(t)
	if listen != "" {
		listen += ", "
	}
	r := startRosettaListen(t, listen+fmt.Sprintf("grpc: %q", addr), cfg)
	r.grpc = addr
	return r
}

// startRosettaListen is startRosetta with more listeners: listen is added to
// the listen section, as in "mqtt: 127.0.0.1:1883".
func startRosettaListen(t testing.TB, listen, cfg string) *rosetta {
	t.Helper()
	addr := freePort(t)
	if listen != "" {
		listen = ", " + listen
	}
	path := writeConfig(t, fmt.Sprintf("listen: {http: %q%s}\n%s", addr, listen, cfg))
	cmd := exec.Command(rosettaBin, "serve", "-config", path)
	p := &process{name: "rosetta", cmd: cmd, stdout: &syncBuffer{}, stderr: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.stdout, p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start rosetta: %v", err)
	}
	go func() {
		_ = cmd.Wait()
		close(p.done)
	}()
	r := &rosetta{process: p, base: "http://" + addr, config: path}
	t.Cleanup(func() {
		if p.exited() {
			if !p.stopping {
				t.Errorf("rosetta exited by itself with status %d while the test ran\nstderr:\n%s", p.cmd.ProcessState.ExitCode(), p.stderr)
			}
			return // a test that stopped rosetta itself asserted its exit
		}
		if code := p.stop(t); code != 0 {
			t.Errorf("rosetta exited with status %d after SIGTERM, want 0 (graceful shutdown)\nstderr:\n%s", code, p.stderr)
		}
	})
	waitReady(t, r)
	return r
}

// waitReady polls the gateway until it answers any HTTP request.
func waitReady(t testing.TB, r *rosetta) {
	t.Helper()
	probe := &http.Client{Timeout: time.Second}
	deadline := time.NewTimer(startTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		resp, err := probe.Get(r.base + "/.well-known/rosetta-e2e-readiness")
		if err == nil {
			resp.Body.Close()
			return
		}
		select {
		case <-r.done:
			t.Fatalf("rosetta exited (status %d) before serving\nstderr:\n%s", r.cmd.ProcessState.ExitCode(), r.stderr)
		case <-deadline.C:
			t.Fatalf("rosetta did not answer on %s within %v: %v\nstderr:\n%s", r.base, startTimeout, err, r.stderr)
		case <-tick.C:
		}
	}
}

// runRosetta runs a rosetta sub-command that ends by itself (check, routes)
// and returns its exit code, stdout and stderr.
func runRosetta(t testing.TB, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, rosettaBin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("rosetta %v did not finish within %v", args, startTimeout)
	}
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		t.Fatalf("rosetta %v: %v", args, err)
	}
	return cmd.ProcessState.ExitCode(), stdout.String(), stderr.String()
}

// Schema sources, as the schemas section of a configuration.
func descriptorSetSchema() string {
	return fmt.Sprintf("  - descriptor_set: %q\n", filepath.Join(repoRoot, "proto", "library.binpb"))
}

func protoSchema() string {
	return fmt.Sprintf("  - proto: {import_paths: [%q], files: [example/library/v1/library.proto]}\n", filepath.Join(repoRoot, "proto"))
}

func reflectionSchema() string {
	return "  - reflection: {upstream: library}\n"
}

// schemaSources are the three ways of loading the library schema.
var schemaSources = []struct {
	name   string
	schema func() string
}{
	{"descriptor_set", descriptorSetSchema},
	{"proto", protoSchema},
	{"reflection", reflectionSchema},
}

// libraryConfig is a configuration serving the LibraryService of the
// library-server at target, with schemas from schema. service adds lines to
// the service entry (indented by four spaces), extra adds top-level
// sections.
func libraryConfig(schema, target, service, extra string) string {
	return fmt.Sprintf(`schemas:
%supstreams:
  library: {grpc: {targets: [%q]}, timeout: 5s}
services:
  - name: example.library.v1.LibraryService
    upstream: library
%s%s`, schema, target, service, extra)
}

// response is an HTTP answer read in full.
type response struct {
	status int
	header http.Header
	body   []byte
}

// request is one HTTP request of a test.
type request struct {
	method, path, body string
	// header holds extra request headers. Unless it sets Content-Type, a
	// request with a body is sent as application/json.
	header map[string]string
	// chunked sends the body without a Content-Length.
	chunked bool
}

func (r request) String() string { return r.method + " " + r.path }

// do sends req to base and reads the answer.
func do(t testing.TB, base string, req request) *response {
	t.Helper()
	var body io.Reader
	if req.body != "" {
		body = strings.NewReader(req.body)
		if req.chunked {
			body = io.MultiReader(body) // hides the length: sent chunked
		}
	}
	hr, err := http.NewRequest(req.method, base+req.path, body)
	if err != nil {
		t.Fatal(err)
	}
	if req.body != "" {
		hr.Header.Set("Content-Type", "application/json")
	}
	for k, v := range req.header {
		hr.Header.Set(k, v)
	}
	resp, err := client.Do(hr)
	if err != nil {
		t.Fatalf("%s: %v", req, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s: reading the body: %v", req, err)
	}
	return &response{status: resp.StatusCode, header: resp.Header, body: b}
}

// get is do for a GET without headers.
func get(t testing.TB, base, path string) *response {
	t.Helper()
	return do(t, base, request{method: http.MethodGet, path: path})
}

// decodeJSON decodes a JSON document into generic values.
func decodeJSON(t testing.TB, what string, b []byte) any {
	t.Helper()
	var v any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("%s: not JSON: %v\n%s", what, err, b)
	}
	if dec.More() {
		t.Fatalf("%s: trailing data after the JSON value\n%s", what, b)
	}
	return v
}

// pretty renders a decoded JSON value for failure messages.
func pretty(v any) string {
	b, _ := json.MarshalIndent(v, "", "  ")
	return string(b)
}

// wantJSON asserts a 200 application/json answer whose body is structurally
// equal to want, after dropping the top-level keys in ignore.
func wantJSON(t testing.TB, r *response, want string, ignore ...string) map[string]any {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("status %d, want 200\n%s", r.status, r.body)
	}
	wantContentType(t, r, "application/json")
	obj, _ := decodeJSON(t, "response", r.body).(map[string]any)
	got := decodeJSON(t, "response", r.body)
	exp := decodeJSON(t, "expected", []byte(want))
	for _, v := range []any{got, exp} {
		if m, ok := v.(map[string]any); ok {
			for _, k := range ignore {
				delete(m, k)
			}
		}
	}
	if !reflect.DeepEqual(got, exp) {
		t.Errorf("JSON body differs (ignoring %q)\n got: %s\nwant: %s", ignore, pretty(got), pretty(exp))
	}
	return obj
}

// wantContentType asserts the media type of an answer.
func wantContentType(t testing.TB, r *response, want string) {
	t.Helper()
	if got := r.header.Get("Content-Type"); got != want {
		t.Errorf("Content-Type %q, want %q", got, want)
	}
}

// rpcStatus is a decoded JSON google.rpc.Status.
type rpcStatus struct {
	Code    int               `json:"code"`
	Message string            `json:"message"`
	Details []json.RawMessage `json:"details"`
}

// wantStatus asserts an error answer: its HTTP status and a JSON
// google.rpc.Status body with the gRPC code (any code when code < 0), a
// message and a details list.
// With field set, the details must hold a google.rpc.BadRequest whose field
// violation names field; field may list alternatives separated by "|", and
// "x*" accepts x and any field path under x. It returns the decoded status.
func wantStatus(t testing.TB, r *response, httpStatus, code int, field string) *rpcStatus {
	t.Helper()
	if r.status != httpStatus {
		t.Errorf("status %d, want %d\n%s", r.status, httpStatus, r.body)
	}
	wantContentType(t, r, "application/json")
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(r.body, &raw); err != nil {
		t.Fatalf("error body is not a JSON object: %v\n%s", err, r.body)
	}
	for _, k := range []string{"code", "message", "details"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("error body lacks %q: %s", k, r.body)
		}
	}
	var st rpcStatus
	if err := json.Unmarshal(r.body, &st); err != nil {
		t.Fatalf("error body is not a google.rpc.Status: %v\n%s", err, r.body)
	}
	if code >= 0 && st.Code != code {
		t.Errorf("google.rpc.Status code %d, want %d\n%s", st.Code, code, r.body)
	}
	if st.Message == "" {
		t.Errorf("google.rpc.Status has an empty message\n%s", r.body)
	}
	if st.Details == nil {
		t.Errorf("google.rpc.Status details is not a list\n%s", r.body)
	}
	if field != "" && !hasFieldViolation(st, field) {
		t.Errorf("no google.rpc.BadRequest detail naming %q\n%s", field, r.body)
	}
	return &st
}

// hasFieldViolation reports whether st has a google.rpc.BadRequest detail
// with a field violation for field.
func hasFieldViolation(st rpcStatus, field string) bool {
	for _, d := range st.Details {
		var br struct {
			Type            string `json:"@type"`
			FieldViolations []struct {
				Field       string `json:"field"`
				Description string `json:"description"`
			} `json:"fieldViolations"`
		}
		if json.Unmarshal(d, &br) != nil || br.Type != "type.googleapis.com/google.rpc.BadRequest" {
			continue
		}
		for _, v := range br.FieldViolations {
			for _, alt := range strings.Split(field, "|") {
				base, prefix := strings.CutSuffix(alt, "*")
				if v.Description != "" && (v.Field == base || prefix && strings.HasPrefix(v.Field, base+".")) {
					return true
				}
			}
		}
	}
	return false
}

// gRPC codes used in assertions.
const (
	codeInvalidArgument   = 3
	codeDeadlineExceeded  = 4
	codeNotFound          = 5
	codeResourceExhausted = 8
	codeUnimplemented     = 12
	codeUnavailable       = 14
)

// waitFor polls cond until it holds, failing the test after a minute: the
// shared loop of the unit tests, under the name these tests use.
var waitFor = testwait.For
