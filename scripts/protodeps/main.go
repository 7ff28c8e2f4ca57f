// Command protodeps writes a FileDescriptorSet holding the googleapis files
// that the example protos import, so protoc can compile them without a copy
// of the googleapis sources.
//
// The descriptors come from the genproto Go packages, which register them in
// the global protobuf registry when they are linked in. The set holds, in
// dependency order, google/api/annotations.proto, google/api/http.proto,
// google/api/httpbody.proto, google/rpc/status.proto and
// buf/validate/validate.proto (protovalidate's rules, from its generated Go
// package) together with every file they import. Pass it
// to protoc with --descriptor_set_in:
//
//	go run ./scripts/protodeps -o /tmp/googleapis.binpb
//	protoc --descriptor_set_in=/tmp/googleapis.binpb ...
//
// protoc reads a file from its include directory in preference to the set,
// so where protoc has google/protobuf/*.proto (as it does with
// libprotobuf-dev on Debian) those copies win; the set only has to fill in
// what protoc lacks.
package main

import (
	"flag"
	"fmt"
	"os"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"

	"buf.build/gen/go/bufbuild/protovalidate/protocolbuffers/go/buf/validate"
	"google.golang.org/genproto/googleapis/api/annotations"
	"google.golang.org/genproto/googleapis/api/httpbody"
	"google.golang.org/genproto/googleapis/rpc/status"
)

// roots are the files the set is built from; their imports follow them in.
var roots = []protoreflect.FileDescriptor{
	annotations.File_google_api_annotations_proto,
	annotations.File_google_api_http_proto,
	httpbody.File_google_api_httpbody_proto,
	status.File_google_rpc_status_proto,
	validate.File_buf_validate_validate_proto,
}

func main() {
	out := flag.String("o", "", "write the FileDescriptorSet to this file (default: standard output)")
	flag.Parse()

	data, err := proto.MarshalOptions{Deterministic: true}.Marshal(descriptorSet(roots))
	if err != nil {
		fmt.Fprintln(os.Stderr, "protodeps:", err)
		os.Exit(1)
	}
	if *out == "" {
		_, err = os.Stdout.Write(data)
	} else {
		err = os.WriteFile(*out, data, 0o644)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "protodeps:", err)
		os.Exit(1)
	}
}

// descriptorSet returns the files and their transitive imports, each once,
// every file after the files it imports.
func descriptorSet(files []protoreflect.FileDescriptor) *descriptorpb.FileDescriptorSet {
	set := &descriptorpb.FileDescriptorSet{}
	seen := make(map[string]bool)
	var add func(fd protoreflect.FileDescriptor)
	add = func(fd protoreflect.FileDescriptor) {
		if seen[fd.Path()] {
			return
		}
		seen[fd.Path()] = true
		imports := fd.Imports()
		for i := 0; i < imports.Len(); i++ {
			add(imports.Get(i).FileDescriptor)
		}
		set.File = append(set.File, protodesc.ToFileDescriptorProto(fd))
	}
	for _, fd := range files {
		add(fd)
	}
	return set
}
