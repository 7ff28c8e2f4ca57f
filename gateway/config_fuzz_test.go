package gateway

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzParseConfig decodes any YAML as the configuration file: an error or
// a configuration, never a panic; the example configurations seed it.
func FuzzParseConfig(f *testing.F) {
	files, _ := filepath.Glob("../examples/*/*.yaml")
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("policies: {p: {jwt: {issuer: x}, cors: {}}}\n"))
	f.Add([]byte("http: {max_body_bytes: 4MiB, stream_idle_timeout: 5m}\nshutdown_timeout: -1s\n"))
	f.Add([]byte("upstreams: {a: {grpc: {targets: [x]}}}\nservices: [{name: a, upstream: a}]\nroutes: [{get: /x, mqtt: t}]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		ParseConfig(data)
	})
}
