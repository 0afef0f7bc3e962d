#!/usr/bin/env bash
# Cluster soak: three release syncroom nodes (--redis) behind nginx running
# deploy/nginx.conf (ports filled in), one redis-server, and syncroom-bench's
# listeners through nginx with a command a second, for a while. Every 30 s it
# samples each node's memory (VmRSS), open files and open streams, Redis's
# used memory, and the events the nodes emitted; at the end the load tool
# reports every delivery (lost and duplicated counts; it exits non-zero on any loss).
#
#   bench/soak-cluster.sh [SECONDS] [LISTENERS] [ROOMS]   (defaults: 3600 s, 2000, 4)
#
# SYNCROOM_ARGS adds node flags. Needs redis-server and nginx (apt-get install
# redis-server nginx); everything runs as this user from a mktemp directory.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

seconds="${1:-3600}"
listeners="${2:-2000}"
rooms="${3:-4}"
sample_every=30

cargo build --quiet --release -p syncroom -p syncroom-bench
target_dir="$(scripts/target-dir)"
nginx_bin="$(command -v nginx || echo /usr/sbin/nginx)"
work="$(mktemp -d -t syncroom-soak-cluster.XXXXXX)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

free_ports() {
  python3 -c 'import socket,sys
socks=[socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))' "$1"
}
read -r redis_port lb_port p1 p2 p3 <<<"$(free_ports 5)"
node_ports=("$p1" "$p2" "$p3")

redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no --dir "$work" \
  >"$work/redis.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.1; done

node_pids=()
for port in "${node_ports[@]}"; do
  # Behind nginx every client is 127.0.0.x: the per-address limits are raised.
  # The load tool does not reconnect (a browser's EventSource does, with
  # Last-Event-ID), so the streams' largest age (--max-stream-age, 30 min by
  # default) is raised past the run: else every stream ends at about 30 min. A
  # stream ends at that age jittered down by up to 15 %: twice the run is past it.
  # shellcheck disable=SC2086
  RUST_LOG=warn "$target_dir/release/syncroom" --listen "127.0.0.1:$port" \
    --redis "redis://127.0.0.1:$redis_port" --trust-proxy --max-stream-age "$((2 * seconds + 600))" \
    --max-streams-per-client 1000000 --commands-per-minute 1000000 --commands-burst 100000 \
    ${SYNCROOM_ARGS:-} >"$work/node-$port.log" 2>&1 &
  pids+=($!)
  node_pids+=($!)
done
for port in "${node_ports[@]}"; do
  for _ in $(seq 1 100); do
    curl -fs "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
    sleep 0.1
  done
done

# deploy/nginx.conf as shipped, only its ports replaced.
mkdir -p "$work/nginx/tmp"
sed -e "s/listen 127.0.0.1:8080;/listen 127.0.0.1:$lb_port;/" \
  -e "s/server 127.0.0.1:8081 /server 127.0.0.1:$p1 /" \
  -e "s/server 127.0.0.1:8082 /server 127.0.0.1:$p2 /" \
  -e "s/server 127.0.0.1:8083 /server 127.0.0.1:$p3 /" \
  deploy/nginx.conf >"$work/nginx/nginx.conf"
"$nginx_bin" -p "$work/nginx" -e stderr -c "$work/nginx/nginx.conf" 2>"$work/nginx.log" &
pids+=($!)
for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$lb_port/healthz" && break; sleep 0.1; done

echo "soak-cluster: $listeners listeners in $rooms rooms through nginx 127.0.0.1:$lb_port," \
  "one command a second for $seconds s; nodes ${node_ports[*]} (pids ${node_pids[*]}), redis $redis_port"
"$target_dir/release/syncroom-bench" --addr "127.0.0.1:$lb_port" \
  --listeners "$listeners" --rooms "$rooms" --events "$seconds" --interval-ms 1000 \
  >"$work/bench.txt" 2>&1 &
bench_pid=$!

events_total() {
  local total=0 port n
  for port in "${node_ports[@]}"; do
    n="$(curl -fs "http://127.0.0.1:$port/metrics" | awk '/^syncroom_events_total/ {s += $2} END {print s + 0}')"
    total=$((total + ${n%.*}))
  done
  echo "$total"
}
sample() {
  local line pid port streams
  line="$(printf '%7ss' "$(($(date +%s) - start))")"
  for i in 0 1 2; do
    pid="${node_pids[$i]}"
    port="${node_ports[$i]}"
    streams="$(curl -fs "http://127.0.0.1:$port/metrics" | awk '/^syncroom_connections / {print $2}')"
    line+="$(printf ' %9s %5s %6s' "$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status")" \
      "$(ls "/proc/$pid/fd" | wc -l)" "${streams:-?}")"
  done
  line+="$(printf ' %10s %9s' \
    "$(redis-cli -p "$redis_port" info memory | awk -F: '/^used_memory:/ {print int($2 / 1024)}')" \
    "$(events_total)")"
  echo "$line$1"
}

printf '%8s' "elapsed"
for i in 1 2 3; do printf ' %9s %5s %6s' "n${i}_rss_k" "fds" "stream"; done
printf ' %10s %9s\n' "redis_kib" "events"
start=$(date +%s)
while kill -0 "$bench_pid" 2>/dev/null; do
  sample ""
  for _ in $(seq 1 "$sample_every"); do
    kill -0 "$bench_pid" 2>/dev/null || break
    sleep 1
  done
done
status=0
wait "$bench_pid" || status=$?
sample "   (after the listeners left)"
cat "$work/bench.txt"
exit "$status"
