#!/usr/bin/env bash
# Soak run: a release syncroom with N listeners in one room and a command every
# second for a while, sampling the server's memory (VmRSS) and open files as it
# goes. Memory that is flat from the first sample to the last is what this shows;
# the load tool checks every delivery (it exits non-zero on any loss).
#
#   bench/soak.sh [SECONDS] [LISTENERS]      (defaults: 600 s, 2000 listeners)
#
# SYNCROOM_ARGS adds server flags. A room keeps its last --history frames (1024 by
# default) for resuming, so memory grows by one frame a command until the ring is
# full; `SYNCROOM_ARGS="--history 64"` fills it within the first minute.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

seconds="${1:-600}"
listeners="${2:-2000}"
sample_every=30

cargo build --quiet --release -p syncroom -p syncroom-bench
target_dir="${CARGO_TARGET_DIR:-target}"
work="$(mktemp -d -t syncroom-soak.XXXXXX)"
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

# The load tool does not reconnect, so streams may live past the run
# (--max-stream-age, 30 min by default, would end them all). A stream ends at that
# age jittered down by up to 15 %: twice the run is past the jitter.
# shellcheck disable=SC2086
RUST_LOG=warn,syncroom=info "$target_dir/release/syncroom" --listen 127.0.0.1:0 --log-format json \
  --max-stream-age "$((2 * seconds + 600))" \
  ${SYNCROOM_ARGS:-} >"$work/server.log" 2>&1 &
server_pid=$!
addr=""
for _ in $(seq 1 100); do
  addr="$(grep -o '"addr":"[0-9.]*:[0-9]*"' "$work/server.log" | head -n 1 | cut -d'"' -f4 || true)"
  [ -n "$addr" ] && break
  sleep 0.1
done
[ -n "$addr" ] || { echo "soak: the server did not start" >&2; cat "$work/server.log" >&2; exit 1; }

echo "soak: $listeners listeners, one command a second for $seconds s, against $addr (pid $server_pid)"
"$target_dir/release/syncroom-bench" --addr "$addr" --server-pid "$server_pid" \
  --listeners "$listeners" --rooms 1 --events "$seconds" --interval-ms 1000 >"$work/bench.txt" 2>&1 &
bench_pid=$!

printf '%8s %10s %8s\n' "elapsed" "rss_kib" "fds"
start=$(date +%s)
while kill -0 "$bench_pid" 2>/dev/null; do
  rss="$(awk '/^VmRSS/ {print $2}' "/proc/$server_pid/status")"
  fds="$(ls "/proc/$server_pid/fd" | wc -l)"
  printf '%7ss %10s %8s\n' "$(( $(date +%s) - start ))" "$rss" "$fds"
  for _ in $(seq 1 "$sample_every"); do
    kill -0 "$bench_pid" 2>/dev/null || break
    sleep 1
  done
done
status=0
wait "$bench_pid" || status=$?
printf '%7ss %10s %8s   (after the listeners left)\n' "$(( $(date +%s) - start ))" \
  "$(awk '/^VmRSS/ {print $2}' "/proc/$server_pid/status")" "$(ls "/proc/$server_pid/fd" | wc -l)"
cat "$work/bench.txt"
exit "$status"
