package gateway

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

func TestWithoutAccess(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(withoutAccess{slog.NewTextHandler(&buf, nil)}).With("component", "gw")
	log.Info("access", "path", "/v1/x")
	log.Info("serving", "http", "127.0.0.1:1")
	out := buf.String()
	if strings.Contains(out, "/v1/x") || !strings.Contains(out, "serving") || !strings.Contains(out, "component=gw") {
		t.Fatalf("log = %q, want the serving line (with its attrs) and no access line", out)
	}
}

func TestParseConfigStrict(t *testing.T) {
	_, err := ParseConfig([]byte("listen:\n  http: 127.0.0.1:1\n  htp: x\n"))
	if err == nil || !strings.Contains(err.Error(), "line 3") || !strings.Contains(err.Error(), "htp") {
		t.Fatalf("err = %v, want an error naming line 3 and the key", err)
	}
	cfg, err := ParseConfig([]byte("access_log: false\nhttp: {max_body_bytes: 64KiB}\nshutdown_timeout: 2s\n"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.AccessLog == nil || *cfg.AccessLog || cfg.HTTP.MaxBodyBytes != 64<<10 || cfg.ShutdownTimeout != Duration(2e9) {
		t.Fatalf("decoded %+v", cfg)
	}
}

func TestTargetsPlainOrWeighted(t *testing.T) {
	cfg, err := ParseConfig([]byte("upstreams:\n  u:\n    grpc: {targets: [a:1, {addr: b:2, weight: 3}]}\n    balancer: weighted\n"))
	if err != nil {
		t.Fatal(err)
	}
	got := cfg.Upstreams["u"].GRPC.Targets
	if len(got) != 2 || got[0] != (Target{Addr: "a:1"}) || got[1] != (Target{Addr: "b:2", Weight: 3}) {
		t.Errorf("targets = %+v", got)
	}
	for _, bad := range []string{
		"upstreams:\n  u:\n    grpc: {targets: [{addr: b:2, wieght: 3}]}\n",
		"upstreams:\n  u:\n    grpc: {targets: [{weight: 3}]}\n",
		"upstreams:\n  u:\n    grpc: {targets: [[a]]}\n",
		"upstreams:\n  u:\n    health_check: {intreval: 1s}\n",
	} {
		if _, err := ParseConfig([]byte(bad)); err == nil || !strings.Contains(err.Error(), "line") {
			t.Errorf("%q: err = %v, want an error naming its line", bad, err)
		}
	}
}
