#!/usr/bin/env bash
# The Connect conformance suite (connectrpc.com/conformance, server mode)
# against Rosetta, with the suite's reference server as Rosetta's gRPC h2c
# upstream: installs the runner and the reference server at the pinned
# version, builds rosetta and the server-under-test wrapper
# (test/conformance), and runs the cases test/conformance/config.yaml
# declares, once per protocol, printing each protocol's pass count.
# Any failing case fails the script. Extra arguments go to the runner
# (e.g. --run 'Basic/**' -v).
set -euo pipefail
cd "$(dirname "$0")/.."
version=v1.0.7
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
GOBIN="$bin" go install "connectrpc.com/conformance/cmd/connectconformance@$version" \
  "connectrpc.com/conformance/cmd/referenceserver@$version"
go build -o "$bin/rosetta" ./cmd/rosetta
go build -o "$bin/sut" ./test/conformance
protos=$(go mod download -json "connectrpc.com/conformance@$version" | sed -n 's/^\s*"Dir": "\(.*\)",$/\1/p')/proto
status=0
for p in CONNECT GRPC_WEB GRPC; do
  out="$bin/$p.txt"
  if "$bin/connectconformance" --mode server --conf test/conformance/config.yaml \
      --run "**/Protocol:PROTOCOL_$p/**" "$@" -- \
      "$bin/sut" -rosetta "$bin/rosetta" -reference "$bin/referenceserver" -protos "$protos" >"$out" 2>&1; then
    :
  else
    status=1
    grep -v '^time=' "$out" | grep -A12 '^FAILED' | head -200 || true
  fi
  echo "PROTOCOL_$p: $(tail -1 "$out")"
done
exit $status
