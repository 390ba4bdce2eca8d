#!/usr/bin/env bash
# Runs the fuzz targets, each for a bounded time, and prints how many inputs each executed.
#
#   framework/fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]
#
# SECONDS_PER_TARGET defaults to $FUZZ_SECONDS, else 30. TARGETs default to all three:
# frame_decode, metadata, connection. Each starts from its committed seeds (seeds/<target>)
# and the corpus earlier runs grew (corpus/<target>, not committed). A crash, a panic, an
# input that runs longer than 10 s, or an allocation over FUZZ_MALLOC_LIMIT_MB (default 256)
# fails the run; libFuzzer writes the input to artifacts/<target>/, and
# `cargo fuzz run <target> <file>` replays it.
#
# cargo-fuzz is installed if missing. The toolchain is stable, and cargo-fuzz's default
# AddressSanitizer build needs the unstable -Zsanitizer flag, so RUSTC_BOOTSTRAP=1 unlocks it
# here; FUZZ_SANITIZER=none builds without a sanitizer (libFuzzer's coverage works on stable
# as it is), and is used by itself if the sanitizer build fails.
set -uo pipefail
cd "$(dirname "$0")"

seconds="${1:-${FUZZ_SECONDS:-30}}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(frame_decode metadata connection)
sanitizer="${FUZZ_SANITIZER:-address}"
malloc_limit="${FUZZ_MALLOC_LIMIT_MB:-256}"

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "==> installing cargo-fuzz"
  if ! cargo install cargo-fuzz --locked; then
    # Nothing of the project's is wrong then, and the property test (`cargo test`) has run the
    # same checks: say so loudly rather than fail.
    echo "SKIPPED: cargo-fuzz could not be installed, so no fuzzing ran" >&2
    exit 0
  fi
fi

export RUSTC_BOOTSTRAP=1
echo "==> building the fuzz targets (sanitizer: $sanitizer)"
if ! cargo fuzz build --sanitizer "$sanitizer"; then
  if [ "$sanitizer" = none ]; then
    echo "the fuzz targets do not build" >&2
    exit 1
  fi
  echo "==> the $sanitizer build failed; building without a sanitizer"
  sanitizer=none
  cargo fuzz build --sanitizer none || { echo "the fuzz targets do not build" >&2; exit 1; }
fi

failed=()
summary=()
for target in "${targets[@]}"; do
  mkdir -p "corpus/$target" "artifacts/$target"
  log="$(mktemp)"
  echo "==> fuzzing $target for ${seconds}s"
  # -max_len: programs and frames this long reach every path; longer ones only run slower.
  cargo fuzz run --sanitizer "$sanitizer" "$target" "corpus/$target" "seeds/$target" -- \
    -max_total_time="$seconds" -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
    -malloc_limit_mb="$malloc_limit" -print_final_stats=1 >"$log" 2>&1
  status=$?
  execs="$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)"
  if [ $status -ne 0 ]; then
    tail -n 60 "$log"
    failed+=("$target")
    summary+=("$target: FAILED after ${execs:-?} executions (input in framework/fuzz/artifacts/$target/)")
  else
    tail -n 3 "$log"
    summary+=("$target: ${execs:-?} executions in ${seconds}s, no crash")
  fi
  rm -f "$log"
done

echo "==> fuzzing summary"
printf '  %s\n' "${summary[@]}"
[ ${#failed[@]} -eq 0 ]
