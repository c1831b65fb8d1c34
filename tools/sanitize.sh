#!/usr/bin/env bash
# Builds the CPU suites with AddressSanitizer + UndefinedBehaviorSanitizer (CUDA disabled) and
# runs them; any memory error, leak or undefined behaviour fails the test that triggered it.
#
# Usage: bash tools/sanitize.sh [build-dir]     (default: build-asan)
set -euo pipefail
cd "$(dirname "$0")/.."
build="${1:-build-asan}"

bash tools/setup.sh
if [[ ! -f "$build/build.ninja" ]]; then
  # -O1 with line tables (-g1), as the AddressSanitizer docs suggest: half the compile time of
  # debugoptimized (-O2 -g; measured on test_minimal_norm.cpp) with the same stack traces.
  meson setup "$build" -Dcuda=disabled -Db_sanitize=address,undefined -Db_lundef=false \
    --buildtype=plain -Doptimization=1 -Dcpp_args='-g1 -fno-omit-frame-pointer'
fi
ninja -C "$build"
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
meson test -C "$build" --print-errorlogs --num-processes 1 --timeout-multiplier 4
