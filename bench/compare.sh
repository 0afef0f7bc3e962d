#!/usr/bin/env bash
# syncroom against nginx + nchan, side by side, the way BENCHMARKS.md reports it:
# each scenario run REPS times, the servers in turn, each run against a freshly
# started server (so memory per listener is measured from a cold start). syncroom
# runs twice: as shipped (one worker thread per core) and with --threads 1, the
# same CPU budget as nchan's single nginx worker ("syncroom-1t").
# Prints every run's RESULT line, then a table of medians with their spread, and
# keeps the JSON of every run in the output directory.
#
#   bench/compare.sh [REPS] [SCENARIO...]     (default: 3 reps, every scenario)
#
# Scenarios (ROOMSxLISTENERS):
#   1x1k 1x10k 100x10k 1x19k   one command at a time, below saturation
#   1000x10k   1,000 rooms x 10 listeners, a command every 2 ms round-robin:
#              what a command costs apart from its deliveries
#   chat200    one room of 200 listeners, 50 chat messages a second
#   join10k    10,000 listeners joining 1,000 rooms as fast as the tool connects:
#              server CPU per join, snapshots and presence included
#   redis100x10k  syncroom only: 3 nodes and one redis-server, 100 rooms x 100
#              listeners spread over the nodes; Redis CPU and commands per command
#   saturation 10 rooms x 1,000 listeners at 14, 10 and 7 ms
# The measured publish window starts 3 s after the last listener connected
# (--settle-ms 3000), so connect-time work is not counted as fan-out.
# After the runs, bench/summarize.py prints the tables and a fitted cost model.
# Needs nginx and the Debian nchan module (apt-get install -y nginx
# libnginx-mod-nchan), redis-server for redis100x10k, and python3 for the table.
# SYNCROOM_ARGS adds flags to syncroom (e.g. SYNCROOM_ARGS="--threads 1");
# OUT names the output directory (default: a new one under /tmp).
#
# Old build against new (A/B): BASE=<git revision> builds that revision's syncroom
# as well (in a scratch worktree, its own target directory) and runs it as
# "syncroom-base" in turn with this checkout's build, so both meet the same machine:
#   BASE=v0.3.0 bench/compare.sh 3 100x10k 1000x10k
# TARGETS picks the servers and their order in the first rep (later reps rotate it);
# the default is "syncroom syncroom-1t nchan", or "syncroom syncroom-base nchan"
# with BASE. Any name ending in -1t runs with --threads 1.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

reps="${1:-3}"
shift || true
scenarios=("$@")
if [ "${#scenarios[@]}" -eq 0 ]; then
  scenarios=(1x1k 1x10k 100x10k 1x19k 1000x10k chat200 join10k redis100x10k saturation)
fi
out="${OUT:-$(mktemp -d -t syncroom-compare.XXXXXX)}"
mkdir -p "$out"

cargo build --quiet --release -p syncroom -p syncroom-bench
target_dir="$(scripts/target-dir)"
bench="$target_dir/release/syncroom-bench"
syncroom_bin="$target_dir/release/syncroom"
base_bin=""
if [ -n "${BASE:-}" ]; then
  base_rev="$(git rev-parse --short "$BASE^{commit}")"
  base_bin="$target_dir/base-$base_rev/release/syncroom"
  if [ ! -x "$base_bin" ]; then
    base_tree="$(mktemp -d -t syncroom-base.XXXXXX)"
    git worktree add --quiet --detach "$base_tree" "$base_rev"
    echo "compare: building syncroom at $base_rev (BASE) in $base_tree"
    (cd "$base_tree" && CARGO_TARGET_DIR="$target_dir/base-$base_rev" cargo build --quiet --release -p syncroom)
    git worktree remove --force "$base_tree"
  fi
  default_targets="syncroom syncroom-base nchan"
else
  default_targets="syncroom syncroom-1t nchan"
fi
read -r -a targets <<<"${TARGETS:-$default_targets}"
syncroom_port=18180
nchan_port=18190
redis_port=18179
settle="--settle-ms 3000"

# name -> tool arguments. Intervals leave each server time to deliver one event
# before the next (below saturation), so latency is fan-out, not a backlog.
scenario_args() {
  case "$1" in
    1x1k) echo "-n 1000 -r 1 -m 100 --interval-ms 50 $settle" ;;
    1x10k) echo "-n 10000 -r 1 -m 20 --interval-ms 300 $settle" ;;
    100x10k) echo "-n 10000 -r 100 -m 1000 --interval-ms 10 $settle" ;;
    1x19k) echo "-n 19500 -r 1 -m 12 --interval-ms 600 $settle" ;;
    1000x10k) echo "-n 10000 -r 1000 -m 5000 --interval-ms 2 $settle" ;;
    chat200) echo "-n 200 -r 1 -m 500 --interval-ms 20 --command chat $settle" ;;
    join10k) echo "-n 10000 -r 1000 -m 1000 --interval-ms 1 --connect-concurrency 1024 $settle" ;;
    redis100x10k) echo "-n 10000 -r 100 -m 1000 --interval-ms 10 $settle" ;;
    # Saturation: 10 rooms x 1,000 listeners, one command every I ms in turn,
    # offered 1,000 deliveries a tick; the sweep finds the best rate with p99 <= 100 ms.
    sat-*) echo "-n 10000 -r 10 -m 200 --interval-ms ${1#sat-} $settle" ;;
    *) echo "unknown scenario $1" >&2; return 1 ;;
  esac
}

pids=()
stop_servers() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  pids=()
}
trap stop_servers EXIT

wait_port() { # port: wait until something listens there
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "compare: nothing listening on port $1" >&2
  return 1
}

# Every per-address limit raised: the tool is one address (127.0.0.x). The
# room-creation limits exist from the release that added them on.
syncroom_limits=(--max-streams-per-client 1000000 --commands-per-minute 10000000 --commands-burst 1000000
  --chat-per-minute 60000 --chat-burst 10000 --max-rooms 100000)
if "$syncroom_bin" --help | grep -q -- --rooms-per-minute; then
  syncroom_limits+=(--rooms-per-minute 10000000 --rooms-burst 1000000 --max-rooms-per-client 1000000
    --room-chat-per-minute 600000 --room-chat-burst 100000)
fi

# The binary and extra flags of a syncroom target: a -base target is the BASE
# build, a -1t target runs with one worker thread.
server_bin() { case "$1" in syncroom-base*) echo "$base_bin" ;; *) echo "$syncroom_bin" ;; esac; }
threads_of() { case "$1" in *-1t) echo "--threads 1" ;; esac; }

# redis100x10k: a redis-server and three syncroom nodes sharing rooms through it.
run_redis() { # target rep
  local target="$1" rep="$2" addrs=() node port threads
  threads="$(threads_of "$target")"
  rm -rf "$out/redis" && mkdir -p "$out/redis"
  redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no \
    --dir "$out/redis" >"$out/redis.log" 2>&1 &
  pids+=($!)
  wait_port "$redis_port"
  for node in 1 2 3; do
    port=$((syncroom_port + node))
    # shellcheck disable=SC2086
    RUST_LOG=warn "$(server_bin "$target")" --listen "127.0.0.1:$port" \
      --redis "redis://127.0.0.1:$redis_port" "${syncroom_limits[@]}" $threads \
      ${SYNCROOM_ARGS:-} >"$out/syncroom-$node.log" 2>&1 &
    pids+=($!)
    addrs+=("127.0.0.1:$port")
  done
  for node in 1 2 3; do wait_port $((syncroom_port + node)); done
  local file="$out/redis100x10k.$target.$rep.json" joined
  joined="$(IFS=,; echo "${addrs[*]}")"
  # shellcheck disable=SC2046
  if ! "$bench" --target syncroom --addr "$joined" --redis "127.0.0.1:$redis_port" \
    $(scenario_args redis100x10k) --json >"$file" 2>"$out/bench.err"; then
    echo "compare: $target redis100x10k run $rep was not clean: $(tail -n 1 "$out/bench.err")" >&2
    if [ ! -s "$file" ]; then rm -f "$file"; fi
  fi
  [ -s "$file" ] && result_line "$file" redis100x10k "$rep" "$target"
  stop_servers
  sleep 1
}

result_line() { # file scenario rep target
  python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); l=r["latency_us"]; rd=r.get("redis") or {}; print("%-11s %-12s %s p50=%.1fms p99=%.1fms cpu/delivery=%sus cpu/command=%sus join=%sus rss/listener=%sB connect=%s/s delivered=%s/s lost=%s dup=%s%s" % (sys.argv[4], sys.argv[2], sys.argv[3], l["p50"]/1e3, l["p99"]/1e3, (r["server"]["cpu_us_per_delivery"] or {}).get("total"), r["server"].get("cpu_us_per_command"), r["connect"].get("server_cpu_us_per_join"), r["server"]["rss_per_listener_bytes"], r["connect"]["listeners_per_s"], r["publish"]["deliveries_per_s"], r["deliveries"]["lost"], r["deliveries"]["duplicated"], (" redis_cmds/command=%s redis_cpu/command=%sus" % (rd.get("commands_per_room_command"), rd.get("cpu_us_per_command"))) if rd else ""))' "$@"
}

run_one() { # target scenario rep
  local target="$1" scenario="$2" rep="$3" args addr port
  if [ "$scenario" = redis100x10k ]; then
    # nchan has no part in it: syncroom's own backplane is what is measured.
    if [ "$target" != nchan ]; then run_redis "$target" "$rep"; fi
    return 0
  fi
  args="$(scenario_args "$scenario")"
  # Each run gets a fresh server: a server left over from the run before would
  # answer in place of the new one, so its port must be free first.
  if [ "$target" = nchan ]; then port=$nchan_port; else port=$syncroom_port; fi
  for _ in $(seq 1 50); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || break
    sleep 0.2
  done
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "compare: port $port is still taken by an earlier server" >&2
    exit 1
  fi
  if [ "$target" != nchan ]; then
    # shellcheck disable=SC2086
    RUST_LOG=warn "$(server_bin "$target")" --listen "127.0.0.1:$syncroom_port" \
      "${syncroom_limits[@]}" $(threads_of "$target") ${SYNCROOM_ARGS:-} >"$out/syncroom.log" 2>&1 &
    pids+=($!)
    addr="127.0.0.1:$syncroom_port"
  else
    rm -rf "$out/nchan"
    bench/nchan/run.sh "$nchan_port" "$out/nchan" >"$out/nchan.log" 2>&1 &
    pids+=($!)
    addr="127.0.0.1:$nchan_port"
  fi
  wait_port "${addr#*:}"
  local file="$out/$scenario.$target.$rep.json"
  # shellcheck disable=SC2086
  local tool_target=syncroom
  if [ "$target" = nchan ]; then tool_target=nchan; fi
  if ! "$bench" --target "$tool_target" --addr "$addr" $args --json >"$file" 2>"$out/bench.err"; then
    echo "compare: $target $scenario run $rep was not clean: $(tail -n 1 "$out/bench.err")" >&2
    if [ ! -s "$file" ]; then rm -f "$file"; stop_servers; sleep 1; return 0; fi
  fi
  result_line "$file" "$scenario" "$rep" "$target"
  stop_servers
  sleep 1
}

expanded=()
for scenario in "${scenarios[@]}"; do
  if [ "$scenario" = saturation ]; then
    expanded+=(sat-14 sat-10 sat-7)
  else
    expanded+=("$scenario")
  fi
done

echo "compare: ${expanded[*]}, $reps runs each, results in $out"
for rep in $(seq 1 "$reps"); do
  for scenario in "${expanded[@]}"; do
    # Rotate which server goes first, so none always meets a warmer machine.
    shift_by=$(((rep - 1) % ${#targets[@]}))
    order=("${targets[@]:$shift_by}" "${targets[@]:0:$shift_by}")
    for target in "${order[@]}"; do run_one "$target" "$scenario" "$rep"; done
  done
done
python3 bench/summarize.py "$out"
