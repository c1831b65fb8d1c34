#!/usr/bin/env bash
# The GPU check: run it first on any machine with an NVIDIA GPU.
#   bash tools/device_check.sh [log-dir]      (default: /tmp/device-logs if $OUT is set, else device-logs/)
# Builds with CUDA enabled (sm_90 only: H100 and H200) -- or, when .devpack/pack.tar.xz is there
# (tools/device_pack.sh), runs that build made elsewhere -- runs every test suite (CUDA tests
# included), benchmarks afd against PyTorch eager on the GPU (tools/bench_gpu,
# tools/bench_gpu_torch.py), runs compute-sanitizer memcheck on the CUDA tests, profiles one
# ResNet18 step of each with ncu and torch.profiler (tools/kernel_table.py), and prints a short
# table last (also when a stage fails, times out or the script is stopped). Logs go to the log
# directory. Everything fits a deadline of DEVICE_CHECK_BUDGET_S seconds (default 440): each stage
# runs under `timeout`, at most its own cap and never past the deadline minus what the later
# stages need at least. DEVICE_CHECK_BENCH_ARGS adds flags to both benchmarks (a CPU smoke test:
# "--device cpu --precision strict --batch 8 --warmup 0 --reps 1").
#
# Progress lines are printed as the stages end. When $OUT is set, the table goes to
# $OUT/summary.txt and the logs to $OUT/logs.tgz after the tests, after the benchmarks and at the
# exit; a TERM stops the running stage at once and exits the same way, so a run stopped at its
# limit still brings its logs back.
#
# On this workplace's lent GPU machines (no Debian packages, no network, 8 files back from $OUT):
# here commit, then `bash tools/device_pack.sh`, then run with carry [".devpack/pack.tar.xz"] and
# timeout_s 600:
#   timeout -s TERM 570 bash tools/device_check.sh /tmp/dc
set -uo pipefail
cd "$(dirname "$0")/.."
# Not $OUT itself: only a few files come back from it (save_to_out puts the table and the logs
# there).
logs="${1:-$([[ -n ${OUT:-} ]] && echo /tmp/device-logs || echo device-logs)}"
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

build_status="not run"; tests_status="not run"; memcheck_status="not run"; preflight="not run"
profile_status=("not run")
interrupted=""
# unpack_devpack; plain: Python (PyTorch's own CUDA libraries) runs without the LD_LIBRARY_PATH set
# for afd's programs; stage, stop_stage and save_to_out.
source tools/device_common.sh
progress() { echo "[$(printf '%4d' "$SECONDS") s] $*"; }
table() {
  echo "== device check =="
  [[ -n $interrupted ]] && printf "%-12s %s\n" "INTERRUPTED" "$interrupted: the stages after it did not run"
  printf "%-12s %s\n" "preflight" "$preflight"
  printf "%-12s %s\n" "gpu" "$(head -1 "$logs/gpu.txt" 2>/dev/null)"
  printf "%-12s %s\n" "build" "$build_status"
  local counts
  # Stopped in the middle of the tests: count the suites that finished.
  if [[ ! -f $logs/test_counts.txt ]] && compgen -G "$logs/junit-*.xml" > /dev/null; then
    plain python3 tools/count_tests.py "$logs"/junit-*.xml > "$logs/test_counts.txt" 2>&1
  fi
  counts=$(tr '\n' ' ' 2>/dev/null < "$logs/test_counts.txt")
  printf "%-12s %s%s\n" "tests" "${counts:-no counts}" \
    "$([[ $tests_status == ok ]] || echo " [$tests_status; not ok: $(grep -v -E ': ok$|^ *[0-9]+/[0-9]+ .* OK ' \
      "$logs/tests.log" 2>/dev/null | grep -E ': |^ *[0-9]+/[0-9]+ ' | tr -s ' ' | head -8 | tr '\n' ';') see tests.log]")"
  printf "%-12s %s\n" "cuda" "$(head -2 "$logs/cuda_info.txt" 2>/dev/null | tr '\n' ' ')"
  printf "%-12s %s\n" "memcheck" "$memcheck_status"
  local line
  for line in "${profile_status[@]}"; do printf "%-12s %s\n" "profile" "$line"; done
  plain python3 tools/gpu_table.py "$logs/bench_gpu.log" "$logs/bench_gpu_torch.log"
  [[ -f $logs/bench_gpu_timed.log ]] && plain python3 tools/gpu_table.py "$logs/bench_gpu_timed.log" \
    "$logs/bench_gpu_torch_timed.log" "cuDNN algorithms chosen by timing on both sides (cudnn.benchmark):"
  printf "%-12s %ss\n" "elapsed" "$SECONDS"
}
on_exit() {
  table | tee "$logs/summary.txt"
  save_to_out "$logs"
}
# The table so far, into $OUT too, after each stage: should the run be killed outright (SIGKILL at
# the call's limit, no trap), the last snapshot still comes back.
snapshot() {
  table > "$logs/summary.txt"
  save_to_out "$logs"
}
trap on_exit EXIT
# The running stage is stopped at once (stage, stop_stage: tools/device_common.sh).
trap 'interrupted="stopped by a signal at ${SECONDS} s"; stop_stage; exit 143' TERM INT

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

{ timeout -k 5 30 nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader ||
  echo "nvidia-smi failed"; } > "$logs/gpu.txt" 2>&1
progress "gpu: $(head -1 "$logs/gpu.txt")"
if [[ -f .devpack/pack.tar.xz ]]; then
  # A build made elsewhere (tools/device_pack.sh): for GPU machines that cannot build the project
  # (no Debian packages, no network). Its executables run in place with this machine's CUDA
  # libraries; the tests run executable by executable (meson here may differ from the build's).
  unpack_devpack "$logs" || exit 1
  progress "unpacked: $build_status; $preflight"
  pin_blas_core
  export OMP_WAIT_POLICY=passive
  tests_deadline=$((SECONDS + $(stage_timeout 200 130)))
  tests_status="stopped during the tests"; tests_failed=""
  # The suites with GPU tests first (parity, CUDA backend; NCCL), so a run short of time has them.
  declare -A seen=()
  for t in "$build"/tests/test_tensor "$build"/tests/dist/test_dist "$build"/tests/test_* "$build"/tests/*/test_*; do
    [[ -f $t && -x $t && -z ${seen[$t]:-} ]] || continue
    seen[$t]=1
    name=$(basename "$t")
    left=$((tests_deadline - SECONDS))
    if ((left < 5)); then tests_failed="TIMED OUT before $name"; break; fi
    # The parity tests' log names each convolution plan's cuDNN algorithms ("[ cudnn ]" lines).
    log_cudnn=""; [[ $name == test_tensor ]] && log_cudnn=1
    stage "$logs/test-$name.log" "$logs/test-$name.log" env AFD_LOG_CUDNN=$log_cudnn timeout -k 5 "$left" "$t" \
      --gtest_output="xml:$logs/junit-$name.xml"
    rc=$?
    status=$(status_of $rc)
    # A suite that crashed or was stopped writes no XML: its tests are missing from the counts.
    [[ -f $logs/junit-$name.xml ]] || status+=" (no JUnit XML: its tests are not counted)"
    echo "$name: $status" >> "$logs/tests.log"
    progress "tests $name: $status"
    ((rc == 0)) || tests_failed="$(status_of $rc) in $name"
  done
  tests_status=${tests_failed:-ok}
  plain python3 tools/count_tests.py "$logs"/junit-*.xml > "$logs/test_counts.txt" 2>&1
  grep -h "\[ info \]" "$logs"/test-*.log > "$logs/cuda_info.txt" 2>/dev/null
else
  if ! pkg-config --exists fmt 2>/dev/null && ! command -v apt-get > /dev/null; then
    build_status="not run: no .devpack/pack.tar.xz, and this machine can neither build (no fmt) nor install"
    build_status+=" (run tools/device_pack.sh where the project builds, and carry .devpack)"
    exit 1
  fi
  # (apt-get on a machine without a network can wait long: bounded.)
  stage "$logs/setup.log" "$logs/setup.log" timeout -k 5 120 bash tools/setup.sh ||
    { build_status="not run: tools/setup.sh failed or timed out (see setup.log)"; exit 1; }
  [[ -f $build/build.ninja ]] ||
    meson setup "$build" -Dcuda=enabled --buildtype=release -Dgpu_archs=90 > "$logs/configure.log" 2>&1
  # The build gets what is left after the tests, benchmarks and memcheck have their minimum.
  stage "$logs/build.log" "$logs/build.log" timeout -k 10 "$(stage_timeout 400 150)" ninja -C "$build" -j16
  rc=$?; build_status=$(status_of $rc); [[ $rc == 0 ]] || build_status+=" (see build.log)"
  progress "build: $build_status"
  preflight="built here"
  pin_blas_core

  rm -f "$build/meson-logs/testlog.junit.xml"
  stage "$logs/tests.log" "$logs/tests.log" \
    timeout -k 10 "$(stage_timeout 150 130)" meson test -C "$build" --print-errorlogs --num-processes 1
  tests_status=$(status_of $?)
  progress "tests: $tests_status"
  plain python3 tools/count_tests.py "$build/meson-logs/testlog.junit.xml" > "$logs/test_counts.txt" 2>&1
  cp "$build/meson-logs/testlog.junit.xml" "$logs/" 2>/dev/null
  grep -h "\[ info \]" "$build"/meson-logs/testlog.txt > "$logs/cuda_info.txt" 2>/dev/null
fi

snapshot

# afd and PyTorch on the same GPU: 3 warm-up steps, median of 20, at most ~6 s per workload.
stage "$logs/bench_gpu.log" "$logs/bench_gpu.log" \
  timeout -k 5 "$(stage_timeout 90 80)" "$build/tools/bench_gpu" --precision both --warmup 3 --reps 20 \
  ${DEVICE_CHECK_BENCH_ARGS:-}
echo "exit status $?" >> "$logs/bench_gpu.log"
progress "bench_gpu: $(tail -1 "$logs/bench_gpu.log")"
stage "$logs/bench_gpu_torch.log" "$logs/bench_gpu_torch.log" \
  env LD_LIBRARY_PATH="$orig_ld" timeout -k 5 "$(stage_timeout 90 35)" python3 tools/bench_gpu_torch.py \
  --precision both --warmup 3 --reps 20 ${DEVICE_CHECK_BENCH_ARGS:-}
echo "exit status $?" >> "$logs/bench_gpu_torch.log"
progress "bench_gpu_torch: $(tail -1 "$logs/bench_gpu_torch.log")"
# The ResNet18 again with cuDNN's algorithms chosen by timing on both sides (bench_gpu
# --cudnn-benchmark, torch.backends.cudnn.benchmark = True): does the heuristics' choice cost afd?
stage "$logs/bench_gpu_timed.log" "$logs/bench_gpu_timed.log" \
  timeout -k 5 "$(stage_timeout 60 70)" "$build/tools/bench_gpu" --precision both --warmup 3 --reps 20 \
  --only cifar_resnet18 --cudnn-benchmark ${DEVICE_CHECK_BENCH_ARGS:-}
echo "exit status $?" >> "$logs/bench_gpu_timed.log"
stage "$logs/bench_gpu_torch_timed.log" "$logs/bench_gpu_torch_timed.log" \
  env LD_LIBRARY_PATH="$orig_ld" timeout -k 5 "$(stage_timeout 60 60)" python3 tools/bench_gpu_torch.py \
  --precision both --warmup 3 --reps 20 --only cifar_resnet18 --cudnn-benchmark ${DEVICE_CHECK_BENCH_ARGS:-}
echo "exit status $?" >> "$logs/bench_gpu_torch_timed.log"
progress "bench (cuDNN algorithms by timing): $(tail -1 "$logs/bench_gpu_timed.log"), torch $(tail -1 "$logs/bench_gpu_torch_timed.log")"
snapshot

# compute-sanitizer: $COMPUTE_SANITIZER, on the PATH, or in a CUDA folder.
sanitizer=${COMPUTE_SANITIZER:-$(command -v compute-sanitizer ||
  ls /usr/local/cuda*/bin/compute-sanitizer /usr/local/cuda*/compute-sanitizer/compute-sanitizer \
    /opt/nvidia/*/compute-sanitizer/compute-sanitizer 2>/dev/null | head -1)}
# memcheck NAME EXE FILTER CAP RESERVE: one memcheck run of EXE's tests matching FILTER (its log
# memcheck-NAME.log), at most CAP seconds and leaving RESERVE; appends "NAME: result" to the status.
memcheck() {
  local name=$1 exe=$2 filter=$3 log="$logs/memcheck-$1.log" rc summary tests result
  stage "$log" "$log" timeout -k 5 "$(stage_timeout "$4" "$5")" "$sanitizer" --tool memcheck --report-api-errors no \
    --error-exitcode 99 "$exe" --gtest_filter="$filter"
  rc=$?
  summary=$(grep -h "ERROR SUMMARY" "$log" | tail -1 | sed 's/^=* *//')
  # gtest's count lines only ("[  PASSED  ] 12 tests."), not the list of each skipped or failed test.
  tests=$(grep -h -E '^\[  (PASSED|FAILED|SKIPPED) +\] [0-9]+ tests?[,.]' "$log" | sed 's/, listed below://' | tr -s ' ' | tr '\n' ' ')
  case $rc in
    0) result="ok: ${summary:-no summary} ${tests}" ;;
    99) result="ERRORS: ${summary} (see memcheck-$name.log)" ;;
    *) result="$(status_of $rc): ${summary:-no summary} ${tests}(see memcheck-$name.log)" ;;
  esac
  # Some sandboxes (gVisor) have the device refused by the sanitizer itself.
  grep -q "Device not supported" "$log" && result="not supported on this machine (compute-sanitizer: Device not supported)"
  memcheck_status+="${memcheck_status:+; }$name: $result"
  progress "memcheck $name: $result"
}
if [[ ! -x $sanitizer ]]; then
  memcheck_status="not run (no compute-sanitizer found)"
elif [[ ! -x $build/tests/test_tensor ]]; then
  memcheck_status="not run (no $build/tests/test_tensor)"
else
  memcheck_status=""
  # Not the out-of-memory test (its failed 256 TiB cudaMalloc is the point, and API errors are not
  # memory errors) nor the ResNet18 parity tests, the 16 GiB slab copies and the timed algorithm
  # search (cudnnFind tries every algorithm with large workspaces: too slow under
  # memcheck). The backend's own tests first, then the op parity, then the gradient checks on CUDA.
  memcheck backend "$build/tests/test_tensor" 'Cuda.*:CudaBackend.*:-CudaBackend.OutOfMemory*:*Over2GiB*:*ChosenByTiming*' 60 70
  memcheck parity "$build/tests/test_tensor" 'CudaParity*:-*ResNet18*' 70 25
  [[ -x $build/tests/test_autograd ]] && memcheck gradcheck "$build/tests/test_autograd" 'GradcheckCuda.*' 40 5
fi
snapshot

# Where a step's time goes: the kernels of one CIFAR ResNet18 step (strict fp32) of afd, recorded by
# Nsight Compute over bench_gpu --profile-one-step (only that step: --profile-from-start off; the
# card's clocks and caches left as they are), beside PyTorch's from torch.profiler; each compared
# with the benchmark's own step time above (tools/kernel_table.py). Only with time to spare.
ncu=${NCU:-$(command -v ncu || ls /usr/local/cuda*/bin/ncu /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)}
if [[ ! -x $ncu ]]; then
  profile_status=("not run (no ncu found)")
else
  profile_status=()
  for workload in train attack; do
    if ((deadline - SECONDS < 45)); then profile_status+=("$workload: not run (out of time)"); continue; fi
    stage "$logs/ncu-$workload.csv" "$logs/ncu-$workload.log" timeout -k 5 "$(stage_timeout 90 10)" "$ncu" \
      --profile-from-start off --clock-control none --cache-control none --metrics gpu__time_duration.sum --csv \
      "$build/tools/bench_gpu" --only cifar_resnet18 --precision strict --workload "$workload" --profile-one-step \
      --warmup 2
    rc=$?
    stage "$logs/torch-profile-$workload.log" "$logs/torch-profile-$workload.log" \
      env LD_LIBRARY_PATH="$orig_ld" timeout -k 5 "$(stage_timeout 60 5)" python3 tools/bench_gpu_torch.py \
      --only cifar_resnet18 --precision strict --workload "$workload" --profile-one-step --warmup 2
    table_args=(--model cifar_resnet18 --workload "$workload" --precision strict --afd-csv "$logs/ncu-$workload.csv"
      --afd-bench "$logs/bench_gpu.log" --torch-profile "$logs/torch-profile-$workload.log"
      --torch-bench "$logs/bench_gpu_torch.log")
    plain python3 tools/kernel_table.py "${table_args[@]}" > "$logs/profile-$workload.txt" 2>&1
    line=$(plain python3 tools/kernel_table.py "${table_args[@]}" --summary-line 2>&1 | tail -1)
    ((rc == 0)) || line="ncu $(status_of $rc) (see ncu-$workload.log); $line"
    profile_status+=("$line")
    progress "profile $workload: $line"
  done
fi
