#!/usr/bin/env bash
# Builds the browser example's page script: installs the packages pinned in package.json (the
# page's rsocket-js 0.0.27 packages, esbuild, and playwright-core for test.sh) into
# examples/browser/work/ (git-ignored), then bundles src/main.js into work/dist/bundle.js, which
# browser_server serves next to index.html.
#
#   bash examples/browser/build.sh
#
# Every step is bounded (BROWSER_INSTALL_TIMEOUT, default 600 s, for npm). Output of npm goes to
# work/install.log and is shown only when it fails.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
WORK="$HERE/work"
INSTALL_TIMEOUT="${BROWSER_INSTALL_TIMEOUT:-600}"

for tool in node npm timeout; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "browser build: '$tool' not found on PATH" >&2
    exit 1
  fi
done

mkdir -p "$WORK"
cp "$HERE/package.json" "$WORK/package.json"
# playwright-core never downloads a browser by itself; the variable keeps it that way should a
# later version try: the test drives the machine's Chromium.
if ! (cd "$WORK" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 timeout "$INSTALL_TIMEOUT" \
      npm install --no-audit --no-fund --no-package-lock) >"$WORK/install.log" 2>&1; then
  echo "browser build: npm install failed; its log:" >&2
  cat "$WORK/install.log" >&2
  exit 1
fi

# The source is copied next to node_modules so that esbuild resolves the packages from there.
rm -rf "$WORK/src" "$WORK/dist"
cp -R "$HERE/src" "$WORK/src"
# - `buffer`: rsocket-core requires Node's `buffer` module; in the browser the npm package of
#   that name (pinned in package.json) stands in for it.
# - `global`: rsocket-core probes `global` for Node's Buffer; in a page that is `globalThis`.
timeout 120 "$WORK/node_modules/.bin/esbuild" "$WORK/src/main.js" \
  --bundle --format=iife --platform=browser --target=es2018 \
  --define:global=globalThis --define:process.env.NODE_ENV='"production"' \
  --log-level=warning --outfile="$WORK/dist/bundle.js"
echo "built ${WORK#"$(pwd)"/}/dist/bundle.js ($(wc -c <"$WORK/dist/bundle.js") bytes)"
