#!/usr/bin/env bash
# End-to-end test of the browser example: the page (rsocket-js over WebSocket) in headless
# Chromium calls a Weft server's unary, request/stream, channel and fire-and-forget methods, and
# every result is asserted. See examples/browser/README.md.
#
#   bash examples/browser/test.sh
#
# 1. Chromium: Debian's `chromium` (/usr/bin/chromium), installed with apt-get when missing
#    (needs root, as in CI). playwright-core drives it and never downloads a browser.
# 2. build.sh: the page's packages, esbuild and playwright-core into examples/browser/work/
#    (git-ignored), and the bundle.
# 3. browser_server (cargo build, debug; or BROWSER_SERVER=path), on 127.0.0.1 ports it picks.
# 4. test.js: drives the page, asserts, and writes work/test-output/browser.png.
#
# Every step is bounded by `timeout`; only the processes started here are stopped, by PID (the
# browser with its driver, by the process group this script gave them). Exits non-zero on any
# failure.
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
WORK="$HERE/work"
OUT="$WORK/test-output"
CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
APT_TIMEOUT="${BROWSER_APT_TIMEOUT:-600}"
BUILD_TIMEOUT="${BROWSER_BUILD_TIMEOUT:-900}"
SERVER_TIMEOUT=300
TEST_TIMEOUT=150
READY_TIMEOUT=20

mkdir -p "$OUT"
rm -f "$OUT"/*

fail() {
  echo "browser test: $*" >&2
  echo "0 passed, 1 failed"
  exit 1
}

# ---- cleanup: only what this script started, by PID --------------------------------------
SERVER_PID=""
DRIVER_PID=""
cleanup() {
  # The driver runs in a process group of its own (setsid below), whose id is its PID: the
  # group takes Chromium's processes with it should the driver not have closed them.
  if [ -n "$DRIVER_PID" ]; then kill -TERM -- "-$DRIVER_PID" 2>/dev/null || true; fi
  if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  DRIVER_PID=""
  SERVER_PID=""
}
trap cleanup EXIT
trap 'cleanup; exit 130' INT TERM

# ---- 1. Chromium ----------------------------------------------------------------------------
if [ ! -x "$CHROMIUM" ]; then
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    fail "no Chromium at $CHROMIUM; install Debian's chromium package (or set CHROMIUM)"
  fi
  echo "==> installing chromium (apt-get; log: ${WORK#"$ROOT"/}/apt.log)"
  if ! { timeout "$APT_TIMEOUT" apt-get update -qq \
         && DEBIAN_FRONTEND=noninteractive timeout "$APT_TIMEOUT" apt-get install -y -qq chromium; } \
       >"$WORK/apt.log" 2>&1; then
    tail -n 30 "$WORK/apt.log" >&2
    fail "installing chromium failed"
  fi
fi
echo "==> $("$CHROMIUM" --version 2>/dev/null | head -n 1)"

# ---- 2. the page's bundle -------------------------------------------------------------------
echo "==> building the page (examples/browser/build.sh)"
timeout "$BUILD_TIMEOUT" bash "$HERE/build.sh" || fail "build.sh failed"

# ---- 3. the server --------------------------------------------------------------------------
if [ -z "${BROWSER_SERVER:-}" ]; then
  echo "==> building browser_server (log: ${OUT#"$ROOT"/}/cargo.log)"
  (cd "$ROOT" && timeout "$BUILD_TIMEOUT" cargo build -p weft-examples --example browser_server) \
    >"$OUT/cargo.log" 2>&1 || { tail -n 40 "$OUT/cargo.log" >&2; fail "building browser_server failed"; }
  BROWSER_SERVER="${CARGO_TARGET_DIR:-$ROOT/target}/debug/examples/browser_server"
fi
[ -x "$BROWSER_SERVER" ] || fail "$BROWSER_SERVER is not an executable"

SERVER_LOG="$OUT/server.log"
: >"$SERVER_LOG"
timeout "$SERVER_TIMEOUT" "$BROWSER_SERVER" --http 127.0.0.1:0 --ws 127.0.0.1:0 \
  --bundle "$WORK/dist/bundle.js" >"$SERVER_LOG" 2>&1 &
SERVER_PID=$!
PAGE=""
for _ in $(seq $((READY_TIMEOUT * 5))); do
  PAGE="$(sed -n 's/^page //p' "$SERVER_LOG")"
  [ -n "$PAGE" ] && break
  kill -0 "$SERVER_PID" 2>/dev/null || break
  sleep 0.2
done
if [ -z "$PAGE" ]; then
  cat "$SERVER_LOG" >&2
  fail "browser_server did not print its page URL within ${READY_TIMEOUT}s"
fi
RSOCKET_URL="$(sed -n 's/^rsocket //p' "$SERVER_LOG")"
echo "==> serving $PAGE and $RSOCKET_URL"

# ---- 4. the page in Chromium ----------------------------------------------------------------
echo "==> driving the page in headless Chromium"
NODE_PATH="$WORK/node_modules" CHROMIUM="$CHROMIUM" \
  setsid timeout "$TEST_TIMEOUT" node "$HERE/test.js" "$PAGE" "$OUT" "$RSOCKET_URL" >"$OUT/test.log" 2>&1 &
DRIVER_PID=$!
wait "$DRIVER_PID"
rc=$?
DRIVER_PID=""
sed 's/^/  /' "$OUT/test.log"
if ! kill -0 "$SERVER_PID" 2>/dev/null; then
  echo "  FAIL server_alive: browser_server exited during the test"
  rc=1
fi
if [ "$rc" -ne 0 ]; then
  [ "$rc" -eq 124 ] && echo "  FAIL driver: killed by its ${TEST_TIMEOUT}s time limit"
  echo "  -- browser_server log (${SERVER_LOG#"$ROOT"/}):"
  sed 's/^/    | /' "$SERVER_LOG"
fi
cleanup
echo "browser test: $([ "$rc" -eq 0 ] && echo passed || echo FAILED); output in ${OUT#"$ROOT"/}/"
exit "$rc"
