# Sourced by tools/device_check.sh and tools/device_autoattack.sh, the scripts run on a lent GPU
# machine (no Debian packages, no network, a hard time limit per call).
#
# unpack_devpack LOGDIR [ARCHIVE] unpacks ARCHIVE (default .devpack/pack.tar.xz;
# tools/device_pack.sh) in the repository root and sets up the build made elsewhere to run in place
# with this machine's CUDA libraries. It sets build (the build folder), build_status (MISMATCH when
# the pack was made from another commit than this tree's), preflight (the libraries ldd cannot
# find, if any) and LD_LIBRARY_PATH, and logs to LOGDIR/unpack.log; it fails, saying so in
# build_status, when the archive does not unpack.
#
# `plain CMD` runs CMD with the LD_LIBRARY_PATH of before (Python and PyTorch bring their own CUDA
# libraries).
#
# `stage OUT ERR timeout ... CMD` runs one long step (a build, a test suite, a benchmark) with its
# stdout written to the file OUT and its stderr to ERR (the same file, or another) and returns its
# exit status. It starts `timeout` (a program, or `env VAR=value timeout ...`; not a shell
# function) in the background and waits for it, because bash runs a trap only after the
# foreground command ends, and `timeout` moves itself and its command to a process group of their
# own that a TERM to the script's group does not reach: without this, a script stopped at its
# limit would wait out the whole step and could lose its summary. `stop_stage` (in the scripts'
# TERM trap) stops the step's process group. The files are named here, not by a redirection of
# the call, which would still hold the script's own output while the trap runs.
# `save_to_out LOGDIR` copies LOGDIR/summary.txt and LOGDIR as logs.tgz into $OUT when it is set
# (the files that come back from a lent machine).
orig_ld=${LD_LIBRARY_PATH:-}
plain() { env LD_LIBRARY_PATH="$orig_ld" "$@"; }

unpack_devpack() {
  local logs=$1 archive=${2:-.devpack/pack.tar.xz} rev head src cuda_dirs unresolved here
  if ! timeout -k 5 120 tar -xJf "$archive" -C . > "$logs/unpack.log" 2>&1; then
    build_status="unpack of $archive FAILED (see unpack.log)"
    preflight="not run"
    return 1
  fi
  read -r rev head src build < .devpack/built_from.txt
  # The executables name the source folder by its path where they were built.
  if [[ $src != "$(pwd)" && ! -e $src ]]; then mkdir -p "$(dirname "$src")" && ln -s "$(pwd)" "$src"; fi
  # CUDA's libraries: the folders that hold them, /usr/local/cuda's first, each folder once.
  cuda_dirs=$(timeout 30 find /usr/local/cuda*/ /usr/lib /opt \( -name libcudnn.so.9 -o -name libnccl.so.2 \
    -o -name libcublas.so.13 -o -name libcublasLt.so.13 -o -name libcudart.so.13 \) -printf '%h\n' 2>/dev/null |
    awk '!seen[$0]++' | tr '\n' ':')
  export LD_LIBRARY_PATH="$(pwd)/.devpack/lib:${cuda_dirs}${orig_ld}"
  echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH" >> "$logs/unpack.log"
  ldd "$build/afd_run" >> "$logs/unpack.log" 2>&1
  unresolved=$(ldd "$build/afd_run" "$build"/tests/test_* "$build"/tests/*/test_* 2>/dev/null | grep 'not found' | sort -u | tr -s ' \t' ' ')
  preflight=${unresolved:+"MISSING LIBRARIES:$unresolved"}
  preflight=${preflight:-"all libraries found (ldd afd_run in unpack.log)"}
  build_status="prebuilt at $rev (tools/device_pack.sh)"
  # A pack made from another commit than this tree's runs other code than the tree holds.
  here=$(git rev-parse HEAD 2>/dev/null || true)
  if [[ -n $here && $here != "$head" ]]; then
    build_status+=" MISMATCH: this tree is at ${here:0:12}; run tools/device_pack.sh again"
  fi
}

stage_pid=""
stage() {
  local out=$1 err=$2
  shift 2
  if [[ $err == "$out" ]]; then "$@" > "$out" 2>&1 & else "$@" > "$out" 2> "$err" & fi
  stage_pid=$!
  wait "$stage_pid"
  local rc=$?
  stage_pid=""
  return "$rc"
}
stop_stage() {
  [[ -n $stage_pid ]] || return 0
  # timeout leads a group of its own (its pid) once it has started; before that, the pid alone.
  kill -TERM -- "-$stage_pid" 2> /dev/null || kill -TERM "$stage_pid" 2> /dev/null
  stage_pid=""
}

save_to_out() {
  local logs=$1
  [[ -n ${OUT:-} && -d ${OUT:-} ]] || return 0
  cp "$logs/summary.txt" "$OUT/summary.txt" 2> /dev/null
  tar czf "$OUT/logs.tgz" -C "$(dirname "$logs")" "$(basename "$logs")" 2> /dev/null
}
