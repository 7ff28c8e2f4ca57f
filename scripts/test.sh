#!/usr/bin/env bash
# The whole test suite, as CI runs it on a fresh machine: formatting, vet,
# staticcheck, then every unit and end-to-end test (the end-to-end tests build
# and start the real rosetta binary and the example upstream themselves).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:$(go env GOPATH)/bin"
export DEBIAN_FRONTEND=noninteractive

echo "== gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' | grep -v '\.pb\.go$' | grep -v '\.pb\.gw\.go$'))
if [ -n "$unformatted" ]; then
  echo "gofmt would change:"; echo "$unformatted"; exit 1
fi

echo "== go vet"
go vet ./...

echo "== staticcheck"
if ! command -v staticcheck >/dev/null; then
  go install honnef.co/go/tools/cmd/staticcheck@v0.8.2
fi
staticcheck ./...

echo "== browser test peers (chromium, the page's npm packages)"
if ! command -v chromium >/dev/null; then
  apt-get update && apt-get install -y chromium
fi
(cd test/browser && npm ci --no-audit --no-fund)

echo "== gRPC client peers (@grpc/grpc-js)"
(cd test/grpcjs && npm ci --no-audit --no-fund)

echo "== OpenAPI client peers (an OpenAPI 3.1 schema validator, openapi-client-axios)"
(cd test/openapi && npm ci --no-audit --no-fund)

echo "== MQTT test peers (mosquitto, mosquitto_pub, mosquitto_sub)"
if ! command -v mosquitto >/dev/null && [ ! -x /usr/sbin/mosquitto ] || ! command -v mosquitto_pub >/dev/null; then
  apt-get update && apt-get install -y mosquitto mosquitto-clients
fi
export PATH="$PATH:/usr/sbin"

echo "== rate-limit test peer (redis-server)"
if ! command -v redis-server >/dev/null; then
  apt-get update && apt-get install -y redis-server
fi

echo "== discovery test peers (dnsmasq, etcd)"
if ! command -v dnsmasq >/dev/null && [ ! -x /usr/sbin/dnsmasq ] || ! command -v etcd >/dev/null; then
  apt-get update && apt-get install -y dnsmasq etcd-server
fi

echo "== metrics test peer (prometheus)"
if ! command -v prometheus >/dev/null; then
  apt-get update && apt-get install -y prometheus
fi

echo "== go test"
go test -count=1 -timeout 15m ./...

# The packages with concurrency again under the race detector; the
# end-to-end tests then build and start race-enabled binaries, so a race in
# the gateway fails the test whose traffic found it (the process exits 66).
echo "== go test -race (router, gateway, transports, security, end-to-end)"
go test -race -count=1 -timeout 15m ./router/... ./gateway/... ./transports/... ./security/... ./test/

echo "== Connect conformance suite (connectrpc.com/conformance, server mode; about two minutes)"
./scripts/conformance.sh

echo "== fuzz (security: token parsing, Forwarded parser, header forwarding; short runs)"
go test -run '^$' -fuzz '^FuzzVerify$' -fuzztime 10s ./security/jwt
go test -run '^$' -fuzz '^FuzzParseForwarded$' -fuzztime 10s ./security/clientip
go test -run '^$' -fuzz '^FuzzForwarding$' -fuzztime 10s ./transports/ingress
go test -run '^$' -fuzz '^FuzzRESTForwarding$' -fuzztime 10s ./transports/rest

echo "== fuzz (translate: the JSON transcoder against protojson; the validation decoders against dynamicpb; short runs)"
go test -run '^$' -fuzz '^FuzzDecodeJSON$' -fuzztime 10s ./translate
go test -run '^$' -fuzz '^FuzzEncodeJSON$' -fuzztime 10s ./translate
go test -run '^$' -fuzz '^FuzzDecodeRequest$' -fuzztime 10s ./translate
go test -run '^$' -fuzz '^FuzzWireValid$' -fuzztime 10s ./translate
go test -run '^$' -fuzz '^FuzzDecodersAgree$' -fuzztime 10s ./security/validate

echo "== fuzz (the other parsers: path templates, gRPC-Web and Connect requests, WebSocket messages, MQTT rules and packet framing, the configuration; short runs)"
go test -run '^$' -fuzz '^FuzzParseTemplate$' -fuzztime 5s ./translate
go test -run '^$' -fuzz '^FuzzGRPCWebRequest$' -fuzztime 5s ./transports/grpcweb
go test -run '^$' -fuzz '^FuzzMessages$' -fuzztime 10s ./transports/websocket
go test -run '^$' -fuzz '^FuzzRuleDecode$' -fuzztime 5s ./transports/mqtt
go test -run '^$' -fuzz '^FuzzSizeGuard$' -fuzztime 5s ./transports/mqtt
go test -run '^$' -fuzz '^FuzzParseConfig$' -fuzztime 5s ./gateway
