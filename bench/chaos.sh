#!/usr/bin/env bash
# The chaos tests (tests/chaos.rs: rolling restarts behind nginx, Redis restarted
# empty, Redis slow or cut, one node cut off from Redis) at a larger scale than
# the suite runs them: more listeners per test and more rounds of restarts, on
# release builds, with each test's figures (reconnects, resyncs, longest gap
# between deliveries) printed.
#
#   bench/chaos.sh [LISTENERS] [ROUNDS] [TEST-FILTER]   (defaults: 2000, 3, every test)
#
# ROUNDS is how many times the rolling restart takes every node down with
# SIGTERM and then again with SIGKILL. Needs redis-server and nginx on this
# machine (scripts/test installs both); everything runs as this user.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

listeners="${1:-2000}"
rounds="${2:-3}"
filter="${3:-chaos_}"

# The listeners are sockets of the test process, and nginx holds two per listener.
ulimit -Sn "$(ulimit -Hn)" 2>/dev/null || true
SYNCROOM_CHAOS_LISTENERS="$listeners" SYNCROOM_CHAOS_ROUNDS="$rounds" \
  cargo test --release --test chaos -- --nocapture --test-threads 1 "$filter"
