package test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestRESTClientStreams serves the client-streaming ImportBooks and the
// bidirectional Chat over REST, as grpc-gateway does: the request body is
// a stream of JSON messages (concatenated or newline-delimited), a client
// stream's answer is its one response, a bidirectional stream's the NDJSON
// stream; each message is bounded and validated on its own.
func TestRESTClientStreams(t *testing.T) {
	t.Parallel()
	lib := startLibrary(t)
	gw := startRosetta(t, libraryConfig(descriptorSetSchema(), lib, "    auto_mapping: true\n", "http: {max_body_bytes: 512}\n"))
	const svc = "/example.library.v1.LibraryService/"
	post := func(method, body string) *response {
		return do(t, gw.base, request{method: "POST", path: svc + method, body: body, chunked: true})
	}

	t.Run("client stream", func(t *testing.T) {
		r := post("ImportBooks", `{"parent":"shelves/1","book":{"title":"A"}}`+"\n"+`{"parent":"shelves/1","book":{"title":"B"}}`)
		var got struct{ Names []string }
		if err := json.Unmarshal(r.body, &got); r.status != http.StatusOK || err != nil || len(got.Names) != 2 {
			t.Errorf("%d %s, want the two books' names", r.status, r.body)
		}
		if r := post("ImportBooks", ""); r.status != http.StatusOK || string(r.body) != "{}" {
			t.Errorf("an empty stream: %d %s, want 200 {}", r.status, r.body)
		}
		// Every message passes the method's validation.
		r = post("ImportBooks", `{"parent":"shelves/1","book":{"title":"A"}}{"parent":"shelves/1","book":{"title":"B","isbn":"12-34"}}`)
		wantStatus(t, r, http.StatusBadRequest, codeInvalidArgument, "book.isbn")
	})

	t.Run("bidirectional stream", func(t *testing.T) {
		r := post("Chat", `{"message":"a"}{"message":"b"}`+"\n"+`{"message":"c"}`)
		lines := strings.Split(strings.TrimSpace(string(r.body)), "\n")
		if r.status != http.StatusOK || len(lines) != 3 || !strings.Contains(lines[2], `"message":"c"`) {
			t.Errorf("%d %s, want three results", r.status, r.body)
		}
		wantContentType(t, r, "application/x-ndjson")
	})

	t.Run("bad messages", func(t *testing.T) {
		for _, c := range []struct {
			body string
			code float64
		}{
			{`{"message":"a"} not-json`, codeInvalidArgument},
			{`{"message":"` + strings.Repeat("x", 600) + `"}`, codeResourceExhausted},
			{`{"mesage":"a"}`, codeInvalidArgument},
		} {
			// A message the upstream answered before the bad one was read
			// may have started the answer (200): the error is then its
			// last line.
			r := post("Chat", c.body)
			lines := strings.Split(strings.TrimSpace(string(r.body)), "\n")
			var line struct{ Error struct{ Code float64 } }
			err := json.Unmarshal([]byte(lines[len(lines)-1]), &line)
			started := r.status == http.StatusOK && len(lines) > 1
			if err != nil || line.Error.Code != c.code || !(started || r.status >= 400 && r.status < 500) {
				t.Errorf("%.40s: %d %s, want a 4xx, or an answer begun, ending with the {\"error\"} line of code %v", c.body, r.status, r.body, c.code)
			}
		}
	})

	t.Run("full duplex over HTTP/2", func(t *testing.T) {
		var protocols http.Protocols
		protocols.SetUnencryptedHTTP2(true)
		h2c := &http.Client{Transport: &http.Transport{Protocols: &protocols}}
		body, send := io.Pipe()
		ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "POST", gw.base+svc+"Chat", body)
		req.Header.Set("Content-Type", "application/json")
		type answer struct {
			resp *http.Response
			err  error
		}
		answers := make(chan answer, 1)
		go func() {
			resp, err := h2c.Do(req)
			answers <- answer{resp, err}
		}()
		// Each echo arrives while the request is still open: the
		// answer to the first message is read before the second is sent.
		io.WriteString(send, `{"message":"one"}`+"\n")
		a := <-answers
		if a.err != nil {
			t.Fatal(a.err)
		}
		defer a.resp.Body.Close()
		if a.resp.ProtoMajor != 2 {
			t.Fatalf("HTTP/%d, want HTTP/2", a.resp.ProtoMajor)
		}
		lines := bufio.NewScanner(a.resp.Body)
		for _, msg := range []string{"one", "two"} {
			if !lines.Scan() || !strings.Contains(lines.Text(), `"message":"`+msg+`"`) {
				t.Fatalf("echo of %s: %q %v", msg, lines.Text(), lines.Err())
			}
			if msg == "one" {
				io.WriteString(send, `{"message":"two"}`+"\n")
			}
		}
		send.Close()
		if lines.Scan() {
			t.Errorf("a line after the stream ended: %s", lines.Text())
		}
	})
}
