#!/usr/bin/env bash
# Cross-language interop: Weft against the Python (`rsocket`) and JavaScript (`rsocket-core`)
# RSocket implementations, on 127.0.0.1, over five transports: TCP, TLS, WebSocket (RSocket's
# WebSocket transport: one frame per binary message), WebSocket over TLS and Unix sockets.
# See tests/interop/README.md.
#
#   bash tests/interop/run.sh                        # {python,js} client x weft server,
#                                                    # weft client x {python,js} server
#   INTEROP_SELF_CHECK=1 bash tests/interop/run.sh   # python client x js server,
#                                                    # js client x python server (no Weft)
#   INTEROP_SELF_CHECK=also bash tests/interop/run.sh  # both of the above
#   INTEROP_TRANSPORTS="tls unix" bash tests/interop/run.sh  # some transports only (default:
#                                                    # "tcp websocket tls websocket-tls unix")
#
# Every pair runs once per transport; no pair is skipped (UNSUPPORTED_PAIRS is empty). Every
# client and server, Weft's and the peers', takes the same command line: the TLS options
# (servers `--cert PEM --key PEM`, clients `--ca PEM`; a CA and a certificate for 127.0.0.1 are
# made with openssl for the run) and then one address: 127.0.0.1:PORT, tls://127.0.0.1:PORT,
# ws://127.0.0.1:PORT/rsocket, wss://127.0.0.1:PORT/rsocket or unix:PATH (in work/).
# Weft's peers: WEFT_INTEROP_SERVER / WEFT_INTEROP_CLIENT (executables taking such a line);
# when unset they are built with cargo (release) from the weft-examples interop examples.
# Installs its own peers' libraries (pinned) into tests/interop/work/ (git-ignored).
# Every process is bounded by `timeout`; servers are killed by PID on exit.
# Prints each client's lines per pair, a summary, and finally `N passed, N failed`;
# exits non-zero on any failure.
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
WORK="$HERE/work"
LOGS="$WORK/logs"
INSTALL_LOG="$WORK/install.log"
BUILD_LOG="$WORK/build.log"

INSTALL_TIMEOUT="${INTEROP_INSTALL_TIMEOUT:-900}"
BUILD_TIMEOUT="${INTEROP_BUILD_TIMEOUT:-2400}"
CLIENT_TIMEOUT="${INTEROP_CLIENT_TIMEOUT:-240}"
SERVER_TIMEOUT="${INTEROP_SERVER_TIMEOUT:-300}"
READY_TIMEOUT=20

case "${1:-}" in
  --self-check) INTEROP_SELF_CHECK=1 ;;
  "") ;;
  *) echo "usage: $0 [--self-check]" >&2; exit 2 ;;
esac
SELF_CHECK="${INTEROP_SELF_CHECK:-0}"
TRANSPORTS="${INTEROP_TRANSPORTS:-tcp websocket tls websocket-tls unix}"
for transport in $TRANSPORTS; do
  case "$transport" in
    tcp | websocket | tls | websocket-tls | unix) ;;
    *) echo "interop: unknown transport '$transport' in INTEROP_TRANSPORTS (want tcp, websocket, tls, websocket-tls, unix)" >&2; exit 2 ;;
  esac
done
# The WebSocket endpoint's path on every server (RSocket over WebSocket has no standard one).
WS_PATH=/rsocket

mkdir -p "$WORK" "$LOGS"

# ---- cleanup: only the processes this script started, by PID ----------------------------
SERVER_PIDS=()
cleanup() {
  local pid
  for pid in "${SERVER_PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${SERVER_PIDS[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  SERVER_PIDS=()
}
trap cleanup EXIT
trap 'cleanup; exit 130' INT TERM

PYTHON="${PYTHON:-python3}"
for tool in "$PYTHON" node npm timeout; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "interop: '$tool' not found on PATH" >&2
    echo "0 passed, 1 failed"
    exit 1
  fi
done

# ---- install the third-party peers' libraries -------------------------------------------
install_peers() {
  {
    echo "== python venv"
    if [ ! -x "$WORK/venv/bin/python" ]; then
      timeout "$INSTALL_TIMEOUT" "$PYTHON" -m venv "$WORK/venv" || return 1
    fi
    echo "== pip install -r python/requirements.txt"
    timeout "$INSTALL_TIMEOUT" "$WORK/venv/bin/python" -m pip install --disable-pip-version-check \
      -r "$HERE/python/requirements.txt" || return 1
    echo "== npm install (js/package.json)"
    cp "$HERE/js/package.json" "$WORK/package.json"
    (cd "$WORK" && timeout "$INSTALL_TIMEOUT" npm install --no-audit --no-fund --no-package-lock) || return 1
  } >"$INSTALL_LOG" 2>&1
}

echo "==> installing the Python and JavaScript peers (log: ${INSTALL_LOG#"$ROOT"/})"
if ! install_peers; then
  echo "interop: installing the peers failed; install log follows" >&2
  cat "$INSTALL_LOG" >&2
  echo "0 passed, 1 failed"
  exit 1
fi
PY_VERSION="$("$WORK/venv/bin/python" -c 'import importlib.metadata as m; print(m.version("rsocket"))' 2>/dev/null)"
JS_VERSION="$(node -p 'require(process.argv[1]).version' "$WORK/node_modules/rsocket-core/package.json" 2>/dev/null)"
echo "    python rsocket $PY_VERSION, js rsocket-core $JS_VERSION, node $(node --version)"
export NODE_PATH="$WORK/node_modules"

PY_CLIENT=("$WORK/venv/bin/python" "$HERE/python/client.py")
PY_SERVER=("$WORK/venv/bin/python" "$HERE/python/server.py")
JS_CLIENT=(node "$HERE/js/client.js")
JS_SERVER=(node "$HERE/js/server.js")

# ---- Weft's interop binaries ------------------------------------------------------------
WEFT_SERVER=()
WEFT_CLIENT=()
if [ "$SELF_CHECK" != "1" ]; then
  if [ -z "${WEFT_INTEROP_SERVER:-}" ] || [ -z "${WEFT_INTEROP_CLIENT:-}" ]; then
    echo "==> building Weft's interop examples (log: ${BUILD_LOG#"$ROOT"/})"
    if ! (cd "$ROOT" && timeout "$BUILD_TIMEOUT" cargo build --release -p weft-examples \
          --example interop_server --example interop_client) >"$BUILD_LOG" 2>&1; then
      echo "interop: building weft-examples interop_server/interop_client failed; build log tail:" >&2
      tail -n 60 "$BUILD_LOG" >&2
      echo "0 passed, 1 failed"
      exit 1
    fi
    TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
    : "${WEFT_INTEROP_SERVER:=$TARGET_DIR/release/examples/interop_server}"
    : "${WEFT_INTEROP_CLIENT:=$TARGET_DIR/release/examples/interop_client}"
  fi
  for bin in "$WEFT_INTEROP_SERVER" "$WEFT_INTEROP_CLIENT"; do
    if [ ! -x "$bin" ]; then
      echo "interop: $bin is not an executable" >&2
      echo "0 passed, 1 failed"
      exit 1
    fi
  done
  WEFT_SERVER=("$WEFT_INTEROP_SERVER")
  WEFT_CLIENT=("$WEFT_INTEROP_CLIENT")
fi

# ---- helpers ----------------------------------------------------------------------------
free_port() {
  "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# True once something accepts TCP connections on 127.0.0.1:$1. A connection to itself (TCP
# simultaneous open: the kernel picked $1 as the source port while nothing listened there) is
# not a listener.
port_open() {
  "$PYTHON" -c 'import socket, sys
s = socket.socket(); s.settimeout(0.5)
try:
    s.connect(("127.0.0.1", int(sys.argv[1])))
    sys.exit(1 if s.getsockname() == s.getpeername() else 0)
except OSError:
    sys.exit(1)
finally:
    s.close()' "$1"
}

# Known incompatibilities between the two third-party libraries, seen only in the self-check
# pairs (never applied to a pair with Weft in it), over every transport:
# "client-peer server-peer check|reason".
KNOWN_PEER_FAILURES=(
  "js python unary_empty|rsocket-py answers an empty request/response with a PAYLOAD with C but no N; rsocket-js resolves a request/response only on N, so the JS client never gets the empty answer"
)
known_reason() { # client server check -> prints reason, or fails
  local entry
  for entry in "${KNOWN_PEER_FAILURES[@]}"; do
    if [ "${entry%%|*}" = "$1 $2 $3" ]; then
      echo "${entry#*|}"
      return 0
    fi
  done
  return 1
}

TOTAL_PASS=0
TOTAL_FAIL=0
TOTAL_SKIP=0
TOTAL_KNOWN=0
FAILURES=()
KNOWN=()
SKIPS=()

# Pairs that cannot run over a transport because a library's side of it does not work, with
# why (see tests/interop/README.md): "transport client-peer server-peer|reason". Such a pair is
# reported as SKIP, not run. None today: both libraries' clients and servers work over every
# transport here (TCP, TLS, WebSocket, WebSocket over TLS, Unix sockets).
UNSUPPORTED_PAIRS=()

# A certificate authority and a server certificate for 127.0.0.1, made for this run (no key
# is committed), for tls and websocket-tls: every server gets --cert/--key, every client --ca.
PKI="$WORK/pki"
make_pki() {
  mkdir -p "$PKI" && rm -f "$PKI"/*
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj "/CN=weft interop CA" -keyout "$PKI/ca.key" -out "$PKI/ca.pem" >/dev/null 2>&1 &&
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=127.0.0.1" \
    -keyout "$PKI/server.key" -out "$PKI/server.csr" >/dev/null 2>&1 &&
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >"$PKI/ext.cnf" &&
  openssl x509 -req -in "$PKI/server.csr" -CA "$PKI/ca.pem" -CAkey "$PKI/ca.key" -CAcreateserial \
    -days 2 -extfile "$PKI/ext.cnf" -out "$PKI/server.pem" >/dev/null 2>&1
}
case " $TRANSPORTS " in
  *" tls "* | *" websocket-tls "*)
    if ! command -v openssl >/dev/null 2>&1 || ! make_pki; then
      echo "interop: making the test certificates with openssl failed" >&2
      echo "0 passed, 1 failed"
      exit 1
    fi ;;
esac
unsupported_reason() { # transport client server -> prints reason, or fails
  local entry
  for entry in "${UNSUPPORTED_PAIRS[@]+"${UNSUPPORTED_PAIRS[@]}"}"; do
    if [ "${entry%%|*}" = "$1 $2 $3" ]; then
      echo "${entry#*|}"
      return 0
    fi
  done
  return 1
}

# run_pair TRANSPORT CLIENT_NAME SERVER_NAME -- client argv... -- server argv...
# Both get the address as their last argument: 127.0.0.1:PORT (tcp), tls://127.0.0.1:PORT
# (tls), ws://127.0.0.1:PORT/rsocket (websocket), wss://127.0.0.1:PORT/rsocket (websocket-tls)
# or unix:tests/interop/work/interop-PORT.sock (unix; PORT only names the file), after the
# TLS options every client and server takes alike (--ca; --cert and --key).
run_pair() {
  local transport="$1" cname="$2" sname="$3"
  shift 3
  [ "$1" = "--" ] && shift
  local client=() server=()
  while [ $# -gt 0 ] && [ "$1" != "--" ]; do client+=("$1"); shift; done
  shift
  server=("$@")
  local pair="$cname client x $sname server over $transport"
  local tag="${cname}-client_${sname}-server_${transport}"
  local server_log="$LOGS/$tag.server.log" client_log="$LOGS/$tag.client.log"
  local reason
  if reason="$(unsupported_reason "$transport" "$cname" "$sname")"; then
    echo
    echo "==> $pair"
    echo "  SKIP pair: $reason"
    SKIPS+=("[$pair] all checks: $reason")
    TOTAL_SKIP=$((TOTAL_SKIP + 1))
    return
  fi
  local port address
  port="$(free_port)"
  case "$transport" in
    tcp) address="127.0.0.1:$port" ;;
    websocket) address="ws://127.0.0.1:$port$WS_PATH" ;;
    tls) address="tls://127.0.0.1:$port" ;;
    websocket-tls) address="wss://127.0.0.1:$port$WS_PATH" ;;
    unix) address="unix:$WORK/interop-$port.sock" ;;
  esac
  # Every peer takes TLS's files as options (before the address, which comes last); they
  # matter only over tls and websocket-tls.
  client+=(--ca "$PKI/ca.pem")
  server+=(--cert "$PKI/server.pem" --key "$PKI/server.key")
  echo
  echo "==> $pair ($address)"

  # Emptied here, not by the background job's redirection: that may happen after the readiness
  # loop below has already read the last run's `listening` line from this file.
  : >"$server_log"
  timeout "$SERVER_TIMEOUT" "${server[@]}" "$address" >"$server_log" 2>&1 &
  local spid=$!
  SERVER_PIDS+=("$spid")

  local waited=0 ready=0
  while [ "$waited" -lt $((READY_TIMEOUT * 5)) ]; do
    if ! kill -0 "$spid" 2>/dev/null; then break; fi
    if grep -q '^listening' "$server_log" 2>/dev/null; then ready=1; break; fi
    # Over a Unix socket the port only names the file: something else may listen on it.
    if [ "$transport" != unix ] && port_open "$port"; then ready=1; break; fi
    sleep 0.2
    waited=$((waited + 1))
  done
  if [ "$ready" -ne 1 ]; then
    local state="not accepting on $address within ${READY_TIMEOUT}s"
    if ! kill -0 "$spid" 2>/dev/null; then
      wait "$spid" 2>/dev/null
      state="exited with status $? before accepting on $address"
    fi
    echo "FAIL [$pair] server_start: $sname server $state; its log:"
    sed 's/^/    | /' "$server_log"
    FAILURES+=("[$pair] server_start: $sname server $state")
    TOTAL_FAIL=$((TOTAL_FAIL + 1))
    kill "$spid" 2>/dev/null; wait "$spid" 2>/dev/null
    return
  fi

  timeout "$CLIENT_TIMEOUT" "${client[@]}" "$address" >"$client_log" 2>&1
  local rc=$?
  local pass=0 fail=0 skip=0 known=0 final=0 line name
  while IFS= read -r line; do
    case "$line" in
      "PASS "*)
        pass=$((pass + 1)); echo "  $line" ;;
      "SKIP "*)
        skip=$((skip + 1)); SKIPS+=("[$pair] ${line#SKIP }"); echo "  $line" ;;
      "FAIL "*)
        name="${line#FAIL }"; name="${name%%:*}"
        if [ "$SELF_CHECK" != "0" ] && reason="$(known_reason "$cname" "$sname" "$name")"; then
          known=$((known + 1)); KNOWN+=("[$pair] $name: $reason")
          echo "  KNOWN $name: ${line#FAIL "$name": } [known library incompatibility: $reason]"
        else
          fail=$((fail + 1)); FAILURES+=("[$pair] ${line#FAIL }")
          echo "  $line"
        fi ;;
      *[0-9]" passed, "*[0-9]" failed"*)
        final=1 ;;
      *)
        echo "  | $line" ;;
    esac
  done <"$client_log"

  if [ "$final" -ne 1 ] || { [ "$rc" -ne 0 ] && [ "$fail" -eq 0 ] && [ "$known" -eq 0 ]; }; then
    local why="client exited with status $rc without its final 'N passed, N failed' line"
    [ "$rc" -eq 124 ] && why="client killed by its ${CLIENT_TIMEOUT}s time limit"
    [ "$final" -eq 1 ] && why="client exited with status $rc but reported no failed check"
    echo "  FAIL client_run: $why"
    fail=$((fail + 1)); FAILURES+=("[$pair] client_run: $why")
  fi

  if ! kill -0 "$spid" 2>/dev/null; then
    echo "  FAIL server_alive: the $sname server exited during the run"
    fail=$((fail + 1)); FAILURES+=("[$pair] server_alive: the $sname server exited during the run")
  fi
  kill "$spid" 2>/dev/null; wait "$spid" 2>/dev/null

  if [ "$fail" -gt 0 ]; then
    echo "  -- $sname server log (${server_log#"$ROOT"/}), last 40 lines:"
    tail -n 40 "$server_log" | sed 's/^/    | /'
  fi
  echo "  $pair: $pass passed, $fail failed, $skip skipped, $known known"
  TOTAL_PASS=$((TOTAL_PASS + pass))
  TOTAL_FAIL=$((TOTAL_FAIL + fail))
  TOTAL_SKIP=$((TOTAL_SKIP + skip))
  TOTAL_KNOWN=$((TOTAL_KNOWN + known))
}

# ---- the matrix -------------------------------------------------------------------------
for transport in $TRANSPORTS; do
  if [ "$SELF_CHECK" != "1" ]; then
    run_pair "$transport" python weft -- "${PY_CLIENT[@]}" -- "${WEFT_SERVER[@]}"
    run_pair "$transport" js weft -- "${JS_CLIENT[@]}" -- "${WEFT_SERVER[@]}"
    run_pair "$transport" weft python -- "${WEFT_CLIENT[@]}" -- "${PY_SERVER[@]}"
    run_pair "$transport" weft js -- "${WEFT_CLIENT[@]}" -- "${JS_SERVER[@]}"
  fi
  if [ "$SELF_CHECK" != "0" ]; then
    run_pair "$transport" python js -- "${PY_CLIENT[@]}" -- "${JS_SERVER[@]}"
    run_pair "$transport" js python -- "${JS_CLIENT[@]}" -- "${PY_SERVER[@]}"
  fi
done

# ---- summary ----------------------------------------------------------------------------
echo
echo "==> interop summary (python rsocket $PY_VERSION, js rsocket-core $JS_VERSION; transports: $TRANSPORTS)"
for entry in "${FAILURES[@]+"${FAILURES[@]}"}"; do echo "  FAIL $entry"; done
for entry in "${KNOWN[@]+"${KNOWN[@]}"}"; do echo "  KNOWN $entry"; done
for entry in "${SKIPS[@]+"${SKIPS[@]}"}"; do echo "  SKIP $entry"; done
echo "  logs: ${LOGS#"$ROOT"/}/"
echo "  $TOTAL_SKIP skipped, $TOTAL_KNOWN known self-check incompatibilities (not counted)"
echo "$TOTAL_PASS passed, $TOTAL_FAIL failed"
[ "$TOTAL_FAIL" -eq 0 ]
