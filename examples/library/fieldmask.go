package library

import (
	"strings"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	libraryv1 "github.com/rosettagw/rosetta/proto/example/library/v1"
)

// outputOnly lists the Book fields that a client cannot set.
var outputOnly = map[string]bool{"name": true, "update_time": true}

// updatePaths returns the Book field paths an UpdateBook request changes:
// the paths of mask, or every settable field when mask is absent, empty or
// "*". It returns an InvalidArgument status for a path that names no Book
// field or an output-only one.
func updatePaths(mask *fieldmaskpb.FieldMask) ([]string, error) {
	paths := mask.GetPaths()
	if len(paths) == 0 || len(paths) == 1 && paths[0] == "*" {
		var all []string
		fields := (&libraryv1.Book{}).ProtoReflect().Descriptor().Fields()
		for i := 0; i < fields.Len(); i++ {
			if name := string(fields.Get(i).Name()); !outputOnly[name] {
				all = append(all, name)
			}
		}
		return all, nil
	}
	if err := checkPaths("update_mask", paths); err != nil {
		return nil, err
	}
	for _, p := range paths {
		if head, _, _ := strings.Cut(p, "."); outputOnly[head] {
			return nil, invalid("update_mask: field %q cannot be updated", p)
		}
	}
	return paths, nil
}

// checkPaths returns an InvalidArgument status, naming field, for the first
// path that names no Book field.
func checkPaths(field string, paths []string) error {
	for _, p := range paths {
		if _, err := fieldmaskpb.New(&libraryv1.Book{}, p); err != nil {
			return invalid("%s: %q is not a field of example.library.v1.Book", field, p)
		}
	}
	return nil
}

// copyPath sets the field at path in dst to its value in src, clearing it in
// dst when src does not have it. path must be valid for the message type.
func copyPath(dst, src protoreflect.Message, path string) {
	head, rest, nested := strings.Cut(path, ".")
	fd := dst.Descriptor().Fields().ByName(protoreflect.Name(head))
	switch {
	case nested:
		copyPath(dst.Mutable(fd).Message(), src.Get(fd).Message(), rest)
	case src.Has(fd):
		dst.Set(fd, src.Get(fd))
	default:
		dst.Clear(fd)
	}
}

// keepPaths clears every populated field of m that paths do not name. paths
// must be valid for the message type.
func keepPaths(m protoreflect.Message, paths []string) {
	whole := make(map[string]bool)
	sub := make(map[string][]string)
	for _, p := range paths {
		head, rest, nested := strings.Cut(p, ".")
		if nested {
			sub[head] = append(sub[head], rest)
		} else {
			whole[head] = true
		}
	}
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		name := string(fd.Name())
		switch {
		case whole[name]:
		case sub[name] != nil:
			keepPaths(v.Message(), sub[name])
		default:
			m.Clear(fd)
		}
		return true
	})
}
