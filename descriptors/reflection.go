package descriptors

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"google.golang.org/grpc/codes"
	reflectionv1 "google.golang.org/grpc/reflection/grpc_reflection_v1"
	reflectionv1alpha "google.golang.org/grpc/reflection/grpc_reflection_v1alpha"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/descriptorpb"
)

// maxReflectionFiles bounds the files fetched from one server, so that a
// hostile or broken server cannot make Load run forever.
const maxReflectionFiles = 10000

// fetchReflection fetches the files defining the source's services and the
// closure of their imports. It speaks reflection v1 and falls back to
// v1alpha when the server does not implement v1.
func fetchReflection(ctx context.Context, src *ReflectionSource) ([]*descriptorpb.FileDescriptorProto, error) {
	if src.Conn == nil {
		return nil, errors.New("no client connection")
	}
	files, err := fetchWith(ctx, src, reflectionv1.ServerReflection_ServerReflectionInfo_FullMethodName)
	if status.Code(err) == codes.Unimplemented {
		files, err = fetchWith(ctx, src, reflectionv1alpha.ServerReflection_ServerReflectionInfo_FullMethodName)
	}
	return files, err
}

// fetchWith runs one reflection stream on the given method. The v1alpha
// messages are identical on the wire to the v1 ones, so v1 messages serve
// both methods.
func fetchWith(ctx context.Context, src *ReflectionSource, method string) ([]*descriptorpb.FileDescriptorProto, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := src.Conn.NewStream(ctx, &reflectionv1.ServerReflection_ServiceDesc.Streams[0], method)
	if err != nil {
		return nil, err
	}
	ask := func(req *reflectionv1.ServerReflectionRequest) (*reflectionv1.ServerReflectionResponse, error) {
		// On io.EOF the stream has failed and RecvMsg returns the reason.
		if err := stream.SendMsg(req); err != nil && err != io.EOF {
			return nil, err
		}
		resp := new(reflectionv1.ServerReflectionResponse)
		if err := stream.RecvMsg(resp); err != nil {
			return nil, err
		}
		if e := resp.GetErrorResponse(); e != nil {
			// Deliberately not a status error: only the stream itself
			// answering Unimplemented means the method is missing.
			return nil, fmt.Errorf("server answered %v: %s", codes.Code(e.GetErrorCode()), e.GetErrorMessage())
		}
		return resp, nil
	}

	services := src.Services
	if len(services) == 0 {
		resp, err := ask(&reflectionv1.ServerReflectionRequest{
			MessageRequest: &reflectionv1.ServerReflectionRequest_ListServices{},
		})
		if err != nil {
			return nil, fmt.Errorf("listing services: %w", err)
		}
		for _, svc := range resp.GetListServicesResponse().GetService() {
			name := svc.GetName()
			if !strings.HasPrefix(name, "grpc.reflection.") && !strings.HasPrefix(name, "grpc.health.") {
				services = append(services, name)
			}
		}
	}
	if len(services) > maxReflectionFiles {
		return nil, fmt.Errorf("server lists %d services, more than the limit of %d", len(services), maxReflectionFiles)
	}

	var files []*descriptorpb.FileDescriptorProto
	have := map[string]bool{}
	var missing []string // imports not fetched yet
	// keep adds the files of a response that are new.
	keep := func(resp *reflectionv1.ServerReflectionResponse) error {
		fdr := resp.GetFileDescriptorResponse()
		if fdr == nil {
			return errors.New("server answered without file descriptors")
		}
		for _, b := range fdr.GetFileDescriptorProto() {
			fdp := new(descriptorpb.FileDescriptorProto)
			if err := proto.Unmarshal(b, fdp); err != nil {
				return fmt.Errorf("bad file descriptor: %w", err)
			}
			if have[fdp.GetName()] {
				continue
			}
			if len(files) == maxReflectionFiles {
				return fmt.Errorf("server sent more than the limit of %d files", maxReflectionFiles)
			}
			have[fdp.GetName()] = true
			files = append(files, fdp)
			missing = append(missing, fdp.GetDependency()...)
		}
		return nil
	}
	for _, svc := range services {
		resp, err := ask(&reflectionv1.ServerReflectionRequest{
			MessageRequest: &reflectionv1.ServerReflectionRequest_FileContainingSymbol{FileContainingSymbol: svc},
		})
		if err == nil {
			err = keep(resp)
		}
		if err != nil {
			return nil, fmt.Errorf("service %q: %w", svc, err)
		}
	}
	// Every round trip either shrinks missing or adds a file, so the
	// file limit bounds this loop.
	for len(missing) > 0 {
		path := missing[len(missing)-1]
		missing = missing[:len(missing)-1]
		if have[path] {
			continue
		}
		resp, err := ask(&reflectionv1.ServerReflectionRequest{
			MessageRequest: &reflectionv1.ServerReflectionRequest_FileByFilename{FileByFilename: path},
		})
		if err == nil {
			err = keep(resp)
		}
		if err == nil && !have[path] {
			err = errors.New("server did not send it")
		}
		if err != nil {
			return nil, fmt.Errorf("file %q: %w", path, err)
		}
	}
	return files, nil
}
