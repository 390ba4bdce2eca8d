#!/usr/bin/env bash
# Weft behind nginx: one interop_server on a TCP and a WebSocket address, Debian's nginx in
# front of it as a TCP `stream` proxy and as a WebSocket reverse proxy, and interop_client
# through each proxy: every interaction model, then the proxy checks (a 1,000,000-item stream,
# a 1,000-each-way channel, keepalive across the proxy's idle timeout and its control).
# See tests/proxy/README.md.
#
#   bash tests/proxy/run.sh
#
# Installs nginx (and its stream module) with apt-get when missing. Weft's binaries:
# WEFT_INTEROP_SERVER / WEFT_INTEROP_CLIENT, built with cargo (release) when unset, as in
# tests/interop/run.sh. nginx runs in the foreground as one process (`daemon off;
# master_process off;`) with its config, pid file, logs and temp files in tests/proxy/work/
# (git-ignored). Every process is bounded by `timeout`; nginx and the server are killed by PID
# on exit. Prints each client's lines, then `N passed, N failed`; exits non-zero on failure.
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
WORK="$HERE/work"
LOGS="$WORK/logs"
NGINX_DIR="$WORK/nginx"
BUILD_LOG="$WORK/build.log"

BUILD_TIMEOUT="${PROXY_BUILD_TIMEOUT:-2400}"
INSTALL_TIMEOUT="${PROXY_INSTALL_TIMEOUT:-600}"
CLIENT_TIMEOUT="${PROXY_CLIENT_TIMEOUT:-240}"
# Long enough for both clients' runs, so nothing outlives the script if its trap cannot run.
SERVER_TIMEOUT="${PROXY_SERVER_TIMEOUT:-600}"
READY_TIMEOUT=20
# nginx's idle timeouts (stream `proxy_timeout`, http `proxy_read_timeout`/`proxy_send_timeout`),
# short so that keepalive is what keeps an idle connection open; the client idles past it.
IDLE_TIMEOUT="${PROXY_IDLE_TIMEOUT:-3}"
WS_PATH=/rsocket

mkdir -p "$WORK" "$LOGS" "$NGINX_DIR"

# ---- cleanup: only the processes this script started, by PID ----------------------------
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]+"${PIDS[@]}"}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]+"${PIDS[@]}"}"; do wait "$pid" 2>/dev/null || true; done
  PIDS=()
}
trap cleanup EXIT
trap 'cleanup; exit 130' INT TERM

give_up() {
  echo "proxy: $*" >&2
  echo "0 passed, 1 failed"
  exit 1
}

for tool in python3 timeout; do
  command -v "$tool" >/dev/null 2>&1 || give_up "'$tool' not found on PATH"
done

# ---- nginx, and its stream module --------------------------------------------------------
# Debian installs nginx in /usr/sbin, which a non-root PATH may lack.
find_nginx() { command -v nginx 2>/dev/null || { [ -x /usr/sbin/nginx ] && echo /usr/sbin/nginx; }; }
NGINX="$(find_nginx)"
if [ -z "$NGINX" ]; then
  echo "==> installing nginx (apt-get)"
  (timeout "$INSTALL_TIMEOUT" apt-get update -qq &&
    timeout "$INSTALL_TIMEOUT" apt-get install -y -qq nginx) >"$WORK/install.log" 2>&1 ||
    { cat "$WORK/install.log" >&2; give_up "installing nginx failed"; }
  NGINX="$(find_nginx)"
  [ -n "$NGINX" ] || give_up "nginx is not on PATH or in /usr/sbin after installing it"
fi
NGINX_V="$("$NGINX" -V 2>&1)"
# Debian builds `stream` as a dynamic module, in its own package (libnginx-mod-stream).
LOAD_STREAM=""
if [[ "$NGINX_V" == *"--with-stream=dynamic"* ]]; then
  MODULES="$(sed -n 's/.*--modules-path=\([^ ]*\).*/\1/p' <<<"$NGINX_V")"
  STREAM_SO="${MODULES:-/usr/lib/nginx/modules}/ngx_stream_module.so"
  if [ ! -f "$STREAM_SO" ]; then
    echo "==> installing nginx's stream module (apt-get install libnginx-mod-stream)"
    (timeout "$INSTALL_TIMEOUT" apt-get install -y -qq libnginx-mod-stream ||
      { timeout "$INSTALL_TIMEOUT" apt-get update -qq &&
        timeout "$INSTALL_TIMEOUT" apt-get install -y -qq libnginx-mod-stream; }) >"$WORK/install.log" 2>&1 ||
      { cat "$WORK/install.log" >&2; give_up "installing libnginx-mod-stream failed"; }
  fi
  [ -f "$STREAM_SO" ] || give_up "nginx's stream module is not at $STREAM_SO"
  LOAD_STREAM="load_module $STREAM_SO;"
elif [[ "$NGINX_V" != *"--with-stream"* ]]; then
  give_up "this nginx was built without the stream module ($NGINX -V)"
fi
NGINX_VERSION="$("$NGINX" -v 2>&1 | sed 's/^nginx version: //')"
echo "    $NGINX_VERSION ($NGINX)"

# ---- Weft's interop binaries ------------------------------------------------------------
if [ -z "${WEFT_INTEROP_SERVER:-}" ] || [ -z "${WEFT_INTEROP_CLIENT:-}" ]; then
  echo "==> building Weft's interop examples (log: ${BUILD_LOG#"$ROOT"/})"
  if ! (cd "$ROOT" && timeout "$BUILD_TIMEOUT" cargo build --release -p weft-examples \
        --example interop_server --example interop_client) >"$BUILD_LOG" 2>&1; then
    tail -n 60 "$BUILD_LOG" >&2
    give_up "building weft-examples interop_server/interop_client failed; build log tail above"
  fi
  TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
  : "${WEFT_INTEROP_SERVER:=$TARGET_DIR/release/examples/interop_server}"
  : "${WEFT_INTEROP_CLIENT:=$TARGET_DIR/release/examples/interop_client}"
fi
for bin in "$WEFT_INTEROP_SERVER" "$WEFT_INTEROP_CLIENT"; do
  [ -x "$bin" ] || give_up "$bin is not an executable"
done

# ---- helpers ----------------------------------------------------------------------------
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# True once something accepts TCP connections on 127.0.0.1:$1 (a connection to itself, TCP
# simultaneous open on a free port, is not a listener).
port_open() {
  python3 -c 'import socket, sys
s = socket.socket(); s.settimeout(0.5)
try:
    s.connect(("127.0.0.1", int(sys.argv[1])))
    sys.exit(1 if s.getsockname() == s.getpeername() else 0)
except OSError:
    sys.exit(1)
finally:
    s.close()' "$1"
}

# ---- the Weft server, on a TCP and a WebSocket address ----------------------------------
SERVER_LOG="$LOGS/server.log"
: >"$SERVER_LOG"
timeout "$SERVER_TIMEOUT" "$WEFT_INTEROP_SERVER" 127.0.0.1:0 "ws://127.0.0.1:0$WS_PATH" >"$SERVER_LOG" 2>&1 &
SERVER_PID=$!
PIDS+=("$SERVER_PID")
for _ in $(seq $((READY_TIMEOUT * 5))); do
  [ "$(grep -c '^listening' "$SERVER_LOG")" -ge 2 ] && break
  kill -0 "$SERVER_PID" 2>/dev/null || break
  sleep 0.2
done
# The ports the server bound for :0, from its `listening` lines.
TCP_UPSTREAM="$(sed -n 's/^listening \(127\.0\.0\.1:[0-9]*\)$/\1/p' "$SERVER_LOG")"
WS_UPSTREAM="$(sed -n 's|^listening ws://\(127\.0\.0\.1:[0-9]*\)/.*$|\1|p' "$SERVER_LOG")"
if [ -z "$TCP_UPSTREAM" ] || [ -z "$WS_UPSTREAM" ]; then
  sed 's/^/    | /' "$SERVER_LOG" >&2
  give_up "interop_server did not announce its TCP and WebSocket addresses within ${READY_TIMEOUT}s"
fi

# ---- nginx: a stream proxy and a WebSocket reverse proxy --------------------------------
STREAM_PORT="$(free_port)"
HTTP_PORT="$(free_port)"
while [ "$HTTP_PORT" = "$STREAM_PORT" ]; do HTTP_PORT="$(free_port)"; done
NGINX_CONF="$NGINX_DIR/nginx.conf"
NGINX_ERRORS="$NGINX_DIR/error.log"
rm -f "$NGINX_DIR"/*.log "$NGINX_DIR"/nginx.pid
# Everything nginx writes is under $NGINX_DIR: `-p` makes it the prefix for relative paths,
# and `-e` takes the error log there before the config is read (else it opens the system's).
cat >"$NGINX_CONF" <<EOF
# Written by tests/proxy/run.sh for one run.
$LOAD_STREAM
daemon off;
master_process off;
worker_processes 1;
pid $NGINX_DIR/nginx.pid;
error_log $NGINX_ERRORS info;
events { worker_connections 256; }

stream {
    # RSocket over TCP, bytes passed through; closed after ${IDLE_TIMEOUT}s with no bytes
    # either way.
    server {
        listen 127.0.0.1:$STREAM_PORT;
        proxy_pass $TCP_UPSTREAM;
        proxy_timeout ${IDLE_TIMEOUT}s;
        proxy_connect_timeout 5s;
    }
}

http {
    access_log $NGINX_DIR/access.log;
    client_body_temp_path $NGINX_DIR/client_body;
    proxy_temp_path $NGINX_DIR/proxy;
    fastcgi_temp_path $NGINX_DIR/fastcgi;
    uwsgi_temp_path $NGINX_DIR/uwsgi;
    scgi_temp_path $NGINX_DIR/scgi;
    server {
        listen 127.0.0.1:$HTTP_PORT;
        # RSocket over WebSocket: the upgrade passed on, then the frames. An upgraded
        # connection is closed after ${IDLE_TIMEOUT}s with nothing read from (or written to)
        # the server.
        location = $WS_PATH {
            proxy_pass http://$WS_UPSTREAM;
            proxy_http_version 1.1;
            proxy_set_header Upgrade \$http_upgrade;
            proxy_set_header Connection "upgrade";
            proxy_read_timeout ${IDLE_TIMEOUT}s;
            proxy_send_timeout ${IDLE_TIMEOUT}s;
            proxy_connect_timeout 5s;
        }
        location / { return 404; }
    }
}
EOF
"$NGINX" -t -p "$NGINX_DIR" -e "$NGINX_ERRORS" -c "$NGINX_CONF" >"$LOGS/nginx-t.log" 2>&1 ||
  { cat "$LOGS/nginx-t.log" >&2; give_up "nginx rejected its config ($NGINX_CONF)"; }
timeout "$SERVER_TIMEOUT" "$NGINX" -p "$NGINX_DIR" -e "$NGINX_ERRORS" -c "$NGINX_CONF" >"$LOGS/nginx.log" 2>&1 &
NGINX_PID=$!
PIDS+=("$NGINX_PID")
ready=0
for _ in $(seq $((READY_TIMEOUT * 5))); do
  kill -0 "$NGINX_PID" 2>/dev/null || break
  if port_open "$STREAM_PORT" && port_open "$HTTP_PORT"; then ready=1; break; fi
  sleep 0.2
done
if [ "$ready" -ne 1 ]; then
  cat "$LOGS/nginx.log" "$NGINX_ERRORS" >&2 2>/dev/null
  give_up "nginx is not accepting on 127.0.0.1:$STREAM_PORT and :$HTTP_PORT within ${READY_TIMEOUT}s"
fi

# ---- the client through each proxy ------------------------------------------------------
TOTAL_PASS=0
TOTAL_FAIL=0
FAILURES=()
# run_client NAME ADDRESS: every interop check, then the proxy checks, through ADDRESS.
run_client() {
  local name="$1" address="$2" log="$LOGS/client-$1.log"
  echo
  echo "==> weft client x weft server through nginx's $name proxy ($address -> upstream)"
  # In the background, waited for: bash runs the INT/TERM trap (which kills it with the rest)
  # as soon as `wait` is interrupted, not after a foreground client has finished.
  timeout "$CLIENT_TIMEOUT" "$WEFT_INTEROP_CLIENT" --proxy-idle-timeout "$IDLE_TIMEOUT" "$address" >"$log" 2>&1 &
  local cpid=$!
  PIDS+=("$cpid")
  wait "$cpid"
  local rc=$? pass=0 fail=0 final=0 line
  while IFS= read -r line; do
    case "$line" in
      "PASS "*) pass=$((pass + 1)); echo "  $line" ;;
      "SKIP "*) echo "  $line" ;;
      "FAIL "*) fail=$((fail + 1)); FAILURES+=("[$name] ${line#FAIL }"); echo "  $line" ;;
      *[0-9]" passed, "*[0-9]" failed"*) final=1 ;;
      *) echo "  | $line" ;;
    esac
  done <"$log"
  if [ "$final" -ne 1 ] || { [ "$rc" -ne 0 ] && [ "$fail" -eq 0 ]; }; then
    local why="client exited with status $rc without its final 'N passed, N failed' line"
    [ "$rc" -eq 124 ] && why="client killed by its ${CLIENT_TIMEOUT}s time limit"
    [ "$final" -eq 1 ] && why="client exited with status $rc but reported no failed check"
    echo "  FAIL client_run: $why"
    fail=$((fail + 1)); FAILURES+=("[$name] client_run: $why")
  fi
  echo "  $name: $pass passed, $fail failed"
  TOTAL_PASS=$((TOTAL_PASS + pass))
  TOTAL_FAIL=$((TOTAL_FAIL + fail))
}

run_client stream "127.0.0.1:$STREAM_PORT"
run_client websocket "ws://127.0.0.1:$HTTP_PORT$WS_PATH"

for what in "nginx:$NGINX_PID" "interop_server:$SERVER_PID"; do
  if ! kill -0 "${what#*:}" 2>/dev/null; then
    echo "  FAIL alive: ${what%%:*} exited during the run"
    FAILURES+=("alive: ${what%%:*} exited during the run")
    TOTAL_FAIL=$((TOTAL_FAIL + 1))
  fi
done

# ---- summary ----------------------------------------------------------------------------
echo
echo "==> proxy summary ($NGINX_VERSION; idle timeout ${IDLE_TIMEOUT}s)"
for entry in "${FAILURES[@]+"${FAILURES[@]}"}"; do echo "  FAIL $entry"; done
if [ "$TOTAL_FAIL" -gt 0 ]; then
  echo "  -- nginx error log (${NGINX_ERRORS#"$ROOT"/}), last 20 lines:"
  tail -n 20 "$NGINX_ERRORS" 2>/dev/null | sed 's/^/    | /'
  echo "  -- server log (${SERVER_LOG#"$ROOT"/}), last 20 lines:"
  tail -n 20 "$SERVER_LOG" | sed 's/^/    | /'
fi
echo "  logs: ${LOGS#"$ROOT"/}/, ${NGINX_DIR#"$ROOT"/}/"
echo "$TOTAL_PASS passed, $TOTAL_FAIL failed"
[ "$TOTAL_FAIL" -eq 0 ]
