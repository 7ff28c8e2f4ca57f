package test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestCheck runs `rosetta check` on good and bad configurations.
func TestCheck(t *testing.T) {
	t.Parallel()
	lib := startLibrary(t)

	t.Run("good", func(t *testing.T) {
		for _, src := range schemaSources {
			t.Run(src.name, func(t *testing.T) {
				cfg := writeConfig(t, "listen: {http: 127.0.0.1:0}\n"+libraryConfig(src.schema(), lib, "", ""))
				code, stdout, stderr := runRosetta(t, "check", "-config", cfg)
				if code != 0 {
					t.Fatalf("exit %d, want 0\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
				}
				if !regexp.MustCompile(`OK \(\d+ routes\)`).MatchString(stdout) {
					t.Errorf("stdout does not report OK with a route count:\n%s", stdout)
				}
				if !strings.Contains(stdout, "ImportBooks") {
					t.Errorf("stdout does not note the client-streaming method ImportBooks, not served over REST:\n%s", stdout)
				}
				if !strings.Contains(stdout, "LibraryService.Ping: no HTTP rule, so not served over REST (auto_mapping: true") {
					t.Errorf("stdout does not note Ping, without an HTTP rule, off REST by default:\n%s", stdout)
				}
			})
		}
	})

	t.Run("unknown key", func(t *testing.T) {
		// Line 9 holds the misspelt key.
		yaml := "listen: {http: 127.0.0.1:0}\n" + libraryConfig(descriptorSetSchema(), lib, "    upstreem: library\n", "")
		lines := strings.Split(yaml, "\n")
		line := 0
		for i, l := range lines {
			if strings.Contains(l, "upstreem") {
				line = i + 1
			}
		}
		cfg := writeConfig(t, yaml)
		code, stdout, stderr := runRosetta(t, "check", "-config", cfg)
		if code != 1 {
			t.Fatalf("exit %d, want 1\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
		}
		if want := fmt.Sprintf("line %d", line); !strings.Contains(stderr, want) || !strings.Contains(stderr, "upstreem") {
			t.Errorf("stderr does not name %q and the key upstreem:\n%s", want, stderr)
		}
		if !strings.Contains(stderr, cfg) {
			t.Errorf("stderr does not name the file %s:\n%s", cfg, stderr)
		}
	})

	t.Run("absent service", func(t *testing.T) {
		yaml := "listen: {http: 127.0.0.1:0}\n" + libraryConfig(descriptorSetSchema(), lib, "", `  - name: example.library.v1.NoSuchService
    upstream: library
`)
		cfg := writeConfig(t, yaml)
		code, stdout, stderr := runRosetta(t, "check", "-config", cfg)
		if code != 1 {
			t.Fatalf("exit %d, want 1\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
		}
		if !strings.Contains(stderr, "example.library.v1.NoSuchService") {
			t.Errorf("stderr does not name the absent service:\n%s", stderr)
		}
	})

	t.Run("absent upstream", func(t *testing.T) {
		yaml := "listen: {http: 127.0.0.1:0}\n" + libraryConfig(descriptorSetSchema(), lib, "", "") +
			"  - name: example.library.v1.LibraryService\n    upstream: nowhere\n"
		code, stdout, stderr := runRosetta(t, "check", "-config", writeConfig(t, yaml))
		if code != 1 || !strings.Contains(stderr, "nowhere") {
			t.Errorf("exit %d, want 1 naming the upstream nowhere\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
		}
	})

	t.Run("bad HTTP rule", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.MkdirAll(filepath.Join(dir, "bad", "v1"), 0o755); err != nil {
			t.Fatal(err)
		}
		proto := `syntax = "proto3";
package bad.v1;
import "google/api/annotations.proto";
service Things {
  rpc GetThing(GetThingRequest) returns (Thing) {
    option (google.api.http) = {get: "/v1/{thing_name=things/*}"};
  }
}
message GetThingRequest { string name = 1; }
message Thing { string name = 1; }
`
		if err := os.WriteFile(filepath.Join(dir, "bad", "v1", "bad.proto"), []byte(proto), 0o644); err != nil {
			t.Fatal(err)
		}
		yaml := fmt.Sprintf(`listen: {http: 127.0.0.1:0}
schemas:
  - proto: {import_paths: [%q], files: [bad/v1/bad.proto]}
upstreams:
  things: {grpc: {targets: [%q]}}
services:
  - name: bad.v1.Things
    upstream: things
`, dir, lib)
		code, stdout, stderr := runRosetta(t, "check", "-config", writeConfig(t, yaml))
		if code != 1 {
			t.Fatalf("exit %d, want 1\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
		}
		for _, want := range []string{"bad/v1/bad.proto", "bad.v1.Things.GetThing", "/v1/{thing_name=things/*}", "thing_name"} {
			if !strings.Contains(stderr, want) {
				t.Errorf("stderr does not name %q:\n%s", want, stderr)
			}
		}
	})
}

// TestRoutes runs `rosetta routes` and looks for the ListBooks route with its
// template, method and upstream.
func TestRoutes(t *testing.T) {
	t.Parallel()
	cfg := writeConfig(t, "listen: {http: 127.0.0.1:0}\n"+libraryConfig(descriptorSetSchema(), freePort(t), "    auto_mapping: true\n", ""))
	code, stdout, stderr := runRosetta(t, "routes", "-config", cfg)
	if code != 0 {
		t.Fatalf("exit %d, want 0\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	found := map[string]bool{}
	for _, line := range strings.Split(stdout, "\n") {
		f := strings.Fields(line)
		if len(f) == 4 && f[3] == "library" {
			found[f[0]+" "+f[1]+" "+f[2]] = true
		}
	}
	for _, want := range []string{
		"GET /v1/{parent=shelves/*}/books example.library.v1.LibraryService.ListBooks",
		"HEAD /v1/{name=shelves/*} example.library.v1.LibraryService.GetShelf",
		"PUT /v1/{book.name=shelves/*/books/*} example.library.v1.LibraryService.UpdateBook",
		"POST /example.library.v1.LibraryService/Ping example.library.v1.LibraryService.Ping",
		"GET /v1/{parent=shelves/*}/books:stream example.library.v1.LibraryService.StreamBooks",
	} {
		if !found[want] {
			t.Errorf("routes does not list %q with upstream library:\n%s", want, stdout)
		}
	}
	table, chains, ok := strings.Cut(stdout, "\nCHAINS")
	if !ok {
		t.Fatalf("routes prints no chains:\n%s", stdout)
	}
	// A client stream is served over REST too (auto_mapping here).
	if !strings.Contains(table, "POST    /example.library.v1.LibraryService/ImportBooks") {
		t.Errorf("routes does not list the client-streaming ImportBooks:\n%s", stdout)
	}
	// Each method once, with every way it is reached and its one chain.
	for _, want := range []string{
		"example.library.v1.LibraryService/GetShelf\n  ways:  gRPC, gRPC-Web, Connect, WebSocket; REST GET /v1/{name=shelves/*}; REST HEAD /v1/{name=shelves/*}\n  chain: observe → cors(same-origin) → query-token → mqtt-owner → dispatch",
		"example.library.v1.LibraryService/CreateBook\n  ways:  gRPC, gRPC-Web, Connect, WebSocket; REST POST /v1/{parent=shelves/*}/books\n  chain: observe → cors(same-origin) → query-token → mqtt-owner → validate → dispatch",
		"example.library.v1.LibraryService/ImportBooks\n  ways:  gRPC, gRPC-Web, Connect, WebSocket; REST POST /example.library.v1.LibraryService/ImportBooks\n",
	} {
		if !strings.Contains(chains, want) {
			t.Errorf("the chains lack %q:\n%s", want, chains)
		}
	}
}

// TestCheckRefusesWhatServeWouldFailOn: every file a configuration names is
// read by `rosetta check` exactly as `serve` reads it, so a file that would
// stop serve stops check, naming the setting; serve refuses the same
// configuration without serving.
func TestCheckRefusesWhatServeWouldFailOn(t *testing.T) {
	t.Parallel()
	missing := filepath.Join(t.TempDir(), "missing")
	base := func(extra string) string {
		return fmt.Sprintf("listen: {http: %q}\n", freePort(t)) + libraryConfig(descriptorSetSchema(), "127.0.0.1:1", "", extra)
	}
	for _, c := range []struct{ name, cfg, want string }{
		{"mqtt.tls certificate", strings.Replace(base("mqtt: {allow_anonymous: true, tls: {cert_file: "+strconv.Quote(missing)+", key_file: "+strconv.Quote(missing)+"}}\n"),
			"listen: {", fmt.Sprintf("listen: {mqtt: %q, ", freePort(t)), 1), "mqtt.tls"},
		{"mqtt password file", strings.Replace(base("mqtt: {password_file: "+strconv.Quote(missing)+"}\n"),
			"listen: {", fmt.Sprintf("listen: {mqtt: %q, ", freePort(t)), 1), "mqtt.password_file"},
		{"listener certificate", base("security: {tls: {cert_file: " + strconv.Quote(missing) + ", key_file: " + strconv.Quote(missing) + "}}\n"), "security.tls"},
		{"jwt key file", base("security: {policies: [bearer]}\npolicies: {bearer: {jwt: {issuer: https://id.test, audience: [a], algorithms: [ES256], key_files: [" + strconv.Quote(missing) + "]}}}\n"), "policies.bearer"},
		{"redis password file", base("redis: {addr: 127.0.0.1:1, password_file: " + strconv.Quote(missing) + "}\n"), "redis.password_file"},
		{"descriptor set", strings.Replace(base(""), filepath.Join(repoRoot, "proto", "library.binpb"), missing, 1), "missing"},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := writeConfig(t, c.cfg)
			code, stdout, stderr := runRosetta(t, "check", "-config", path)
			if code != 1 || !strings.Contains(stderr, c.want) {
				t.Errorf("check: exit %d, want 1 naming %s\nstdout:\n%s\nstderr:\n%s", code, c.want, stdout, stderr)
			}
			code, _, stderr = runRosetta(t, "serve", "-config", path)
			if code != 1 || !strings.Contains(stderr, c.want) {
				t.Errorf("serve: exit %d, want 1 naming %s\nstderr:\n%s", code, c.want, stderr)
			}
		})
	}
}
