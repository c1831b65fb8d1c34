#!/usr/bin/env bash
# Builds the libFuzzer targets for every parser of files from outside (IDX, CIFAR binary,
# safetensors, afd_run flagfiles, AutoAttack state files, checkpoint configs) with clang 14 (ASan + UBSan) and, given a duration, runs each for
# that many seconds on its committed seed corpus (fuzz/corpus/TARGET/, small valid files).
#
#   bash fuzz/build.sh              # build build-fuzz/fuzz_{idx,cifar,safetensors,flagfile,autoattack_state,train_config}
#   bash fuzz/build.sh 60           # build, then fuzz each target for 60 s (CI-sized: 20)
#   bash fuzz/build.sh 600 idx      # only the named targets, 10 minutes each
#
# Needs clang-14 and libclang-rt-14-dev (libFuzzer), plus the project's packages (fmt, OpenBLAS, zlib).
# A crash leaves its input as build-fuzz/crash-*; rerun one input with build-fuzz/fuzz_X FILE.
set -euo pipefail
cd "$(dirname "$0")/.."
out=build-fuzz
mkdir -p "$out/obj"
CXX=${CXX:-clang++-14}
flags=(-std=c++20 -O1 -g -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined -I.
       -Wno-unknown-pragmas)
# The parsers need the tensor core (Tensor allocation) and their own file; OpenMP pragmas are ignored.
core=(tensor/tensor.cpp tensor/backend.cpp tensor/broadcast.cpp tensor/ops.cpp tensor/rng.cpp
      tensor/cpu/conv.cpp tensor/cpu/conv_direct.cpp tensor/cpu/elementwise.cpp tensor/cpu/norm_pool.cpp
      tensor/cpu/threads.cpp
      tensor/cuda/cuda_info_stub.cpp)
declare -A extra=([idx]="afd/data/readers.cpp" [cifar]="afd/data/readers.cpp"
                  [safetensors]="nn/safetensors.cpp" [flagfile]="tools/afd_run/flags.cpp"
                  [autoattack_state]="attacks/autoattack_state.cpp"
                  [train_config]="afd/train/config_json.cpp attacks/config.cpp nn/optim/loss_names.cpp")
targets=(idx cifar safetensors flagfile autoattack_state train_config)
seconds=${1:-}
[[ $# -ge 2 ]] && targets=("${@:2}")

# Each source compiled once (again only when it changed), all cores at once; then every target
# linked from the objects.
obj_of() { echo "$out/obj/${1//\//_}.o"; }
stale=()
for src in "${core[@]}" $(for t in "${targets[@]}"; do echo "${extra[$t]} fuzz/fuzz_$t.cpp"; done | tr ' ' '\n' | sort -u); do
  obj=$(obj_of "$src")
  [[ -f $obj && ! $src -nt $obj ]] || stale+=("$src")
done
if ((${#stale[@]})); then
  echo "fuzz: compiling ${#stale[@]} sources"
  printf '%s\n' "${stale[@]}" |
    xargs -P "$(nproc)" -I{} sh -c '"$0" "$@" -c "{}" -o "'"$out"'/obj/$(echo "{}" | tr / _).o"' "$CXX" "${flags[@]}"
fi
for t in "${targets[@]}"; do
  objs=()
  for src in "${core[@]}" ${extra[$t]} "fuzz/fuzz_$t.cpp"; do objs+=("$(obj_of "$src")"); done
  echo "fuzz: linking $out/fuzz_$t"
  "$CXX" -fsanitize=fuzzer,address,undefined "${objs[@]}" -o "$out/fuzz_$t" -lfmt -lopenblas -lz -lgomp
done

[[ -n "$seconds" ]] || exit 0
for t in "${targets[@]}"; do
  # libFuzzer adds what it finds to the first corpus folder: work on a copy, keep the seeds clean.
  rm -rf "$out/corpus_$t" && cp -r "fuzz/corpus/$t" "$out/corpus_$t"
  echo "fuzz: running fuzz_$t for $seconds s"
  (cd "$out" && "./fuzz_$t" -max_total_time="$seconds" -max_len=20000 -rss_limit_mb=4096 -timeout=10 \
    "corpus_$t" 2>&1 | grep -E "^#[0-9]+ *DONE|ERROR|SUMMARY|Done [0-9]+ runs" | tail -3)
done
