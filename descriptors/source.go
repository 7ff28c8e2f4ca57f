package descriptors

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"

	// Link the google/api, google/rpc and buf/validate files in, so that
	// imports of them resolve without the user supplying them (see
	// findLinked).
	_ "buf.build/gen/go/bufbuild/protovalidate/protocolbuffers/go/buf/validate"
	_ "google.golang.org/genproto/googleapis/api/annotations"
	_ "google.golang.org/genproto/googleapis/api/httpbody"
	_ "google.golang.org/genproto/googleapis/rpc/code"
	_ "google.golang.org/genproto/googleapis/rpc/errdetails"
	_ "google.golang.org/genproto/googleapis/rpc/status"
)

// Source is one place schemas come from. Exactly one field is set.
type Source struct {
	// DescriptorSet is the path of a serialized FileDescriptorSet
	// (.binpb, .pb or .protoset), as written by protoc --include_imports
	// --descriptor_set_out or by buf build.
	DescriptorSet string
	// Proto names .proto sources compiled at start-up.
	Proto *ProtoSource
	// Reflection fetches the schemas from a gRPC server's reflection service.
	Reflection *ReflectionSource
}

// ProtoSource is a set of .proto files compiled when they are loaded.
type ProtoSource struct {
	// ImportPaths are the directories searched for Files and their imports,
	// like protoc's -I flags. Empty means the current directory. Files found
	// here take precedence over the copies of google/protobuf, google/api
	// and google/rpc files linked into the binary.
	ImportPaths []string
	// Files are the files to compile, relative to an import path.
	Files []string
}

// ReflectionSource fetches schemas from a gRPC server through server
// reflection (v1, or v1alpha for servers that lack v1). Load fetches at most
// 10,000 files from one server and gives up when its context is done, so
// give that context a deadline.
type ReflectionSource struct {
	// Conn is an established client connection to the upstream. The caller
	// dials it and sets any credentials and metadata it needs.
	Conn grpc.ClientConnInterface
	// Services optionally limits which services are fetched. Empty means
	// every service the server lists except grpc.reflection.* and
	// grpc.health.*.
	Services []string
}

// origin describes the source for error messages, or reports that it does
// not set exactly one field.
func (s Source) origin() (string, error) {
	n := 0
	var origin string
	if s.DescriptorSet != "" {
		n++
		origin = "descriptor set " + s.DescriptorSet
	}
	if s.Proto != nil {
		n++
		origin = fmt.Sprintf("proto sources %q", s.Proto.Files)
	}
	if s.Reflection != nil {
		n++
		origin = "reflection"
		if t, ok := s.Reflection.Conn.(interface{ Target() string }); ok {
			origin += " from " + t.Target()
		}
	}
	if n != 1 {
		return "", fmt.Errorf("%d of DescriptorSet, Proto and Reflection are set, want exactly one", n)
	}
	return origin, nil
}

// files returns the source's files, in no particular order.
func (s Source) files(ctx context.Context) ([]*descriptorpb.FileDescriptorProto, error) {
	switch {
	case s.Proto != nil:
		return compileProto(ctx, s.Proto)
	case s.Reflection != nil:
		return fetchReflection(ctx, s.Reflection)
	default:
		return readDescriptorSet(s.DescriptorSet)
	}
}

func readDescriptorSet(path string) ([]*descriptorpb.FileDescriptorProto, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var set descriptorpb.FileDescriptorSet
	if err := proto.Unmarshal(b, &set); err != nil {
		return nil, fmt.Errorf("not a FileDescriptorSet: %w", err)
	}
	if len(set.File) == 0 {
		return nil, errors.New("no files")
	}
	return set.File, nil
}

// linkedPrefixes are the folders of the files linked into the binary that
// user schemas may import without supplying them.
var linkedPrefixes = []string{"google/protobuf/", "google/api/", "google/rpc/", "buf/validate/"}

// findLinked returns the copy linked into the binary of a google/protobuf,
// google/api, google/rpc or buf/validate file. It only reads the global
// registry.
func findLinked(path string) (protoreflect.FileDescriptor, bool) {
	linked := false
	for _, p := range linkedPrefixes {
		linked = linked || strings.HasPrefix(path, p)
	}
	if !linked {
		return nil, false
	}
	fd, err := protoregistry.GlobalFiles.FindFileByPath(path)
	return fd, err == nil
}
