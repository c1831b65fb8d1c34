#!/usr/bin/env bash
# Sets up everything and runs the whole test suite: the README's test command.
#
# Usage: bash tools/test.sh [build-dir]     (default: build)
# The JUnit report of every test case lands in <build-dir>/meson-logs/testlog.junit.xml.
set -euo pipefail
cd "$(dirname "$0")/.."
build="${1:-build}"

bash tools/setup.sh
if [[ ! -f "$build/build.ninja" ]]; then
  meson setup "$build" --buildtype=release
fi
ninja -C "$build"
meson test -C "$build" --print-errorlogs --num-processes 1
