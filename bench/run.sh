#!/usr/bin/env bash
# Builds Rosetta, the bench upstream, grpc-gateway's proxy and the vanguard
# transcoder, then runs bench/driver, which starts them on loopback, checks
# their answers and prints the markdown table. See BENCHMARKS.md.
#
#   bench/run.sh       the REST comparison (needs wrk and ghz, installed here)
#   bench/run.sh ws    Rosetta's WebSocket ingress: echo messages/s on
#                      bidirectional streams, memory per idle connection
#   bench/run.sh rpc   native gRPC through Rosetta against nginx's grpc_pass
#                      (ghz), Connect and gRPC-Web against vanguard (needs
#                      nginx and ghz, installed here)
#   bench/run.sh mqtt  QoS 1 messages/s through the MQTT bridge (one gRPC call
#                      each) against the embedded broker alone, and Mosquitto
#                      alone for reference (installed here)
#   bench/run.sh soak  the soak with faults (RELIABILITY.md): mixed load at
#                      half the measured capacity for SOAK_DURATION (30m)
#                      while replicas, Redis and Mosquitto are killed and a
#                      proxy adds latency and resets (needs redis-server and
#                      mosquitto, installed here); any SOAK_ARGS are passed on
#                      (e.g. "-rate 400 -fault-for 10s -fault-gap 20s")
#
# Settings (environment): BENCH_ROUNDS (3), BENCH_SECONDS (4) per measured
# run, BENCH_WARMUP (1) seconds before each, BENCH_CONCURRENCY (32; MQTT
# devices in the mqtt run),
# BENCH_IDLE (10000, idle WebSocket connections of the ws run),
# BENCH_KEEP=1 keeps the scratch folder (configs, logs).
set -euo pipefail

mode="${1:-rest}"
case "$mode" in
rest | ws | rpc | mqtt | soak) ;;
*) echo "usage: $0 [rest|ws|rpc|mqtt|soak]" >&2; exit 2 ;;
esac

bench="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$bench")"
ghz_version=v0.121.0

work="$(mktemp -d)"
cleanup() {
	if [ "${BENCH_KEEP:-}" = 1 ]; then echo "kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT

if [ "$mode" = ws ]; then
	# One descriptor per idle connection in the driver and in the gateway.
	ulimit -n "$(ulimit -Hn)"
	echo "building" >&2
	(cd "$root" && go build -o "$work/bin/rosetta" ./cmd/rosetta)
	(cd "$bench" && go build -o "$work/bin/" ./upstream ./driver)
	"$work/bin/driver" -mode ws -bin "$work/bin" -work "$work" \
		-descriptors "$root/proto/library.binpb" \
		-build "$(git -C "$root" describe --always --dirty 2>/dev/null || echo unknown)" \
		-rounds "${BENCH_ROUNDS:-3}" -seconds "${BENCH_SECONDS:-4}" \
		-warmup "${BENCH_WARMUP:-1}" -concurrency "${BENCH_CONCURRENCY:-32}" \
		-idle "${BENCH_IDLE:-10000}"
	exit
fi

# apt_install PACKAGE installs a Debian package.
apt_install() {
	echo "installing $1 with apt-get" >&2
	apt-get install -y "$1" >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y "$1" >/dev/null; }
}

if [ "$mode" = mqtt ]; then
	# mosquitto is in /usr/sbin, which a user's PATH may not hold.
	mosquitto="$(PATH="$PATH:/usr/sbin:/sbin" command -v mosquitto || true)"
	if [ -z "$mosquitto" ]; then
		apt_install mosquitto
		mosquitto="$(PATH="$PATH:/usr/sbin:/sbin" command -v mosquitto)"
	fi
	echo "building" >&2
	(cd "$root" && go build -o "$work/bin/rosetta" ./cmd/rosetta)
	(cd "$bench" && go build -o "$work/bin/" ./upstream ./driver)
	"$work/bin/driver" -mode mqtt -bin "$work/bin" -work "$work" \
		-descriptors "$root/proto/iot.binpb" -mosquitto "$mosquitto" \
		-build "$(git -C "$root" describe --always --dirty 2>/dev/null || echo unknown)" \
		-rounds "${BENCH_ROUNDS:-3}" -seconds "${BENCH_SECONDS:-4}" \
		-warmup "${BENCH_WARMUP:-1}" -concurrency "${BENCH_CONCURRENCY:-32}"
	exit
fi
if [ "$mode" = soak ]; then
	command -v redis-server >/dev/null || apt_install redis-server
	PATH="$PATH:/usr/sbin" command -v mosquitto >/dev/null || apt_install mosquitto
	echo "building" >&2
	(cd "$root" && go build -o "$work/bin/rosetta" ./cmd/rosetta)
	(cd "$bench" && go build -o "$work/bin/" ./soak)
	# shellcheck disable=SC2086 # SOAK_ARGS is split on purpose
	"$work/bin/soak" -rosetta "$work/bin/rosetta" -proto "$root/proto" -work "$work" \
		-build "$(git -C "$root" describe --always --dirty 2>/dev/null || echo unknown)" \
		-duration "${SOAK_DURATION:-30m}" ${SOAK_ARGS:-}
	exit
fi
if [ "$mode" = rest ] && ! command -v wrk >/dev/null; then
	apt_install wrk
fi
# nginx is in /usr/sbin, which a user's PATH may not hold.
nginx="$(PATH="$PATH:/usr/sbin:/sbin" command -v nginx || true)"
if [ "$mode" = rpc ] && [ -z "$nginx" ]; then
	apt_install nginx
	nginx="$(PATH="$PATH:/usr/sbin:/sbin" command -v nginx)"
fi
ghz="${XDG_CACHE_HOME:-$HOME/.cache}/rosetta-bench/ghz@$ghz_version/ghz"
if [ ! -x "$ghz" ]; then
	echo "installing ghz $ghz_version with go install" >&2
	GOBIN="$(dirname "$ghz")" go install "github.com/bojand/ghz/cmd/ghz@$ghz_version"
fi

echo "building" >&2
(cd "$root" && go build -o "$work/bin/rosetta" ./cmd/rosetta)
(cd "$bench" && go build -o "$work/bin/" ./upstream ./grpcgateway ./vanguard ./driver)

"$work/bin/driver" -mode "$mode" -bin "$work/bin" -work "$work" \
	-descriptors "$root/proto/library.binpb" -wrk wrk -ghz "$ghz" -nginx "${nginx:-nginx}" \
	-build "$(git -C "$root" describe --always --dirty 2>/dev/null || echo unknown)" \
	-rounds "${BENCH_ROUNDS:-3}" -seconds "${BENCH_SECONDS:-4}" \
	-warmup "${BENCH_WARMUP:-1}" -concurrency "${BENCH_CONCURRENCY:-32}"
