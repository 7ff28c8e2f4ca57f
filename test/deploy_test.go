package test

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// yamlDocs decodes every document of a YAML file.
func yamlDocs(t *testing.T, path string) []map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var docs []map[string]any
	dec := yaml.NewDecoder(bytes.NewReader(b))
	for {
		var d map[string]any
		if err := dec.Decode(&d); errors.Is(err, io.EOF) {
			return docs
		} else if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if d != nil {
			docs = append(docs, d)
		}
	}
}

// wantFile asserts that path (relative to dir) exists.
func wantFile(t *testing.T, dir, path string) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(dir, path)); err != nil {
		t.Errorf("%s names %s, which does not exist: %v", dir, path, err)
	}
}

// TestDeployFiles checks what can be checked of deploy/ without a container
// engine: the files parse, name files that exist, and the configurations
// they mount are ones `rosetta check` accepts.
func TestDeployFiles(t *testing.T) {
	t.Parallel()
	deploy := filepath.Join(repoRoot, "deploy")

	t.Run("compose", func(t *testing.T) {
		docs := yamlDocs(t, filepath.Join(deploy, "docker-compose.yaml"))
		services, _ := docs[0]["services"].(map[string]any)
		for _, want := range []string{"rosetta", "library", "iot", "redis", "mosquitto", "prometheus", "grafana"} {
			if services[want] == nil {
				t.Errorf("docker-compose.yaml has no %s service", want)
			}
		}
		for name, s := range services {
			svc := s.(map[string]any)
			if b, ok := svc["build"].(map[string]any); ok {
				wantFile(t, deploy, filepath.Join(b["context"].(string), b["dockerfile"].(string)))
			}
			vols, _ := svc["volumes"].([]any)
			for _, v := range vols {
				host, _, _ := strings.Cut(v.(string), ":")
				if strings.HasPrefix(host, ".") {
					wantFile(t, deploy, host)
				} else {
					t.Errorf("service %s mounts %q: want a file of the repository", name, v)
				}
			}
		}
		yamlDocs(t, filepath.Join(deploy, "prometheus", "prometheus.yml"))
		for _, f := range []string{"datasources/prometheus.yaml", "dashboards/rosetta.yaml"} {
			yamlDocs(t, filepath.Join(deploy, "grafana", "provisioning", f))
		}
	})

	t.Run("Kubernetes", func(t *testing.T) {
		k8s := filepath.Join(deploy, "kubernetes")
		kust := yamlDocs(t, filepath.Join(k8s, "kustomization.yaml"))[0]
		kinds := map[string]map[string]any{}
		for _, r := range kust["resources"].([]any) {
			wantFile(t, k8s, r.(string))
			for _, d := range yamlDocs(t, filepath.Join(k8s, r.(string))) {
				meta := d["metadata"].(map[string]any)
				if d["kind"] == nil || meta["name"] == nil {
					t.Errorf("%s: a document without kind or name", r)
				}
				if meta["name"] == "rosetta" {
					kinds[d["kind"].(string)] = d
				}
			}
		}
		for _, g := range kust["configMapGenerator"].([]any) {
			for _, f := range g.(map[string]any)["files"].([]any) {
				wantFile(t, k8s, f.(string))
			}
		}
		for _, want := range []string{"Deployment", "Service", "HorizontalPodAutoscaler"} {
			if kinds[want] == nil {
				t.Errorf("no %s named rosetta", want)
			}
		}
		spec := kinds["Deployment"]["spec"].(map[string]any)
		if n, _ := spec["replicas"].(int); n < 2 {
			t.Errorf("the Deployment runs %v replicas, want 2 or more", spec["replicas"])
		}
		pod := spec["template"].(map[string]any)["spec"].(map[string]any)
		ctr := pod["containers"].([]any)[0].(map[string]any)
		for probe, path := range map[string]string{"readinessProbe": "/readyz", "livenessProbe": "/healthz"} {
			p, _ := ctr[probe].(map[string]any)
			if get, _ := p["httpGet"].(map[string]any); get == nil || get["path"] != path {
				t.Errorf("%s = %v, want an HTTP GET of %s", probe, ctr[probe], path)
			}
		}
	})

	// The configurations the stack mounts are accepted as they are, with
	// the schemas beside them as the mounts put them.
	for name, file := range map[string]string{"compose": "rosetta/rosetta.yaml", "Kubernetes": "kubernetes/rosetta.yaml"} {
		t.Run(name+" configuration", func(t *testing.T) {
			dir := t.TempDir()
			b, err := os.ReadFile(filepath.Join(deploy, file))
			if err != nil {
				t.Fatal(err)
			}
			b = bytes.ReplaceAll(b, []byte("__POD_NAME__"), []byte("rosetta-0"))
			if err := os.MkdirAll(filepath.Join(dir, "proto"), 0o755); err != nil {
				t.Fatal(err)
			}
			for _, f := range []string{"library.binpb", "iot.binpb"} {
				if err := os.Symlink(filepath.Join(repoRoot, "proto", f), filepath.Join(dir, "proto", f)); err != nil {
					t.Fatal(err)
				}
			}
			path := filepath.Join(dir, "rosetta.yaml")
			if err := os.WriteFile(path, b, 0o644); err != nil {
				t.Fatal(err)
			}
			if code, out, errOut := runRosetta(t, "check", "-config", path); code != 0 {
				t.Errorf("rosetta check %s: exit %d\n%s%s", file, code, out, errOut)
			}
		})
	}
}
