#!/usr/bin/env bash
# What an idle room costs: starts a fresh syncroom, reads its RSS, creates N
# empty rooms (nobody listening, no command) over one keep-alive connection,
# waits a moment and reads the RSS again. Prints the delta per room.
#
#   bench/idle_rooms.sh [N]        (default 5000)
#
# SYNCROOM_BIN picks the binary (default: the release build of this checkout);
# SYNCROOM_ARGS adds flags. The room-creation limits are raised here: the rooms
# all come from one address.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
n="${1:-5000}"
port="${PORT:-18170}"
target_dir="${CARGO_TARGET_DIR:-target}"
bin="${SYNCROOM_BIN:-$target_dir/release/syncroom}"
if [ -z "${SYNCROOM_BIN:-}" ]; then cargo build --quiet --release -p syncroom; fi

# shellcheck disable=SC2086
RUST_LOG=warn "$bin" --listen "127.0.0.1:$port" --max-rooms $((n + 100)) \
  --commands-per-minute 10000000 --commands-burst 1000000 \
  --rooms-per-minute 10000000 --rooms-burst 1000000 --max-rooms-per-client 1000000 \
  ${SYNCROOM_ARGS:-} >/dev/null 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  sleep 0.1
done

python3 - "$port" "$n" "$pid" <<'PY'
import http.client, json, sys, time
port, n, pid = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]

def rss_kib():
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])

conn = http.client.HTTPConnection("127.0.0.1", port)
def create(room_id):
    conn.request("POST", "/api/rooms", json.dumps({"room_id": room_id}),
                 {"Content-Type": "application/json"})
    response = conn.getresponse()
    response.read()
    if response.status != 201:
        sys.exit(f"idle_rooms: creating {room_id} answered {response.status}")

# Warm up allocator arenas and the runtime with a few rooms first.
for i in range(50):
    create(f"warm{i}")
time.sleep(1)
before = rss_kib()
for i in range(n):
    create(f"idle{i}")
time.sleep(2)
after = rss_kib()
per_room = (after - before) * 1024 / n
print(f"RESULT idle_rooms n={n} rss_before={before}KiB rss_after={after}KiB per_room={per_room:.0f}B")
PY
