#!/usr/bin/env bash
# Smoke run of the load tool against a real syncroom: 200 listeners over 2 rooms,
# 20 events to each room (4,000 deliveries). Fails unless every listener got every
# event exactly once (lost=0, duplicated=0). It asserts no time: latencies are
# printed, never checked.
#
#   bench/smoke.sh                    (debug build; SMOKE_PROFILE=release for release)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

profile="${SMOKE_PROFILE:-debug}"
profile_flag=()
if [ "$profile" = release ]; then profile_flag=(--release); fi
echo "==> bench smoke: building syncroom and syncroom-bench ($profile)"
cargo build --quiet "${profile_flag[@]}" -p syncroom -p syncroom-bench
# Where cargo put them (CARGO_TARGET_DIR, a .cargo/config.toml, or ./target).
target_dir="$(scripts/target-dir)"
server="$target_dir/$profile/syncroom"
bench="$target_dir/$profile/syncroom-bench"

work="$(mktemp -d -t syncroom-smoke.XXXXXX)"
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

# Port 0: the kernel picks a free port and the server logs the address it got.
RUST_LOG=info "$server" --listen 127.0.0.1:0 --log-format json >"$work/server.log" 2>&1 &
server_pid=$!
addr=""
for _ in $(seq 1 300); do
  addr="$(grep -o '"addr":"[0-9.]*:[0-9]*"' "$work/server.log" | head -n 1 | cut -d'"' -f4 || true)"
  if [ -n "$addr" ]; then break; fi
  if ! kill -0 "$server_pid" 2>/dev/null; then
    echo "bench smoke: the server exited:" >&2
    cat "$work/server.log" >&2
    exit 1
  fi
  sleep 0.1
done
if [ -z "$addr" ]; then
  echo "bench smoke: the server did not report its address:" >&2
  cat "$work/server.log" >&2
  exit 1
fi

echo "==> bench smoke: 200 listeners over 2 rooms, 20 events, against $addr"
status=0
"$bench" --addr "$addr" --server-pid "$server_pid" --listeners 200 --rooms 2 \
  --events 20 --publish all --interval-ms 10 --settle-ms 100 --json >"$work/result.json" || status=$?
cat "$work/result.json"
if [ "$status" -ne 0 ]; then
  echo "bench smoke: syncroom-bench failed (exit $status)" >&2
  exit 1
fi
# Belt and braces: the tool exits non-zero on any loss, but check the numbers too.
for want in '"lost":0' '"duplicated":0' '"expected":4000' '"delivered":4000'; do
  if ! grep -q "$want" "$work/result.json"; then
    echo "bench smoke: expected $want in the result" >&2
    exit 1
  fi
done
echo "==> bench smoke: every listener got every event exactly once"
