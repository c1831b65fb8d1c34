#!/usr/bin/env bash
# The GPU check: run it first on any machine with an NVIDIA GPU.
#   bash tools/device_check.sh [log-dir]      (default: $OUT if set, else device-logs/)
# Builds with CUDA enabled (sm_90 only: H100 and H200) -- or, when .devpack/pack.tar.xz is there
# (tools/device_pack.sh), runs that build made elsewhere -- runs every test suite (CUDA tests
# included), benchmarks afd against PyTorch eager on the GPU (tools/bench_gpu,
# tools/bench_gpu_torch.py), runs compute-sanitizer memcheck on the CUDA tests, and prints a short
# table last (also when a stage fails, times out or the script is stopped). Logs go to the log
# directory. Everything fits a deadline of DEVICE_CHECK_BUDGET_S seconds (default 440): each stage
# runs under `timeout`, at most its own cap and never past the deadline minus what the later
# stages need at least. DEVICE_CHECK_BENCH_ARGS adds flags to both benchmarks (a CPU smoke test:
# "--device cpu --precision strict --batch 8 --warmup 0 --reps 1").
#
# On this workplace's lent GPU machines (no Debian packages, no network, 8 files back from $OUT):
# here `bash tools/device_pack.sh`, then run with carry [".devpack"]:
#   bash tools/device_check.sh /tmp/dc > $OUT/summary.txt 2>&1; tar czf $OUT/logs.tgz -C /tmp dc; cat $OUT/summary.txt
set -uo pipefail
cd "$(dirname "$0")/.."
logs="${1:-${OUT:-device-logs}}"
mkdir -p "$logs"
build=build-gpu
deadline=$((SECONDS + ${DEVICE_CHECK_BUDGET_S:-440}))

# stage_timeout CAP RESERVE: seconds for a stage: at most CAP, leaving RESERVE for the later ones.
stage_timeout() {
  local t=$((deadline - SECONDS - $2))
  ((t > $1)) && t=$1
  ((t < 15)) && t=15
  echo "$t"
}
# status_of RC: a word for a stage's exit status under timeout.
status_of() {
  case $1 in 0) echo ok ;; 124 | 137) echo "TIMED OUT" ;; *) echo "FAILED (exit $1)" ;; esac
}

build_status="not run"; tests_status="not run"; memcheck_status="not run"
printed=0
print_table() {
  ((printed)) && return
  printed=1
  echo "== device check =="
  printf "%-12s %s\n" "gpu" "$(head -1 "$logs/gpu.txt" 2>/dev/null)"
  printf "%-12s %s\n" "build" "$build_status"
  local counts
  counts=$(tr '\n' ' ' < "$logs/test_counts.txt" 2>/dev/null)
  printf "%-12s %s%s\n" "tests" "${counts:-no counts}" \
    "$([[ $tests_status == ok ]] || echo " [meson test: $tests_status; suites done: $(grep -E '^ *[0-9]+/[0-9]+ ' \
      "$logs/tests.log" 2>/dev/null | awk '{printf "%s %s, ", $2, $3}')see tests.log]")"
  printf "%-12s %s\n" "cuda" "$(head -2 "$logs/cuda_info.txt" 2>/dev/null | tr '\n' ' ')"
  printf "%-12s %s\n" "memcheck" "$memcheck_status"
  python3 tools/gpu_table.py "$logs/bench_gpu.log" "$logs/bench_gpu_torch.log"
  printf "%-12s %ss\n" "elapsed" "$SECONDS"
}
trap print_table EXIT
trap 'exit 143' TERM INT

# Pins OPENBLAS_CORETYPE to the kernels afd_run chooses (it restarts itself with them where OpenBLAS
# does not know the CPU, tensor/backend.h), so that no later program restarts: compute-sanitizer
# then watches the test process itself.
pin_blas_core() {
  [[ -n ${OPENBLAS_CORETYPE:-} ]] && return
  local core
  core=$("$build/afd_run" version 2>/dev/null | sed -n 's/.*, \([A-Za-z0-9]*\) kernels.*/\1/p')
  if [[ -n $core ]]; then export OPENBLAS_CORETYPE=$core; fi
  echo "OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}" >> "$logs/gpu.txt"
}

{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || echo "nvidia-smi failed"; } \
  > "$logs/gpu.txt" 2>&1
if [[ -f .devpack/pack.tar.xz ]]; then
  # A build made elsewhere (tools/device_pack.sh): for GPU machines that cannot build the project
  # (no Debian packages, no network). Its executables run in place with this machine's CUDA
  # libraries; the tests run executable by executable (meson here may differ from the build's).
  tar -xJf .devpack/pack.tar.xz -C . > "$logs/unpack.log" 2>&1
  read -r rev src build < .devpack/built_from.txt
  # The executables name the source folder by its path where they were built.
  if [[ $src != "$(pwd)" && ! -e $src ]]; then mkdir -p "$(dirname "$src")" && ln -s "$(pwd)" "$src"; fi
  cuda_dirs=$(find /usr/local/cuda*/ /usr/lib /opt \( -name libcudnn.so.9 -o -name libnccl.so.2 -o -name libcublas.so.13 \
    -o -name libcublasLt.so.13 -o -name libcudart.so.13 \) -printf '%h\n' 2>/dev/null | sort -u | tr '\n' ':')
  export LD_LIBRARY_PATH="$(pwd)/.devpack/lib:${cuda_dirs}${LD_LIBRARY_PATH:-}"
  echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH" >> "$logs/unpack.log"
  build_status="prebuilt at ${rev:0:12} (tools/device_pack.sh)"
  pin_blas_core
  export OMP_WAIT_POLICY=passive
  tests_deadline=$((SECONDS + $(stage_timeout 200 130)))
  tests_status=ok
  for t in "$build"/tests/test_* "$build"/tests/*/test_*; do
    [[ -f $t && -x $t ]] || continue
    name=$(basename "$t")
    left=$((tests_deadline - SECONDS))
    if ((left < 5)); then tests_status="TIMED OUT before $name"; break; fi
    timeout -k 5 "$left" "$t" --gtest_output="xml:$logs/junit-$name.xml" > "$logs/test-$name.log" 2>&1
    rc=$?
    echo "$name: $(status_of $rc)" >> "$logs/tests.log"
    ((rc == 0)) || tests_status="$(status_of $rc) in $name"
  done
  python3 tools/count_tests.py "$logs"/junit-*.xml > "$logs/test_counts.txt" 2>&1
  grep -h "\[ info \]" "$logs"/test-*.log > "$logs/cuda_info.txt" 2>/dev/null
else
  bash tools/setup.sh > "$logs/setup.log" 2>&1
  [[ -f $build/build.ninja ]] ||
    meson setup "$build" -Dcuda=enabled --buildtype=release -Dgpu_archs=90 > "$logs/configure.log" 2>&1
  # The build gets what is left after the tests, benchmarks and memcheck have their minimum.
  timeout -k 10 "$(stage_timeout 400 150)" ninja -C "$build" -j16 > "$logs/build.log" 2>&1
  rc=$?; build_status=$(status_of $rc); [[ $rc == 0 ]] || build_status+=" (see build.log)"
  pin_blas_core

  rm -f "$build/meson-logs/testlog.junit.xml"
  timeout -k 10 "$(stage_timeout 150 130)" meson test -C "$build" --print-errorlogs --num-processes 1 \
    > "$logs/tests.log" 2>&1
  tests_status=$(status_of $?)
  python3 tools/count_tests.py "$build/meson-logs/testlog.junit.xml" > "$logs/test_counts.txt" 2>&1
  cp "$build/meson-logs/testlog.junit.xml" "$logs/" 2>/dev/null
  grep -h "\[ info \]" "$build"/meson-logs/testlog.txt > "$logs/cuda_info.txt" 2>/dev/null
fi

# afd and PyTorch on the same GPU: 3 warm-up steps, median of 20, at most ~6 s per workload.
timeout -k 5 "$(stage_timeout 90 80)" "$build/tools/bench_gpu" --precision both --warmup 3 --reps 20 \
  ${DEVICE_CHECK_BENCH_ARGS:-} > "$logs/bench_gpu.log" 2>&1
echo "exit status $?" >> "$logs/bench_gpu.log"
timeout -k 5 "$(stage_timeout 90 35)" python3 tools/bench_gpu_torch.py --precision both --warmup 3 --reps 20 \
  ${DEVICE_CHECK_BENCH_ARGS:-} > "$logs/bench_gpu_torch.log" 2>&1
echo "exit status $?" >> "$logs/bench_gpu_torch.log"

sanitizer=${COMPUTE_SANITIZER:-/usr/local/cuda/bin/compute-sanitizer}
if [[ ! -x $sanitizer ]]; then
  memcheck_status="not run (no $sanitizer)"
elif [[ ! -x $build/tests/test_tensor ]]; then
  memcheck_status="not run (no $build/tests/test_tensor)"
else
  timeout -k 5 "$(stage_timeout 120 5)" "$sanitizer" --tool memcheck --error-exitcode 99 \
    "$build/tests/test_tensor" --gtest_filter='*Cuda*' > "$logs/memcheck.log" 2>&1
  rc=$?
  summary=$(grep -h "ERROR SUMMARY" "$logs/memcheck.log" | tail -1 | sed 's/^=* *//')
  tests=$(grep -h "^\[  PASSED  \]\|^\[  FAILED  \]\|^\[  SKIPPED \]" "$logs/memcheck.log" | tr -s ' ' | tr '\n' ' ')
  case $rc in
    0) memcheck_status="ok: ${summary:-no summary} ${tests}" ;;
    99) memcheck_status="ERRORS: ${summary} (see memcheck.log)" ;;
    *) memcheck_status="$(status_of $rc): ${summary:-no summary} ${tests}(see memcheck.log)" ;;
  esac
fi
