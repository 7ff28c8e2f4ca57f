// Package descriptors loads and validates the protobuf schemas that the
// gateway is compiled from.
//
// Schemas come from descriptor-set files, from .proto sources compiled at
// start-up, or from gRPC server reflection, in any mix. Every call to [Load]
// builds one self-contained generation: its own [protoregistry.Files] and
// [protoregistry.Types], with dynamic message types. Nothing is ever
// registered in the global registries, so a reload can build a new
// generation beside the old one and swap them.
package descriptors

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"
)

// Schema is one generation of loaded descriptors. It is immutable once
// [Load] has returned it and safe for concurrent use.
type Schema struct {
	files *protoregistry.Files
	types *protoregistry.Types
}

// Load reads every source, merges their files and links them into one
// [Schema].
//
// The same file may arrive from several sources as long as its contents are
// identical; a file may import files of any source. The google/protobuf,
// google/api and google/rpc files are the exception: a copy linked into the
// binary resolves an import of one that no source supplies, and replaces one
// that two sources supply in different versions. Load fails, naming the
// source and file, on a missing import, a duplicate symbol, two different
// files with the same path, or any invalid descriptor. It stops when ctx is
// done, which bounds the time spent on reflection.
func Load(ctx context.Context, sources []Source) (*Schema, error) {
	set := fileSet{byPath: map[string]origined{}}
	for i, src := range sources {
		origin, err := src.origin()
		if err != nil {
			return nil, fmt.Errorf("source %d: %w", i, err)
		}
		fdps, err := src.files(ctx)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", origin, err)
		}
		for _, fdp := range fdps {
			if err := set.add(origin, fdp); err != nil {
				return nil, err
			}
		}
	}
	return set.build()
}

// Files returns the registry of every file of the generation, including
// dependencies such as google/protobuf/*.proto and google/api/*.proto.
func (s *Schema) Files() *protoregistry.Files { return s.files }

// Types returns the registry of every message, enum and extension of every
// file of the generation as dynamic types. It is a resolver for protojson
// and for google.protobuf.Any.
func (s *Schema) Types() *protoregistry.Types { return s.types }

// Service returns the service with the given full name, such as
// "example.library.v1.LibraryService".
func (s *Schema) Service(fullName string) (protoreflect.ServiceDescriptor, error) {
	d, err := s.files.FindDescriptorByName(protoreflect.FullName(fullName))
	if err != nil {
		return nil, fmt.Errorf("service %q not found", fullName)
	}
	sd, ok := d.(protoreflect.ServiceDescriptor)
	if !ok {
		return nil, fmt.Errorf("%q is not a service", fullName)
	}
	return sd, nil
}

// Services returns every service of the generation, sorted by full name.
func (s *Schema) Services() []protoreflect.ServiceDescriptor {
	var out []protoreflect.ServiceDescriptor
	s.files.RangeFiles(func(fd protoreflect.FileDescriptor) bool {
		for i := range fd.Services().Len() {
			out = append(out, fd.Services().Get(i))
		}
		return true
	})
	slices.SortFunc(out, func(a, b protoreflect.ServiceDescriptor) int {
		return strings.Compare(string(a.FullName()), string(b.FullName()))
	})
	return out
}

// origined is a file and the source it came from.
type origined struct {
	origin string
	fdp    *descriptorpb.FileDescriptorProto
}

// fileSet is the files of every source, one per path, in arrival order.
type fileSet struct {
	byPath map[string]origined
	order  []string
}

func (set *fileSet) add(origin string, fdp *descriptorpb.FileDescriptorProto) error {
	path := fdp.GetName()
	prev, ok := set.byPath[path]
	if !ok {
		set.byPath[path] = origined{origin, fdp}
		set.order = append(set.order, path)
		return nil
	}
	if sameFile(prev.fdp, fdp) {
		return nil
	}
	// Producers bring their own versions of the well-known files (an older
	// protoc's descriptor.proto, a newer googleapis): where two sources
	// disagree on one, the copy linked into the binary settles it.
	if linked, ok := builtIn(path); ok {
		set.byPath[path] = linked
		return nil
	}
	return fmt.Errorf("%s: file %q differs from the file with the same path from %s", origin, path, prev.origin)
}

// builtIn returns the copy linked into the binary of a google/protobuf,
// google/api or google/rpc file.
func builtIn(path string) (origined, bool) {
	fd, ok := findLinked(path)
	if !ok {
		return origined{}, false
	}
	return origined{"built-in file", protodesc.ToFileDescriptorProto(fd)}, true
}

// sameFile reports whether two files have the same contents, whatever
// produced them.
func sameFile(a, b *descriptorpb.FileDescriptorProto) bool {
	ca, errA := canonical(a)
	cb, errB := canonical(b)
	return errA == nil && errB == nil && proto.Equal(ca, cb)
}

// canonical returns a copy of f without source code info (comments and
// positions) and with its options re-read, so that an extension is held the
// same way whether its producer parsed it (as protocompile does for custom
// options) or kept it as unknown fields.
func canonical(f *descriptorpb.FileDescriptorProto) (*descriptorpb.FileDescriptorProto, error) {
	f = proto.CloneOf(f)
	f.SourceCodeInfo = nil
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(f)
	if err != nil {
		return nil, err
	}
	out := new(descriptorpb.FileDescriptorProto)
	return out, proto.Unmarshal(b, out)
}

// build links the files, dependencies first, into a new generation.
func (set *fileSet) build() (*Schema, error) {
	s := &Schema{files: new(protoregistry.Files), types: new(protoregistry.Types)}
	const visiting, done = 1, 2
	state := map[string]int{}
	var visit func(path string) error
	visit = func(path string) error {
		switch state[path] {
		case visiting:
			return fmt.Errorf("%s: import cycle through file %q", set.byPath[path].origin, path)
		case done:
			return nil
		}
		state[path] = visiting
		f := set.byPath[path]
		for _, dep := range f.fdp.GetDependency() {
			if _, ok := set.byPath[dep]; !ok {
				linked, ok := builtIn(dep)
				if !ok {
					return fmt.Errorf("%s: file %q: import %q not found", f.origin, path, dep)
				}
				set.byPath[dep] = linked
			}
			if err := visit(dep); err != nil {
				return err
			}
		}
		fd, err := protodesc.NewFile(f.fdp, s.files)
		if err != nil {
			return fmt.Errorf("%s: file %q: %w", f.origin, path, err)
		}
		if err := s.files.RegisterFile(fd); err != nil {
			return fmt.Errorf("%s: %w", f.origin, explainConflict(s.files, fd, err))
		}
		if err := registerTypes(s.types, fd.Messages(), fd.Enums(), fd.Extensions()); err != nil {
			return fmt.Errorf("%s: file %q: %w", f.origin, path, err)
		}
		state[path] = done
		return nil
	}
	for _, path := range set.order {
		if err := visit(path); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// explainConflict turns a registration error into one that names the
// symbol and both files defining it, when that is its cause.
func explainConflict(files *protoregistry.Files, fd protoreflect.FileDescriptor, err error) error {
	var decls []protoreflect.Descriptor
	for i := range fd.Messages().Len() {
		decls = append(decls, fd.Messages().Get(i))
	}
	for i := range fd.Enums().Len() {
		ed := fd.Enums().Get(i)
		decls = append(decls, ed)
		for j := range ed.Values().Len() {
			decls = append(decls, ed.Values().Get(j))
		}
	}
	for i := range fd.Extensions().Len() {
		decls = append(decls, fd.Extensions().Get(i))
	}
	for i := range fd.Services().Len() {
		decls = append(decls, fd.Services().Get(i))
	}
	for _, d := range decls {
		if prev, err := files.FindDescriptorByName(d.FullName()); err == nil {
			return fmt.Errorf("symbol %q is defined in both %q and %q", d.FullName(), prev.ParentFile().Path(), fd.Path())
		}
	}
	return err
}

// registerTypes registers dynamic types for the given declarations and
// everything nested in their messages.
func registerTypes(types *protoregistry.Types, msgs protoreflect.MessageDescriptors, enums protoreflect.EnumDescriptors, exts protoreflect.ExtensionDescriptors) error {
	for i := range enums.Len() {
		if err := types.RegisterEnum(dynamicpb.NewEnumType(enums.Get(i))); err != nil {
			return err
		}
	}
	for i := range exts.Len() {
		if err := types.RegisterExtension(dynamicpb.NewExtensionType(exts.Get(i))); err != nil {
			return err
		}
	}
	for i := range msgs.Len() {
		md := msgs.Get(i)
		if err := types.RegisterMessage(dynamicpb.NewMessageType(md)); err != nil {
			return err
		}
		if err := registerTypes(types, md.Messages(), md.Enums(), md.Extensions()); err != nil {
			return err
		}
	}
	return nil
}
