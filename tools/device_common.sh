# Sourced by tools/device_check.sh and tools/device_autoattack.sh, the scripts run on a lent GPU
# machine (no Debian packages, no network, a hard time limit per call).
#
# unpack_devpack LOGDIR [ARCHIVE] unpacks ARCHIVE (default .devpack/pack.tar.xz;
# tools/device_pack.sh) in the repository root and sets up the build made elsewhere to run in place
# with this machine's CUDA libraries. It sets build (the build folder), build_status (MISMATCH when
# tracked files differ from those the pack was built from), preflight (the libraries ldd cannot
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

# The CUDA libraries the executables load (CUDA 13, cuDNN 9, NCCL 2).
cuda_libs=(libcudart.so.13 libcublas.so.13 libcublasLt.so.13 libcudnn.so.9 libnccl.so.2)

# find_lib_dirs SECONDS DIR...: the folders under DIRs that hold any of cuda_libs, each once.
find_lib_dirs() {
  local seconds=$1 names=() lib
  shift
  for lib in "${cuda_libs[@]}"; do names+=(-o -name "$lib"); done
  timeout "$seconds" find "$@" \( "${names[@]:1}" \) -printf '%h\n' 2> /dev/null | awk '!seen[$0]++'
}

unpack_devpack() {
  local logs=$1 archive=${2:-.devpack/pack.tar.xz} rev head src dirs wheels lib d found unresolved changed
  # tar needs the xz program for .tar.xz; Python's tarfile does without it.
  if command -v xz > /dev/null; then
    timeout -k 5 120 tar -xJf "$archive" -C . > "$logs/unpack.log" 2>&1
  else
    echo "no xz program: unpacking with Python's tarfile" > "$logs/unpack.log"
    plain timeout -k 5 120 python3 -c 'import sys, tarfile
kw = {"filter": "fully_trusted"} if hasattr(tarfile, "fully_trusted_filter") else {}
tarfile.open(sys.argv[1]).extractall(".", **kw)' "$archive" >> "$logs/unpack.log" 2>&1
  fi
  if (($? != 0)) || [[ ! -f .devpack/built_from.txt ]]; then
    build_status="unpack of $archive FAILED (see unpack.log)"
    preflight="not run"
    return 1
  fi
  read -r rev head src build < .devpack/built_from.txt
  # The executables name the source folder by its path where they were built.
  if [[ $src != "$(pwd)" && ! -e $src ]]; then mkdir -p "$(dirname "$src")" && ln -s "$(pwd)" "$src"; fi
  # CUDA's libraries: first /usr/local/cuda and the NVIDIA wheels of the Python that holds PyTorch
  # (cuDNN and NCCL may come only as wheels); a search of /usr/lib and /opt (which can hold large
  # Python environments) only for what is still missing.
  wheels=$(plain timeout 60 python3 -c 'import nvidia; print(*nvidia.__path__)' 2> /dev/null)
  # shellcheck disable=SC2086  # one folder per word
  dirs=$(find_lib_dirs 30 /usr/local/cuda*/ $wheels)
  for lib in "${cuda_libs[@]}"; do
    found=""
    for d in $dirs; do [[ -e $d/$lib ]] && found=$d; done
    if [[ -z $found ]]; then
      echo "$lib: not in /usr/local/cuda or the NVIDIA wheels; searching /usr/lib and /opt" >> "$logs/unpack.log"
      dirs+=$'\n'$(find_lib_dirs 90 /usr/lib /opt)
      break
    fi
  done
  dirs=$(awk 'NF && !seen[$0]++' <<< "$dirs" | tr '\n' ':')
  export LD_LIBRARY_PATH="$(pwd)/.devpack/lib:${dirs}${orig_ld}"
  echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH" >> "$logs/unpack.log"
  ldd "$build/afd_run" >> "$logs/unpack.log" 2>&1
  unresolved=$(ldd "$build/afd_run" "$build"/tests/test_* "$build"/tests/*/test_* 2>/dev/null | grep 'not found' | sort -u | tr -s ' \t' ' ')
  preflight=${unresolved:+"MISSING LIBRARIES:$unresolved"}
  preflight=${preflight:-"all libraries found (ldd afd_run in unpack.log)"}
  build_status="prebuilt at $rev (tools/device_pack.sh)"
  # A pack built from other sources than this tree's runs other code than the tree holds. The
  # tree travels without .git: the pack's sha1 list of the tracked files it was built from says.
  if [[ -f .devpack/sources.sha1 ]]; then
    changed=$(sha1sum --quiet -c .devpack/sources.sha1 2> /dev/null | sed 's/: .*//' | paste -sd ' ')
    if [[ -n $changed ]]; then
      build_status+=" MISMATCH: files differ from the pack's sources: ${changed:0:300}; run tools/device_pack.sh again"
    fi
  else
    build_status+=" (no sources.sha1 in the pack: not checked against this tree)"
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
