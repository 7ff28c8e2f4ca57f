#!/usr/bin/env bash
# Long fuzzing runs, one target after another (not in CI; see FUZZING.md).
# Usage: scripts/fuzz-long.sh [DURATION] [PKG:FuzzName ...]
# Without targets it runs every Fuzz function of the module. Each run uses
# one worker (-parallel 1) so as to leave the machine's other cores alone;
# its log (execs, new corpus entries, failures) goes to fuzz-logs/.
set -uo pipefail
cd "$(dirname "$0")/.."
duration=${1:-10m}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  while IFS=: read -r file _ rest; do
    name=$(sed -E 's/^func (Fuzz[A-Za-z0-9_]*).*/\1/' <<<"$rest")
    targets+=("./$(dirname "$file"):$name")
  done < <(grep -rn --include='*_test.go' '^func Fuzz' . | grep -v '^./bench/')
fi
mkdir -p fuzz-logs
for t in "${targets[@]}"; do
  pkg=${t%%:*} name=${t##*:}
  log="fuzz-logs/$name.log"
  echo "== $pkg $name for $duration ($(date -u +%H:%M:%S))"
  go test -run '^$' -fuzz "^$name\$" -fuzztime "$duration" -parallel 1 "$pkg" >"$log" 2>&1
  echo "   exit $? — $(grep -E '^fuzz: elapsed' "$log" | tail -1)"
  grep -E 'new interesting|FAIL|failing input' "$log" | tail -3
done
