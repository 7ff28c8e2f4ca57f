// Package iot is an in-memory implementation of the example DeviceService
// (proto/example/iot/v1): the gRPC back end that Rosetta's MQTT bridge turns
// device telemetry into calls of, in the IoT example, the demo and the
// end-to-end tests.
//
// Record keeps a per-device count of readings and the last one; it rejects
// a reading out of physical range with InvalidArgument naming the field.
// Every method is safe for concurrent use.
package iot

import (
	"context"
	"sync"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	iotv1 "github.com/rosettagw/rosetta/proto/example/iot/v1"
)

// Server implements iotv1.DeviceServiceServer in memory. The zero value is
// ready to use.
type Server struct {
	iotv1.UnimplementedDeviceServiceServer

	mu      sync.Mutex
	devices map[string]*iotv1.Device
}

// Register creates a Server, registers it as the DeviceService of r and
// returns it.
func Register(r grpc.ServiceRegistrar) *Server {
	s := &Server{}
	iotv1.RegisterDeviceServiceServer(r, s)
	return s
}

// device returns the record of id, creating it; s.mu must be held.
func (s *Server) device(id string) *iotv1.Device {
	if s.devices == nil {
		s.devices = map[string]*iotv1.Device{}
	}
	d := s.devices[id]
	if d == nil {
		d = &iotv1.Device{DeviceId: id}
		s.devices[id] = d
	}
	return d
}

// Record stores one reading.
func (s *Server) Record(_ context.Context, req *iotv1.RecordRequest) (*iotv1.RecordResponse, error) {
	if req.GetDeviceId() == "" {
		return nil, invalid("device_id", "device_id is required")
	}
	if t := req.GetReading().GetTemperature(); t < -100 || t > 200 {
		return nil, invalid("reading.temperature", "temperature must be between -100 and 200")
	}
	if h := req.GetReading().GetHumidity(); h < 0 || h > 100 {
		return nil, invalid("reading.humidity", "humidity must be between 0 and 100")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.device(req.GetDeviceId())
	d.Readings++
	d.Last = proto.CloneOf(req.GetReading())
	return &iotv1.RecordResponse{DeviceId: d.DeviceId, Id: req.GetId(), Count: d.Readings}, nil
}

// Upload stores an opaque blob.
func (s *Server) Upload(_ context.Context, req *iotv1.UploadRequest) (*iotv1.UploadResponse, error) {
	return s.upload(req.GetDeviceId(), len(req.GetData()), "")
}

// UploadBody stores a blob with its content type.
func (s *Server) UploadBody(_ context.Context, req *iotv1.UploadBodyRequest) (*iotv1.UploadResponse, error) {
	return s.upload(req.GetDeviceId(), len(req.GetBody().GetData()), req.GetBody().GetContentType())
}

func (s *Server) upload(id string, size int, contentType string) (*iotv1.UploadResponse, error) {
	if id == "" {
		return nil, invalid("device_id", "device_id is required")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.device(id).UploadedBytes += int64(size)
	return &iotv1.UploadResponse{DeviceId: id, Size: int64(size), ContentType: contentType}, nil
}

// GetDevice returns what is known of a device.
func (s *Server) GetDevice(_ context.Context, req *iotv1.GetDeviceRequest) (*iotv1.Device, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.devices[req.GetDeviceId()]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "device %q has sent nothing", req.GetDeviceId())
	}
	return proto.CloneOf(d), nil
}

// invalid is an InvalidArgument status naming field in a BadRequest detail.
func invalid(field, msg string) error {
	st, err := status.New(codes.InvalidArgument, msg).WithDetails(&errdetails.BadRequest{
		FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: field, Description: msg}},
	})
	if err != nil {
		return status.Error(codes.InvalidArgument, msg)
	}
	return st.Err()
}
