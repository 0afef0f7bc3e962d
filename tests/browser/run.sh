#!/usr/bin/env bash
# Runs the browser client's tests: the node unit tests of its pure functions
# (tests/js/) and the tests of the demo page in real headless Chromium and
# Firefox (tests/browser/).
#
# Installs what it needs and fails (never skips) when it cannot:
#   - Debian's chromium and firefox-esr (apt-get) when /usr/bin/chromium or
#     /usr/bin/firefox-esr is missing;
#   - playwright-core and puppeteer-core (npm ci, from the committed
#     package-lock.json) when node_modules is missing or older than the lock file;
#   - the server binary (cargo build; the tests start <target dir>/debug/syncroom,
#     the target directory found as cargo finds it: scripts/target-dir).
#
# It also packs the client package (clients/js) with npm pack, installs the
# tarball into a scratch project and runs its Node example against a live server
# (tests/client-package/).
#
# Screenshots, server logs and drift figures land in <target dir>/browser-artifacts/.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"

log() { printf '==> %s\n' "$*"; }

# Node v20+ with npm: the one on PATH, or one scripts/ensure-node installs.
node_bin="$("$root/scripts/ensure-node")"
PATH="$node_bin:$PATH"

# Every engine the tests name: a run without one of them fails.
browsers=()
[ -x /usr/bin/chromium ] || browsers+=(chromium)
[ -x /usr/bin/firefox-esr ] || browsers+=(firefox-esr)
if ((${#browsers[@]} > 0)); then
  log "installing Debian's ${browsers[*]}"
  if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
  $sudo apt-get update
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends "${browsers[@]}"
fi
for bin in /usr/bin/chromium /usr/bin/firefox-esr; do
  [ -x "$bin" ] || { echo "$bin is still missing" >&2; exit 1; }
done

# npm ci when node_modules is missing or stale (the lock file changed since).
stamp="$here/node_modules/.syncroom-lock.sha256"
want="$(sha256sum "$here/package-lock.json" | cut -d' ' -f1)"
if [ ! -f "$here/node_modules/playwright-core/package.json" ] || [ ! -f "$here/node_modules/puppeteer-core/package.json" ] \
  || [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  log "npm ci (tests/browser)"
  (cd "$here" && npm ci --no-audit --no-fund)
  echo "$want" > "$stamp"
fi

log "cargo build"
(cd "$root" && cargo build --quiet --bin syncroom)

# Where cargo put the binary (CARGO_TARGET_DIR, .cargo/config.toml or ./target);
# helpers.mjs reads it from here instead of asking cargo again.
SYNCROOM_TARGET_DIR="$("$root/scripts/target-dir")"
export SYNCROOM_TARGET_DIR
mkdir -p "$SYNCROOM_TARGET_DIR/browser-artifacts"

log "node unit tests of the client (tests/js)"
# Files, not a directory: node 21+ reads --test arguments as globs, not folders.
(cd "$root" && node --test tests/js/*.test.mjs)

log "browser tests in headless Chromium and Firefox (tests/browser)"
# One file at a time: each starts its own server and browser on a 2-core machine.
(cd "$here" && node --test --test-concurrency=1 ./*.test.mjs)

log "client package: npm pack, install into a scratch project, run against a live server"
(cd "$root" && node --test tests/client-package/)
