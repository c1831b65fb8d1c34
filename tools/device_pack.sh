#!/usr/bin/env bash
# Packs a CUDA build made here for a GPU machine that cannot build the project itself (one without
# Debian's packages or a network, like the lent GPU machines of this project's workplace):
#   bash tools/device_pack.sh [build-dir]      (default build-dev)
# Builds (release, CUDA, sm_90 only: H100 and H200), then writes .devpack/pack.tar.xz holding the
# build's executables at their paths in the build folder and the shared libraries they need that
# are not CUDA's (fmt, OpenBLAS with gfortran and quadmath, libjpeg, OpenMP). On the GPU machine,
# tools/device_check.sh unpacks it when it is there and runs the executables in place, with the
# CUDA libraries (cuDNN, NCCL, cuBLAS) of that machine. The executables name the source folder by
# its absolute path here (fixtures, afd_run's path): device_check.sh links that path to its own
# copy of the repository when the two differ.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build-dev}
[[ -f $build/build.ninja ]] || meson setup "$build" -Dcuda=enabled -Dgpu_archs=90 --buildtype=release
ninja -C "$build"

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
# Executables: every regular executable file of the build outside the object folders (*.p).
find "$build" -type f -perm -u+x ! -path '*.p/*' ! -path '*/meson-*' ! -name '*.so' ! -name '*.py' \
  -exec sh -c 'for f; do mkdir -p "$0/$(dirname "$f")"; cp "$f" "$0/$f"; strip -s "$0/$f"; done' "$stage" {} +
mkdir -p "$stage/.devpack/lib"
# Shared libraries from the system that a GPU machine may lack (CUDA's own are left to it).
{ ldd "$build/afd_run" "$build"/tests/test_* 2>/dev/null || true; } | awk '/=>/ {print $3}' | sort -u |
  grep -E 'lib(fmt|openblas|gfortran|quadmath|jpeg|gomp)\.so' |
  while read -r lib; do cp -L "$lib" "$stage/.devpack/lib/"; done
echo "$(git rev-parse HEAD) $(pwd) $build" > "$stage/.devpack/built_from.txt"
mkdir -p .devpack
tar -C "$stage" -cJf .devpack/pack.tar.xz .
grep -qx '/.devpack/' .git/info/exclude 2>/dev/null || echo '/.devpack/' >> .git/info/exclude
ls -la .devpack/pack.tar.xz
tar -tJf .devpack/pack.tar.xz | grep -v '/$' | head -40
