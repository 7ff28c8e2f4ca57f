package descriptors

import (
	"context"
	"errors"
	"fmt"
	"io/fs"

	"github.com/bufbuild/protocompile"
	"github.com/bufbuild/protocompile/reporter"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
)

// compileProto compiles the source's files and returns them with all their
// dependencies. On failure it reports every error, each naming file:line:col.
func compileProto(ctx context.Context, src *ProtoSource) ([]*descriptorpb.FileDescriptorProto, error) {
	if len(src.Files) == 0 {
		return nil, errors.New("no files to compile")
	}
	var errs []error
	sources := &protocompile.SourceResolver{ImportPaths: src.ImportPaths}
	c := protocompile.Compiler{
		Resolver: protocompile.WithStandardImports(protocompile.ResolverFunc(func(path string) (protocompile.SearchResult, error) {
			res, err := sources.FindFileByPath(path)
			if !errors.Is(err, fs.ErrNotExist) {
				return res, err
			}
			if fd, ok := findLinked(path); ok {
				return protocompile.SearchResult{Desc: fd}, nil
			}
			if len(src.ImportPaths) == 0 {
				return res, fmt.Errorf("file %q not found in the current directory", path)
			}
			return res, fmt.Errorf("file %q not found in import paths %q", path, src.ImportPaths)
		})),
		Reporter: reporter.NewReporter(func(err reporter.ErrorWithPos) error {
			errs = append(errs, err)
			return nil
		}, nil),
		SourceInfoMode: protocompile.SourceInfoStandard,
	}
	compiled, err := c.Compile(ctx, src.Files...)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if err != nil {
		return nil, err
	}
	var out []*descriptorpb.FileDescriptorProto
	seen := map[string]bool{}
	var walk func(fd protoreflect.FileDescriptor)
	walk = func(fd protoreflect.FileDescriptor) {
		if seen[fd.Path()] {
			return
		}
		seen[fd.Path()] = true
		for i := range fd.Imports().Len() {
			walk(fd.Imports().Get(i).FileDescriptor)
		}
		out = append(out, protodesc.ToFileDescriptorProto(fd))
	}
	for _, fd := range compiled {
		walk(fd)
	}
	return out, nil
}
