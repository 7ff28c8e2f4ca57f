package gateway

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestNewLogger(t *testing.T) {
	for _, tc := range []struct {
		yaml       string
		access     bool
		want, lack string
	}{
		{"", true, `"msg":"serving"`, "level=INFO"},
		{"log: {format: text}", true, "msg=serving", `"msg"`},
		{"access_log: false", false, `"msg":"serving"`, ""},
		{"log: {level: warn}", false, "", "serving"},
	} {
		cfg, err := ParseConfig([]byte(tc.yaml))
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		log, access := NewLogger(&buf, cfg)
		access.Close()
		log.Info("serving", "http", "127.0.0.1:1")
		out := buf.String()
		if (access != nil) != tc.access || (tc.want != "" && !strings.Contains(out, tc.want)) || (tc.lack != "" && strings.Contains(out, tc.lack)) {
			t.Errorf("%q: access log %v, log %q; want access %v, %q and not %q", tc.yaml, access != nil, out, tc.access, tc.want, tc.lack)
		}
	}
	for _, bad := range []string{"log: {level: loud}", "log: {format: xml}", "tracing: {otlp: {endpoint: ''}}", "tracing: {otlp: {endpoint: x:1, protocol: udp}}", "tracing: {otlp: {endpoint: x:1}, sampling_ratio: 2}"} {
		cfg, err := ParseConfig([]byte(bad))
		if err != nil {
			t.Fatal(err)
		}
		section, _, _ := strings.Cut(bad, ":")
		if _, err := Build(context.Background(), cfg, Options{}); err == nil || !strings.Contains(err.Error(), section) {
			t.Errorf("%q: %v, want an error about %s", bad, err, section)
		}
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
