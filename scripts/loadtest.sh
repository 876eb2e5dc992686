#!/usr/bin/env bash
# Load test of the intake: release modbridge with Redis dedupe (its own
# redis-server on a free port), then examples/loadgen on the same machine.
#   scripts/loadtest.sh [SECONDS]
# Prints: max sustained rate (closed loop), p99 at half that rate (open loop),
# and the server's RSS. Loopback only; every loop is bounded.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
cargo build --release --quiet --bin modbridge --example loadgen
port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
rport=$(port); mport=$(port)
tmp=$(mktemp -d)
redis-server --port "$rport" --bind 127.0.0.1 --save "" --appendonly no --dir "$tmp" --daemonize yes --pidfile "$tmp/redis.pid" >/dev/null
trap 'kill $(cat "$tmp/redis.pid") 2>/dev/null; kill $srv 2>/dev/null; rm -rf "$tmp"' EXIT
sleep 0.3
export CATIVA_WEBHOOK_SECRET=whsec_10adc3a7f9b2d4e6a8c0f1b3d5e7a9c2e4f6b8d0a1c3e5f7b9d2a4c6e8f0b1d3
REDIS_URL="redis://127.0.0.1:$rport/" RUST_LOG=warn MODBRIDGE_LISTEN="127.0.0.1:$mport" \
  ./target/release/modbridge serve --dry-run >/dev/null 2>"$tmp/serve.err" &
srv=$!
for _ in $(seq 50); do curl -fs "http://127.0.0.1:$mport/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
rss() { awk '/VmRSS/{print $2/1024 " MB"}' /proc/$srv/status; }
echo "idle RSS: $(rss)"
url="http://127.0.0.1:$mport/webhooks/cativa"
echo "== closed loop, 64 connections, ${secs}s (maximum sustained rate)"
out=$(./target/release/examples/loadgen --url "$url" --seconds "$secs" --concurrency 64)
echo "$out"
max=$(echo "$out" | sed -n 's/.*ok_rate=\([0-9]*\).*/\1/p')
half=$((max / 2))
echo "RSS after: $(rss)"
echo "== open loop at ${half}/s (half the maximum), ${secs}s"
./target/release/examples/loadgen --url "$url" --seconds "$secs" --concurrency 32 --rate "$half"
echo "RSS after: $(rss)"
