package main

import (
	"context"
	"strconv"
	"sync"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	iotv1 "github.com/rosettagw/rosetta/proto/example/iot/v1"
)

// devices is the DeviceService of the MQTT run: Record counts each device's
// readings and checks their order, GetDevice returns the count, so that the
// driver sees every message the gateway delivered, and no other.
type devices struct {
	iotv1.UnimplementedDeviceServiceServer
	all sync.Map // device ID → *device
}

// device is one device's count and the id of its last reading.
type device struct {
	mu       sync.Mutex
	readings int64
	last     int64
}

func (s *devices) get(id string) *device {
	if d, ok := s.all.Load(id); ok {
		return d.(*device)
	}
	d, _ := s.all.LoadOrStore(id, &device{})
	return d.(*device)
}

// Record counts a reading whose id is the device's sequence number: it
// must be one more than the last one recorded, else the call fails with
// FAILED_PRECONDITION (a message lost, repeated or reordered on the way).
func (s *devices) Record(_ context.Context, req *iotv1.RecordRequest) (*iotv1.RecordResponse, error) {
	seq, err := strconv.ParseInt(req.GetId(), 10, 64)
	if err != nil || req.GetDeviceId() == "" || req.GetReading().GetTemperature() != 20.5 {
		return nil, status.Errorf(codes.InvalidArgument, "not a bench reading: device %q, id %q", req.GetDeviceId(), req.GetId())
	}
	d := s.get(req.GetDeviceId())
	d.mu.Lock()
	defer d.mu.Unlock()
	if seq != d.last+1 {
		return nil, status.Errorf(codes.FailedPrecondition, "device %s: reading %d after %d", req.GetDeviceId(), seq, d.last)
	}
	d.last = seq
	d.readings++
	return &iotv1.RecordResponse{DeviceId: req.GetDeviceId(), Id: req.GetId(), Count: d.readings}, nil
}

// GetDevice returns how many readings the device recorded.
func (s *devices) GetDevice(_ context.Context, req *iotv1.GetDeviceRequest) (*iotv1.Device, error) {
	d := s.get(req.GetDeviceId())
	d.mu.Lock()
	defer d.mu.Unlock()
	return &iotv1.Device{DeviceId: req.GetDeviceId(), Readings: d.readings}, nil
}
