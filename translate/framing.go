package translate

import (
	"bytes"
	"strconv"
)

// NDJSONResult frames one message of a server stream as a line of
// newline-delimited JSON, {"result": message}, the shape grpc-gateway
// clients already read.
func NDJSONResult(msg []byte) []byte {
	out := make([]byte, 0, len(msg)+12)
	out = append(out, `{"result":`...)
	out = append(out, msg...)
	return append(out, "}\n"...)
}

// NDJSONError frames the status that ends a server stream after its first
// message as the last line, {"error": status}, status being a
// google.rpc.Status in JSON (see StatusJSON).
func NDJSONError(status []byte) []byte {
	out := make([]byte, 0, len(status)+11)
	out = append(out, `{"error":`...)
	out = append(out, status...)
	return append(out, "}\n"...)
}

// SSEEvent frames data as one Server-Sent Event with the given event type
// ("" for the default "message") and id (0 for none). A data line break
// continues the data on a new "data:" line, so any payload round-trips.
func SSEEvent(event string, id uint64, data []byte) []byte {
	out := make([]byte, 0, len(data)+32)
	if event != "" {
		out = append(out, "event: "...)
		out = append(out, event...)
		out = append(out, '\n')
	}
	if id != 0 {
		out = append(out, "id: "...)
		out = strconv.AppendUint(out, id, 10)
		out = append(out, '\n')
	}
	data = bytes.ReplaceAll(data, []byte("\r\n"), []byte("\n"))
	for _, line := range bytes.Split(data, []byte("\n")) {
		out = append(out, "data: "...)
		out = append(out, line...)
		out = append(out, '\n')
	}
	return append(out, '\n')
}
