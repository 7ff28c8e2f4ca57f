// Command conformance is the server under test that the Connect conformance
// runner (connectrpc.com/conformance's connectconformance, server mode)
// starts: it starts the suite's reference server as a plain gRPC h2c
// upstream, writes a Rosetta configuration exposing
// connectrpc.conformance.v1.ConformanceService from the suite's own .proto
// sources, starts Rosetta in front of it and reports Rosetta's address.
//
// The runner writes one length-prefixed ServerCompatRequest to stdin and
// reads one length-prefixed ServerCompatResponse from stdout; both are
// encoded here with protowire, since the suite's generated types are
// internal to its module. SIGTERM stops both processes.
//
// See scripts/conformance.sh, which installs the runner and the reference
// server at the pinned version and runs the suite.
package main

import (
	"bufio"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "conformance:", err)
		os.Exit(1)
	}
}

func run() error {
	rosettaBin := flag.String("rosetta", "rosetta", "the rosetta binary")
	reference := flag.String("reference", "referenceserver", "the conformance suite's reference server")
	protos := flag.String("protos", "", "the directory holding connectrpc/conformance/v1/*.proto")
	flag.Parse()
	if *protos == "" {
		return errors.New("-protos is required")
	}
	stdin := bufio.NewReader(os.Stdin)
	req, err := readDelimited(stdin)
	if err != nil {
		return fmt.Errorf("reading the ServerCompatRequest: %w", err)
	}
	compat, err := parseCompatRequest(req)
	if err != nil {
		return err
	}
	if compat.tls {
		return errors.New("TLS is not declared in the runner's configuration")
	}

	// The reference server: gRPC over h2c (protocol 2, HTTP/2).
	ref := exec.Command(*reference)
	ref.Stderr = os.Stderr
	refIn, err := ref.StdinPipe()
	if err != nil {
		return err
	}
	refOut, err := ref.StdoutPipe()
	if err != nil {
		return err
	}
	if err := ref.Start(); err != nil {
		return fmt.Errorf("starting the reference server: %w", err)
	}
	defer stop(ref)
	if _, err := refIn.Write(appendDelimited(nil, appendVarintField(appendVarintField(nil, 1, 2), 2, 2))); err != nil {
		return err
	}
	resp, err := readDelimited(refOut)
	if err != nil {
		return fmt.Errorf("reading the reference server's address: %w", err)
	}
	refHost, refPort, err := parseCompatResponse(resp)
	if err != nil {
		return err
	}

	dir, err := os.MkdirTemp("", "rosetta-conformance-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	addr, err := freeAddr()
	if err != nil {
		return err
	}
	maxBody := ""
	if compat.receiveLimit > 0 {
		maxBody = fmt.Sprintf("http: {max_body_bytes: %d}\n", compat.receiveLimit)
	}
	cfg := fmt.Sprintf(`listen: {http: %q}
access_log: false
shutdown_timeout: 1s
schemas:
  - proto: {import_paths: [%q], files: [connectrpc/conformance/v1/service.proto]}
upstreams:
  reference: {grpc: {targets: [%q]}}
services:
  - name: connectrpc.conformance.v1.ConformanceService
    upstream: reference
%s`, addr, *protos, net.JoinHostPort(refHost, strconv.Itoa(refPort)), maxBody)
	path := filepath.Join(dir, "rosetta.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		return err
	}
	gw := exec.Command(*rosettaBin, "serve", "-config", path)
	gw.Stdout, gw.Stderr = os.Stderr, os.Stderr
	if err := gw.Start(); err != nil {
		return fmt.Errorf("starting rosetta: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- gw.Wait() }()
	defer func() {
		gw.Process.Signal(syscall.SIGTERM)
		<-exited
	}()
	if err := waitServing(addr, exited); err != nil {
		return err
	}

	host, port, _ := net.SplitHostPort(addr)
	p, _ := strconv.Atoi(port)
	out := protowire.AppendTag(nil, 1, protowire.BytesType)
	out = protowire.AppendString(out, host)
	out = appendVarintField(out, 2, uint64(p))
	if _, err := os.Stdout.Write(appendDelimited(nil, out)); err != nil {
		return err
	}

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, os.Interrupt)
	select {
	case <-sig:
		return nil
	case err := <-exited:
		exited <- err // for the deferred stop
		return fmt.Errorf("rosetta exited: %v", err)
	}
}

// compatRequest holds the fields of a ServerCompatRequest the wrapper
// reads.
type compatRequest struct {
	tls          bool
	receiveLimit uint64
}

func parseCompatRequest(b []byte) (compatRequest, error) {
	var r compatRequest
	err := fields(b, func(num protowire.Number, v uint64, _ []byte) {
		switch num {
		case 4:
			r.tls = v != 0
		case 6:
			r.receiveLimit = v
		}
	})
	return r, err
}

func parseCompatResponse(b []byte) (host string, port int, err error) {
	err = fields(b, func(num protowire.Number, v uint64, s []byte) {
		switch num {
		case 1:
			host = string(s)
		case 2:
			port = int(v)
		}
	})
	return host, port, err
}

// fields calls f with each varint or length-delimited field of b.
func fields(b []byte, f func(num protowire.Number, v uint64, s []byte)) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		switch typ {
		case protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return protowire.ParseError(n)
			}
			f(num, v, nil)
			b = b[n:]
		case protowire.BytesType:
			s, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return protowire.ParseError(n)
			}
			f(num, 0, s)
			b = b[n:]
		default:
			n := protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return protowire.ParseError(n)
			}
			b = b[n:]
		}
	}
	return nil
}

func appendVarintField(b []byte, num protowire.Number, v uint64) []byte {
	return protowire.AppendVarint(protowire.AppendTag(b, num, protowire.VarintType), v)
}

// appendDelimited frames msg with the runner's fixed 32-bit big-endian
// length.
func appendDelimited(b, msg []byte) []byte {
	return append(binary.BigEndian.AppendUint32(b, uint32(len(msg))), msg...)
}

func readDelimited(r io.Reader) ([]byte, error) {
	var n [4]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return nil, err
	}
	msg := make([]byte, binary.BigEndian.Uint32(n[:]))
	_, err := io.ReadFull(r, msg)
	return msg, err
}

// freeAddr returns a loopback address with a port free a moment ago.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// waitServing polls addr until Rosetta answers HTTP, or fails when it
// exits or does not answer within a minute.
func waitServing(addr string, exited chan error) error {
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		resp, err := client.Get("http://" + addr + "/.well-known/conformance-readiness")
		if err == nil {
			resp.Body.Close()
			return nil
		}
		select {
		case err := <-exited:
			exited <- err // for the deferred stop
			return fmt.Errorf("rosetta exited before serving: %v", err)
		case <-time.After(20 * time.Millisecond):
		}
	}
	return fmt.Errorf("rosetta did not answer on %s within a minute", addr)
}

// stop ends a child process with SIGTERM and waits for it (Wait has not
// been called on it).
func stop(cmd *exec.Cmd) {
	if cmd.Process != nil {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Process.Wait()
	}
}
