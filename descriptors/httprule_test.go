package descriptors

import (
	"context"
	"testing"

	"google.golang.org/genproto/googleapis/api/annotations"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
)

func TestHTTPRule(t *testing.T) {
	dir := writeProtos(t, shelfProtos)
	shelfService := func(t *testing.T, src Source) protoreflect.ServiceDescriptor {
		t.Helper()
		s, err := Load(context.Background(), []Source{src})
		if err != nil {
			t.Fatal(err)
		}
		sd, err := s.Service("test.shelf.v1.ShelfService")
		if err != nil {
			t.Fatal(err)
		}
		return sd
	}
	for _, tc := range []struct {
		name    string
		service func(t *testing.T) protoreflect.ServiceDescriptor
	}{
		{"proto", func(t *testing.T) protoreflect.ServiceDescriptor {
			return shelfService(t, Source{Proto: &ProtoSource{ImportPaths: []string{dir}, Files: []string{"shelf/v1/service.proto"}}})
		}},
		{"descriptor set", func(t *testing.T) protoreflect.ServiceDescriptor {
			return shelfService(t, Source{DescriptorSet: shelfSet(t)})
		}},
		{"reflection", func(t *testing.T) protoreflect.ServiceDescriptor {
			return shelfService(t, Source{Reflection: &ReflectionSource{Conn: serveShelf(t)}})
		}},
		{"options as unknown fields", func(t *testing.T) protoreflect.ServiceDescriptor {
			// A descriptor read by a resolver that knows no extension.
			s := loadShelf(t)
			fd, err := s.Files().FindFileByPath("shelf/v1/service.proto")
			if err != nil {
				t.Fatal(err)
			}
			b, err := proto.Marshal(protodesc.ToFileDescriptorProto(fd))
			if err != nil {
				t.Fatal(err)
			}
			fdp := new(descriptorpb.FileDescriptorProto)
			if err := (proto.UnmarshalOptions{Resolver: new(protoregistry.Types)}).Unmarshal(b, fdp); err != nil {
				t.Fatal(err)
			}
			if proto.HasExtension(fdp.Service[0].Method[0].Options, annotations.E_Http) {
				t.Fatal("the option was parsed")
			}
			fd, err = protodesc.NewFile(fdp, s.Files())
			if err != nil {
				t.Fatal(err)
			}
			return fd.Services().Get(0)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			methods := tc.service(t).Methods()
			rule, ok, err := HTTPRule(methods.ByName("GetShelf"))
			if err != nil || !ok {
				t.Fatalf("HTTPRule(GetShelf) = _, %v, %v", ok, err)
			}
			want := &annotations.HttpRule{
				Pattern: &annotations.HttpRule_Get{Get: "/v1/{name=shelves/*}"},
				AdditionalBindings: []*annotations.HttpRule{{
					Pattern: &annotations.HttpRule_Post{Post: "/v1/{name=shelves/*}:get"},
					Body:    "*",
				}},
			}
			if !proto.Equal(rule, want) {
				t.Errorf("HTTPRule(GetShelf) = %v, want %v", rule, want)
			}
			if rule, ok, err := HTTPRule(methods.ByName("Plain")); ok || err != nil {
				t.Errorf("HTTPRule(Plain) = %v, %v, %v; want no rule", rule, ok, err)
			}
		})
	}
}
