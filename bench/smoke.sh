#!/usr/bin/env bash
# Smoke run of the load tool against a real syncroom, two runs on one server:
# - 200 listeners over 2 rooms, 20 events to each room (4,000 deliveries);
# - many small rooms: 400 listeners over 100 rooms, 10 events to each
#   (4,000 deliveries), while a listener that reads nothing sits in a room of
#   its own whose events fill every buffer on the way (bench/slow_reader.py):
#   the room writes caught-up listeners' sockets itself and hands a stream that
#   pushes back to its own task, which falls behind and is resynced.
# Fails unless every listener got every event exactly once (lost=0,
# duplicated=0) and the slow reader's stream went on, resynced, to the room's
# last version. It asserts no time: latencies are printed, never checked.
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
# The tool is one address: its per-client limits are raised. A short
# per-listener buffer makes the slow reader fall a ring behind sooner.
RUST_LOG=info "$server" --listen 127.0.0.1:0 --log-format json \
  --commands-per-minute 1000000 --commands-burst 100000 --max-streams-per-client 100000 \
  --rooms-per-minute 100000 --rooms-burst 10000 --max-rooms-per-client 10000 \
  --listener-buffer 32 >"$work/server.log" 2>&1 &
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

# run NAME EXPECTED TOOL-ARGS...: one load tool run, every delivery exactly once.
run() {
  local name="$1" expected="$2"
  shift 2
  local status=0
  "$bench" --addr "$addr" --server-pid "$server_pid" "$@" --json >"$work/$name.json" || status=$?
  cat "$work/$name.json"
  if [ "$status" -ne 0 ]; then
    echo "bench smoke: syncroom-bench failed on $name (exit $status)" >&2
    exit 1
  fi
  # Belt and braces: the tool exits non-zero on any loss, but check the numbers too.
  for want in '"lost":0' '"duplicated":0' "\"expected\":$expected" "\"delivered\":$expected"; do
    if ! grep -q "$want" "$work/$name.json"; then
      echo "bench smoke: expected $want in the $name result" >&2
      exit 1
    fi
  done
}

echo "==> bench smoke: 200 listeners over 2 rooms, 20 events, against $addr"
run two-rooms 4000 --listeners 200 --rooms 2 --events 20 --publish all --interval-ms 10 --settle-ms 100

echo "==> bench smoke: 400 listeners over 100 rooms, 10 events each, and a reader that reads nothing"
python3 bench/slow_reader.py "$addr" 6000 >"$work/slow.out" 2>&1 &
slow_pid=$!
run many-rooms 4000 --listeners 400 --rooms 100 --events 1000 --room-prefix m \
  --interval-ms 2 --settle-ms 100
if ! wait "$slow_pid"; then
  cat "$work/slow.out" >&2
  echo "bench smoke: the slow reader's stream did not go on to the end" >&2
  exit 1
fi
cat "$work/slow.out"
echo "==> bench smoke: every listener got every event exactly once, the slow reader was resynced"
