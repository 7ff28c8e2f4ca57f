#!/usr/bin/env bash
# Generates the Go code and the descriptor set for the example protos.
#
# Needs protoc (3.21 or later) on PATH with its include directory of
# well-known types, google/protobuf/*.proto (on Debian: apt-get install
# protobuf-compiler libprotobuf-dev). The googleapis imports (google/api/*,
# google/rpc/*) are not vendored: they come from the genproto Go packages as
# a FileDescriptorSet written by scripts/protodeps and handed to protoc with
# --descriptor_set_in. The Go plugins are installed, at the versions pinned
# below, when they are missing or at another version.
#
# The committed outputs were made with protoc 3.21.12: another protoc
# version changes the version line of the generated headers and the copies
# of google/protobuf/*.proto inside proto/library.binpb.
#
# Outputs, committed:
#   proto/example/library/v1/library.pb.go       (protoc-gen-go)
#   proto/example/library/v1/library_grpc.pb.go  (protoc-gen-go-grpc)
#   proto/example/library/v1/library.pb.gw.go    (protoc-gen-grpc-gateway)
#   proto/library.binpb                          (descriptor set, full closure)
#   proto/example/order/v1/order.pb.go           (protoc-gen-go)
#   proto/example/order/v1/order_grpc.pb.go      (protoc-gen-go-grpc)
#   proto/order.binpb                            (descriptor set, full closure)
#   proto/example/iot/v1/iot.pb.go, iot_grpc.pb.go (protoc-gen-go, -go-grpc)
#   proto/iot.binpb                              (descriptor set, full closure)
set -euo pipefail

cd "$(dirname "$0")/.."

PROTOC_GEN_GO_VERSION=v1.36.12
PROTOC_GEN_GO_GRPC_VERSION=v1.6.2
PROTOC_GEN_GRPC_GATEWAY_VERSION=v2.33.0

GOBIN="$(go env GOBIN)"
if [ -z "$GOBIN" ]; then
	GOBIN="$(go env GOPATH)/bin"
fi
export PATH="$GOBIN:$PATH"

# install_plugin NAME MODULE/PATH VERSION installs NAME at VERSION unless that
# version is already on PATH, so the generated headers stay reproducible.
install_plugin() {
	if ! "$1" --version 2>/dev/null | grep -qF "${3#v}"; then
		echo "installing $2@$3" >&2
		go install "$2@$3"
	fi
}
install_plugin protoc-gen-go google.golang.org/protobuf/cmd/protoc-gen-go "$PROTOC_GEN_GO_VERSION"
install_plugin protoc-gen-go-grpc google.golang.org/grpc/cmd/protoc-gen-go-grpc "$PROTOC_GEN_GO_GRPC_VERSION"
install_plugin protoc-gen-grpc-gateway github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-grpc-gateway "$PROTOC_GEN_GRPC_GATEWAY_VERSION"

deps="$(mktemp)"
trap 'rm -f "$deps"' EXIT
go run ./scripts/protodeps -o "$deps"

protos=(example/library/v1/library.proto)

protoc \
	--proto_path=proto \
	--descriptor_set_in="$deps" \
	--go_out=proto --go_opt=paths=source_relative \
	--go-grpc_out=proto --go-grpc_opt=paths=source_relative \
	--grpc-gateway_out=proto --grpc-gateway_opt=paths=source_relative \
	--include_imports \
	--descriptor_set_out=proto/library.binpb \
	"${protos[@]}"

# The IoT example has a descriptor set of its own, so that library.binpb
# stays the library's closure only.
protoc \
	--proto_path=proto \
	--descriptor_set_in="$deps" \
	--go_out=proto --go_opt=paths=source_relative \
	--go-grpc_out=proto --go-grpc_opt=paths=source_relative \
	--include_imports \
	--descriptor_set_out=proto/iot.binpb \
	example/iot/v1/iot.proto

# The order example has no HTTP rules (Rosetta composes its own route from
# it), so no grpc-gateway code, and its own descriptor set.
protoc \
	--proto_path=proto \
	--descriptor_set_in="$deps" \
	--go_out=proto --go_opt=paths=source_relative \
	--go-grpc_out=proto --go-grpc_opt=paths=source_relative \
	--include_imports \
	--descriptor_set_out=proto/order.binpb \
	example/order/v1/order.proto

if [ -n "$(gofmt -l proto)" ]; then
	echo "generated code is not gofmt-clean: $(gofmt -l proto | tr '\n' ' ')" >&2
	exit 1
fi
echo "generated: ${protos[*]} example/iot/v1/iot.proto example/order/v1/order.proto -> proto/, proto/library.binpb, proto/iot.binpb, proto/order.binpb" >&2
