package descriptors

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"
)

// shelfProtos is a small schema: two files of one package, an import of a
// well-known type and of google/api/annotations.proto (supplied by no one),
// HTTP rules and an extension.
var shelfProtos = map[string]string{
	"shelf/v1/shelf.proto": `syntax = "proto3";
package test.shelf.v1;
import "google/protobuf/timestamp.proto";
message Shelf {
  enum Kind { KIND_UNSPECIFIED = 0; FICTION = 1; }
  string name = 1;
  google.protobuf.Timestamp created = 2;
  Kind kind = 3;
}
`,
	"shelf/v1/service.proto": `syntax = "proto3";
package test.shelf.v1;
import "google/api/annotations.proto";
import "google/protobuf/descriptor.proto";
import "shelf/v1/shelf.proto";
extend google.protobuf.MethodOptions { string audit = 50001; }
message GetShelfRequest { string name = 1; }
service ShelfService {
  rpc GetShelf(GetShelfRequest) returns (Shelf) {
    option (google.api.http) = {
      get: "/v1/{name=shelves/*}"
      additional_bindings { post: "/v1/{name=shelves/*}:get" body: "*" }
    };
  }
  rpc Plain(GetShelfRequest) returns (Shelf) { option (audit) = "yes"; }
}
`,
}

// writeProtos writes files into a new temporary directory and returns it.
func writeProtos(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// loadShelf compiles shelfProtos from source.
func loadShelf(t *testing.T) *Schema {
	t.Helper()
	s, err := Load(context.Background(), []Source{{Proto: &ProtoSource{
		ImportPaths: []string{writeProtos(t, shelfProtos)},
		Files:       []string{"shelf/v1/service.proto"},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// withDeps returns fd and every file it imports, importers before the files
// they import, so that loading them exercises any-order resolution.
func withDeps(fd protoreflect.FileDescriptor) []*descriptorpb.FileDescriptorProto {
	var out []*descriptorpb.FileDescriptorProto
	seen := map[string]bool{}
	var walk func(fd protoreflect.FileDescriptor)
	walk = func(fd protoreflect.FileDescriptor) {
		if seen[fd.Path()] {
			return
		}
		seen[fd.Path()] = true
		out = append(out, protodesc.ToFileDescriptorProto(fd))
		for i := range fd.Imports().Len() {
			walk(fd.Imports().Get(i).FileDescriptor)
		}
	}
	walk(fd)
	return out
}

// writeSet writes a FileDescriptorSet into a temporary file and returns its
// path.
func writeSet(t *testing.T, files ...*descriptorpb.FileDescriptorProto) string {
	t.Helper()
	b, err := proto.Marshal(&descriptorpb.FileDescriptorSet{File: files})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "set.binpb")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// shelfSet writes the shelf schema, with all its dependencies, as a
// descriptor set.
func shelfSet(t *testing.T) string {
	t.Helper()
	fd, err := loadShelf(t).Files().FindFileByPath("shelf/v1/service.proto")
	if err != nil {
		t.Fatal(err)
	}
	return writeSet(t, withDeps(fd)...)
}

func TestLoadSources(t *testing.T) {
	dir := writeProtos(t, shelfProtos)
	proto := Source{Proto: &ProtoSource{ImportPaths: []string{dir}, Files: []string{"shelf/v1/service.proto"}}}
	set := Source{DescriptorSet: shelfSet(t)}
	for _, tc := range []struct {
		name    string
		sources []Source
	}{
		{"proto", []Source{proto}},
		{"descriptor set", []Source{set}},
		{"proto and identical descriptor set", []Source{proto, set}},
		{"descriptor set and identical proto", []Source{set, proto}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Load(context.Background(), tc.sources)
			if err != nil {
				t.Fatal(err)
			}
			checkShelf(t, s)
		})
	}
}

// checkShelf checks that s holds the shelf schema: its service, its files
// and dependencies, and dynamic types for all of them.
func checkShelf(t *testing.T, s *Schema) {
	t.Helper()
	var names []string
	for _, sd := range s.Services() {
		names = append(names, string(sd.FullName()))
	}
	if got, want := strings.Join(names, ","), "test.shelf.v1.ShelfService"; got != want {
		t.Errorf("Services() = %s, want %s", got, want)
	}
	sd, err := s.Service("test.shelf.v1.ShelfService")
	if err != nil {
		t.Fatal(err)
	}
	if got := sd.Methods().ByName("GetShelf").Output().FullName(); got != "test.shelf.v1.Shelf" {
		t.Errorf("GetShelf output = %s", got)
	}
	for _, path := range []string{"google/api/http.proto", "google/protobuf/descriptor.proto", "shelf/v1/shelf.proto"} {
		if _, err := s.Files().FindFileByPath(path); err != nil {
			t.Errorf("file %s: %v", path, err)
		}
	}
	for _, name := range []protoreflect.FullName{"test.shelf.v1.Shelf", "google.protobuf.Timestamp", "google.api.HttpRule"} {
		mt, err := s.Types().FindMessageByName(name)
		if err != nil {
			t.Errorf("message %s: %v", name, err)
			continue
		}
		if _, ok := mt.New().Interface().(*dynamicpb.Message); !ok {
			t.Errorf("message %s: type %T is not dynamic", name, mt)
		}
	}
	if _, err := s.Types().FindEnumByName("test.shelf.v1.Shelf.Kind"); err != nil {
		t.Errorf("enum: %v", err)
	}
	if _, err := s.Types().FindExtensionByName("test.shelf.v1.audit"); err != nil {
		t.Errorf("extension: %v", err)
	}
	if _, err := s.Types().FindExtensionByName("google.api.http"); err != nil {
		t.Errorf("extension: %v", err)
	}
}

func TestLoadLeavesGlobalRegistryAlone(t *testing.T) {
	before := protoregistry.GlobalFiles.NumFiles()
	checkShelf(t, loadShelf(t))
	if after := protoregistry.GlobalFiles.NumFiles(); after != before {
		t.Errorf("global registry grew from %d to %d files", before, after)
	}
	if _, err := protoregistry.GlobalFiles.FindFileByPath("shelf/v1/shelf.proto"); err == nil {
		t.Error("shelf/v1/shelf.proto is in the global registry")
	}
}

func TestLoadUserFilesTakePrecedence(t *testing.T) {
	dir := writeProtos(t, map[string]string{
		"google/api/annotations.proto": `syntax = "proto3";
package google.api;
message MyOwnAnnotations {}
`,
		"a.proto": `syntax = "proto3";
import "google/api/annotations.proto";
message A { google.api.MyOwnAnnotations own = 1; }
`,
	})
	s, err := Load(context.Background(), []Source{{Proto: &ProtoSource{ImportPaths: []string{dir}, Files: []string{"a.proto"}}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Types().FindMessageByName("google.api.MyOwnAnnotations"); err != nil {
		t.Error(err)
	}
	if _, err := s.Files().FindFileByPath("google/api/http.proto"); err == nil {
		t.Error("the linked google/api/annotations.proto was used")
	}
}

func TestLoadDescriptorSetResolvesWellKnownImports(t *testing.T) {
	// A set written without --include_imports: only the user's files.
	var user []*descriptorpb.FileDescriptorProto
	for _, path := range []string{"shelf/v1/service.proto", "shelf/v1/shelf.proto"} {
		fd, err := loadShelf(t).Files().FindFileByPath(path)
		if err != nil {
			t.Fatal(err)
		}
		user = append(user, protodesc.ToFileDescriptorProto(fd))
	}
	s, err := Load(context.Background(), []Source{{DescriptorSet: writeSet(t, user...)}})
	if err != nil {
		t.Fatal(err)
	}
	checkShelf(t, s)
}

func TestLoadWellKnownFileVersionsDiffer(t *testing.T) {
	// A descriptor set from another protoc, whose descriptor.proto differs
	// from the one linked into the binary.
	fd, err := loadShelf(t).Files().FindFileByPath("shelf/v1/service.proto")
	if err != nil {
		t.Fatal(err)
	}
	files := withDeps(fd)
	for _, f := range files {
		if f.GetName() == "google/protobuf/descriptor.proto" {
			f.MessageType = append(f.MessageType, &descriptorpb.DescriptorProto{Name: proto.String("OtherVersion")})
		}
	}
	set := Source{DescriptorSet: writeSet(t, files...)}
	proto := Source{Proto: &ProtoSource{ImportPaths: []string{writeProtos(t, shelfProtos)}, Files: []string{"shelf/v1/service.proto"}}}
	for _, order := range [][]Source{{set, proto}, {proto, set}} {
		s, err := Load(context.Background(), order)
		if err != nil {
			t.Fatal(err)
		}
		checkShelf(t, s)
		if _, err := s.Files().FindDescriptorByName("google.protobuf.OtherVersion"); err == nil {
			t.Error("the descriptor set's descriptor.proto was kept, not the linked one")
		}
	}
}

func TestLoadErrors(t *testing.T) {
	dir := writeProtos(t, map[string]string{
		"missing.proto": `syntax = "proto3";
import "nowhere/gone.proto";
`,
		"dup1.proto": `syntax = "proto3";
package dup;
message M {}
`,
		"dup2.proto": `syntax = "proto3";
package dup;
message M {}
`,
		"bad1.proto": `syntax = "proto3";
message A {
  string name = ;
}
`,
		"bad2.proto": `syntax = "proto3";
message B {}
message C { int32 x = 1 }
`,
		"undefined.proto": `syntax = "proto3";
message D { Nope n = 1; }
`,
	})
	protoSrc := func(files ...string) Source {
		return Source{Proto: &ProtoSource{ImportPaths: []string{dir}, Files: files}}
	}
	a := &descriptorpb.FileDescriptorProto{Name: proto.String("a.proto"), Dependency: []string{"b.proto"}}
	missingSet := writeSet(t, a)
	dup2 := &descriptorpb.FileDescriptorProto{
		Name:        proto.String("other/dup2.proto"),
		Package:     proto.String("dup"),
		MessageType: []*descriptorpb.DescriptorProto{{Name: proto.String("M")}},
	}
	dupSet := writeSet(t, dup2)
	cycleSet := writeSet(t,
		&descriptorpb.FileDescriptorProto{Name: proto.String("c1.proto"), Dependency: []string{"c2.proto"}},
		&descriptorpb.FileDescriptorProto{Name: proto.String("c2.proto"), Dependency: []string{"c1.proto"}},
	)

	// The shelf file with one field more than the one compiled from source.
	fd, err := loadShelf(t).Files().FindFileByPath("shelf/v1/shelf.proto")
	if err != nil {
		t.Fatal(err)
	}
	changed := protodesc.ToFileDescriptorProto(fd)
	changed.MessageType[0].Field = append(changed.MessageType[0].Field, &descriptorpb.FieldDescriptorProto{
		Name: proto.String("extra"), JsonName: proto.String("extra"), Number: proto.Int32(9),
		Type: descriptorpb.FieldDescriptorProto_TYPE_STRING.Enum(), Label: descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum(),
	})
	changedSet := writeSet(t, changed)
	shelfDir := writeProtos(t, shelfProtos)

	for _, tc := range []struct {
		name    string
		sources []Source
		want    []string // substrings of the error
	}{
		{
			name:    "missing import in proto",
			sources: []Source{protoSrc("missing.proto")},
			want:    []string{`proto sources ["missing.proto"]: missing.proto:2:8: `, `file "nowhere/gone.proto" not found in import paths ["` + dir + `"]`},
		},
		{
			name:    "missing import in descriptor set",
			sources: []Source{{DescriptorSet: missingSet}},
			want:    []string{"descriptor set " + missingSet + `: file "a.proto": import "b.proto" not found`},
		},
		{
			name:    "import cycle in descriptor set",
			sources: []Source{{DescriptorSet: cycleSet}},
			want:    []string{"descriptor set " + cycleSet + `: import cycle through file "c1.proto"`},
		},
		{
			name:    "duplicate symbol across sources",
			sources: []Source{protoSrc("dup1.proto"), {DescriptorSet: dupSet}},
			want:    []string{"descriptor set " + dupSet + `: symbol "dup.M" is defined in both "dup1.proto" and "other/dup2.proto"`},
		},
		{
			name:    "duplicate symbol in one proto source",
			sources: []Source{protoSrc("dup1.proto", "dup2.proto")},
			want:    []string{"dup1.proto", "dup2.proto", `"dup.M"`},
		},
		{
			name:    "every syntax error with its position",
			sources: []Source{protoSrc("bad1.proto", "bad2.proto")},
			want:    []string{"bad1.proto:3:17: syntax error", "bad2.proto:3:25: syntax error"},
		},
		{
			name:    "undefined type",
			sources: []Source{protoSrc("undefined.proto")},
			want:    []string{"undefined.proto:2:13: field D.n: unknown type Nope"},
		},
		{
			name:    "same path with different content",
			sources: []Source{{Proto: &ProtoSource{ImportPaths: []string{shelfDir}, Files: []string{"shelf/v1/shelf.proto"}}}, {DescriptorSet: changedSet}},
			want:    []string{"descriptor set " + changedSet + `: file "shelf/v1/shelf.proto" differs from the file with the same path from proto sources ["shelf/v1/shelf.proto"]`},
		},
		{
			name:    "descriptor set file absent",
			sources: []Source{{DescriptorSet: filepath.Join(dir, "absent.binpb")}},
			want:    []string{"descriptor set " + filepath.Join(dir, "absent.binpb"), "no such file"},
		},
		{
			name:    "descriptor set not a descriptor set",
			sources: []Source{{DescriptorSet: filepath.Join(dir, "bad1.proto")}},
			want:    []string{"not a FileDescriptorSet"},
		},
		{
			name:    "proto source without files",
			sources: []Source{{Proto: &ProtoSource{ImportPaths: []string{dir}}}},
			want:    []string{"proto sources []: no files to compile"},
		},
		{
			name:    "empty source",
			sources: []Source{protoSrc("dup1.proto"), {}},
			want:    []string{"source 1: 0 of DescriptorSet, Proto and Reflection are set, want exactly one"},
		},
		{
			name:    "source with two kinds",
			sources: []Source{{DescriptorSet: missingSet, Proto: &ProtoSource{Files: []string{"a.proto"}}}},
			want:    []string{"source 0: 2 of DescriptorSet, Proto and Reflection are set"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Load(context.Background(), tc.sources)
			if err == nil {
				t.Fatalf("Load succeeded with services %v", s.Services())
			}
			for _, want := range tc.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q\ndoes not contain %q", err, want)
				}
			}
		})
	}
}

func TestServiceAbsent(t *testing.T) {
	s := loadShelf(t)
	for _, name := range []string{"test.shelf.v1.NoSuchService", "test.shelf.v1.Shelf"} {
		if _, err := s.Service(name); err == nil || !strings.Contains(err.Error(), `"`+name+`"`) {
			t.Errorf("Service(%q) error = %v, want one naming it", name, err)
		}
	}
}
