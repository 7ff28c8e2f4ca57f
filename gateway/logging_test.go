package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"testing"
)

// TestRedisLog: go-redis's own lines become warnings of the process's JSON
// log, not plain text beside it.
func TestRedisLog(t *testing.T) {
	var buf bytes.Buffer
	redisLog{slog.New(slog.NewJSONHandler(&buf, nil))}.Printf(context.Background(), "connection pool: failed to dial after %d attempts: %s", 5, "connection refused")
	var line map[string]any
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
		t.Fatalf("not one JSON line: %q", buf.String())
	}
	if line["level"] != "WARN" || line["msg"] != "redis client" || line["detail"] != "connection pool: failed to dial after 5 attempts: connection refused" {
		t.Errorf("line %v", line)
	}
}
