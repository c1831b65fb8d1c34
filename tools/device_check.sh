#!/usr/bin/env bash
# The GPU check: run it first on any machine with an NVIDIA GPU.
#   bash tools/device_check.sh [log-dir]      (default: $OUT if set, else device-logs/)
# Builds with CUDA enabled, runs every test suite (CUDA tests included), runs the benchmarks that
# exist for the GPU, and prints a short table last. Logs go to the log directory.
set -uo pipefail
cd "$(dirname "$0")/.."
logs="${1:-${OUT:-device-logs}}"
mkdir -p "$logs"
build=build-gpu

{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || echo "nvidia-smi failed"; } \
  > "$logs/gpu.txt" 2>&1
bash tools/setup.sh > "$logs/setup.log" 2>&1
[[ -f $build/build.ninja ]] || meson setup "$build" -Dcuda=enabled --buildtype=release > "$logs/configure.log" 2>&1
ninja -C "$build" > "$logs/build.log" 2>&1
build_status=$?
meson test -C "$build" --print-errorlogs --num-processes 1 > "$logs/tests.log" 2>&1
python3 tools/count_tests.py "$build/meson-logs/testlog.junit.xml" > "$logs/test_counts.txt" 2>&1
cp "$build/meson-logs/testlog.junit.xml" "$logs/" 2>/dev/null
grep -h "\[ info \]" "$build"/meson-logs/testlog.txt > "$logs/cuda_info.txt" 2>/dev/null

echo "== device check =="
printf "%-12s %s\n" "gpu" "$(head -1 "$logs/gpu.txt")"
printf "%-12s %s\n" "build" "$([[ $build_status == 0 ]] && echo ok || echo "FAILED (see build.log)")"
printf "%-12s %s\n" "tests" "$(tail -1 "$logs/test_counts.txt")"
printf "%-12s %s\n" "cuda" "$(head -2 "$logs/cuda_info.txt" | tr '\n' ' ')"
echo "(GPU benchmarks against PyTorch join this table with the CUDA backend.)"
