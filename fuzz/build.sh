#!/usr/bin/env bash
# Builds the libFuzzer targets for the dataset parsers with clang 14 (ASan + UBSan) and, given a
# duration, runs each for that many seconds on a seed corpus of small valid files.
#
#   bash fuzz/build.sh            # build build-fuzz/fuzz_idx and build-fuzz/fuzz_cifar
#   bash fuzz/build.sh 60         # build, then fuzz each target for 60 s
#
# Needs clang-14 and libclang-rt-14-dev (libFuzzer), plus the project's packages (fmt, OpenBLAS, zlib).
set -euo pipefail
cd "$(dirname "$0")/.."
out=build-fuzz
mkdir -p "$out"
CXX=${CXX:-clang++-14}
flags=(-std=c++20 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -I.)
# The parsers need only the tensor core (Tensor allocation); OpenMP pragmas are ignored here.
lib_sources=(afd/data/readers.cpp tensor/tensor.cpp tensor/backend.cpp tensor/ops.cpp tensor/rng.cpp
             tensor/cpu/conv.cpp tensor/cpu/elementwise.cpp tensor/cpu/norm_pool.cpp tensor/cpu/threads.cpp
             tensor/cuda/cuda_info_stub.cpp)
for target in fuzz_idx fuzz_cifar; do
  echo "fuzz: building $out/$target"
  "$CXX" "${flags[@]}" -Wno-unknown-pragmas "fuzz/$target.cpp" "${lib_sources[@]}" -o "$out/$target" \
    -lfmt -lopenblas -lz -lgomp
done

seconds=${1:-}
[[ -n "$seconds" ]] || exit 0
# Seed corpora: a tiny valid IDX label file and image file, one CIFAR-10 and one CIFAR-100 record.
mkdir -p "$out/corpus_idx" "$out/corpus_cifar"
printf '\x00\x00\x08\x01\x00\x00\x00\x03\x01\x02\x09' > "$out/corpus_idx/labels"
{ printf '\x00\x00\x08\x03\x00\x00\x00\x01\x00\x00\x00\x02\x00\x00\x00\x02'; printf '\x01\x02\x03\x04'; } \
  > "$out/corpus_idx/images"
{ printf '\x03'; head -c 3072 /dev/zero; } > "$out/corpus_cifar/c10"
{ printf '\x03\x11'; head -c 3072 /dev/zero; } > "$out/corpus_cifar/c100"
for target in fuzz_idx fuzz_cifar; do
  corpus="$out/corpus_${target#fuzz_}"
  echo "fuzz: running $target for $seconds s"
  "$out/$target" -max_total_time="$seconds" -max_len=20000 -rss_limit_mb=4096 "$corpus" 2>&1 | tail -3
done
