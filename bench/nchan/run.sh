#!/usr/bin/env bash
# Starts nginx + nchan with bench/nchan/nginx.conf on 127.0.0.1:PORT, in the
# foreground, with its pid file, logs and temp files in a fresh directory.
#
#   bench/nchan/run.sh [PORT] [DIR]     (defaults: 8090, a new mktemp -d)
#
# Needs nginx and the Debian nchan module: apt-get install -y nginx libnginx-mod-nchan
# Stop it with Ctrl-C or `kill $(cat DIR/nginx.pid)` (the master's pid; the worker
# is its child). Use `--server-pid "$(pgrep -P "$(cat DIR/nginx.pid)")"` or
# `--server-pid "$(cat DIR/nginx.pid)"` with syncroom-bench, or let it find the
# processes holding the port.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
port="${1:-8090}"
dir="${2:-$(mktemp -d -t syncroom-nchan.XXXXXX)}"
nginx_bin="${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}"
module=/usr/lib/nginx/modules/ngx_nchan_module.so

if [ ! -x "$nginx_bin" ]; then
  echo "run.sh: nginx not found; apt-get install -y nginx libnginx-mod-nchan" >&2
  exit 1
fi
if [ ! -f "$module" ]; then
  echo "run.sh: $module missing; apt-get install -y libnginx-mod-nchan" >&2
  exit 1
fi

nofile="$(ulimit -Hn)"
if [ "$nofile" = unlimited ]; then nofile=1048576; fi
mkdir -p "$dir/logs" "$dir/tmp"
sed -e "s/@PORT@/$port/g" -e "s/@NOFILE@/$nofile/g" -e "s/@CONNECTIONS@/$((nofile * 2))/g" "$here/nginx.conf" >"$dir/nginx.conf"

echo "nchan: http://127.0.0.1:$port (pub /pub/{room}, sub /sub/{room}); dir $dir" >&2
# The soft limit up to the hard one, so the master may hand it to the worker.
ulimit -Sn "$nofile"
exec "$nginx_bin" -p "$dir/" -c "$dir/nginx.conf" -g 'daemon off;'
