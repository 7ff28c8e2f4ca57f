#!/usr/bin/env bash
# The whole test suite, as CI runs it on a fresh machine: formatting, vet,
# staticcheck, then every unit and end-to-end test (the end-to-end tests build
# and start the real rosetta binary and the example upstream themselves).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:$(go env GOPATH)/bin"

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

echo "== go test"
go test -count=1 -timeout 15m ./...
