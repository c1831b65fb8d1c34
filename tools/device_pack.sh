#!/usr/bin/env bash
# Packs a CUDA build made here for a GPU machine that cannot build the project itself (one without
# Debian's packages or a network, like the lent GPU machines of this project's workplace):
#   bash tools/device_pack.sh [build-dir]      (default build-dev)
# Builds (a new build folder is configured release, CUDA, sm_90: H100 and H200), checks that the
# CUDA backend is compiled in, then writes .devpack/pack.tar.xz holding the build's executables at
# their paths in the build folder and every shared library they need except the C library's,
# libstdc++'s and CUDA's (cudart, cuBLAS, cuDNN, NCCL, the driver): fmt, OpenBLAS with gfortran and
# quadmath, libjpeg, libpng, OpenMP, Gloo with hiredis, ibverbs and libnl. On the GPU machine,
# tools/device_check.sh unpacks it when it is there and runs the executables in place, with that
# machine's CUDA libraries. The executables name the source folder by its absolute path here
# (fixtures, afd_run's path): device_check.sh links that path to its own copy of the repository
# when the two differ. Where they are here, the pack also holds what tools/device_autoattack.sh
# needs: CIFAR-10's data_batch_1.bin and test_batch.bin, and fra31/auto-attack's Python files.
#
# The pack must be the committed code: the script refuses a tree with uncommitted changes to
# tracked files (DEVPACK_ALLOW_DIRTY=1 packs it anyway, and the pack says "dirty").
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build-dev}
rev=$(git describe --always --dirty --abbrev=12)
if [[ $rev == *-dirty && ${DEVPACK_ALLOW_DIRTY:-0} != 1 ]]; then
  echo "device_pack: the tree has uncommitted changes (git status); commit them or set DEVPACK_ALLOW_DIRTY=1" >&2
  exit 1
fi
[[ -f $build/build.ninja ]] || meson setup "$build" -Dcuda=enabled -Dgpu_archs=90 --buildtype=release
ninja -C "$build"
version=$("$build/afd_run" version)
if [[ $version != *"CUDA backend compiled: yes"* ]]; then
  echo "device_pack: $build has no CUDA backend ($version); configure it with -Dcuda=enabled" >&2
  exit 1
fi

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
# Executables: every regular executable file of the build outside the object folders (*.p).
mapfile -t exes < <(find "$build" -type f -perm -u+x ! -path '*.p/*' ! -path '*/meson-*' ! -name '*.so' ! -name '*.py')
for f in "${exes[@]}"; do
  mkdir -p "$stage/$(dirname "$f")"
  cp "$f" "$stage/$f"
  strip -s "$stage/$f"
done
# Shared libraries: all that ldd finds for any executable, except the ones every Linux with CUDA
# has (and that must match the machine's own: the loader, the C library, libstdc++) and CUDA's.
mkdir -p "$stage/.devpack/lib"
deps=$(ldd "${exes[@]}" 2>/dev/null | grep '=>' | sort -u)
missing=$(grep 'not found' <<< "$deps" || true)
if [[ -n $missing ]]; then
  echo "device_pack: libraries not found here:" >&2
  echo "$missing" >&2
  exit 1
fi
system='^(linux-vdso|ld-linux|libc|libm|libdl|libpthread|librt|libutil|libresolv|libstdc\+\+|libgcc_s)\.'
cuda='^(libcuda|libcudart|libcublas|libcublasLt|libcudnn.*|libnccl|libnvrtc|libnvJitLink)\.'
awk '{print $3}' <<< "$deps" | sort -u | while read -r lib; do
  name=$(basename "$lib")
  [[ $name =~ $system || $name =~ $cuda ]] && continue
  cp -L "$lib" "$stage/.devpack/lib/"
done
# For tools/device_autoattack.sh (issue 7's GPU timing), when they are here: CIFAR-10's first
# training batch and its test batch (data/cifar10, $AFD_CIFAR10_DIR or the workspace's
# ../shared/data/cifar10), and the Python files of the reference fra31/auto-attack at HEAD of the
# checkout $AFD_AUTOATTACK (a work tree or a bare git directory), with its commit. xz -9 keeps the
# pack under the 64 MiB a lent machine takes (about 23 MB per batch).
for dir in data/cifar10 ${AFD_CIFAR10_DIR:-} ../shared/data/cifar10; do
  if [[ -f $dir/data_batch_1.bin && -f $dir/test_batch.bin ]]; then
    mkdir -p "$stage/.devpack/cifar10"
    cp "$dir/data_batch_1.bin" "$dir/test_batch.bin" "$stage/.devpack/cifar10/"
    echo "CIFAR-10 packed from $dir (data_batch_1.bin, test_batch.bin)"
    break
  fi
done
[[ -d $stage/.devpack/cifar10 ]] || echo "device_pack: no CIFAR-10 here (data_batch_1.bin and test_batch.bin): device_autoattack.sh will not run" >&2
autoattack=${AFD_AUTOATTACK:-/work/.mirror/fra31+auto-attack/repo}
if [[ -d $autoattack/autoattack ]]; then
  git_dir=(-C "$autoattack")
else
  git_dir=(--git-dir "$autoattack")
fi
if commit=$(git "${git_dir[@]}" rev-parse HEAD 2>/dev/null); then
  mkdir -p "$stage/.devpack/auto-attack"
  # Only the Python files: a snapshot may lack large blobs such as examples/model_test.pt.
  mapfile -t py < <(git "${git_dir[@]}" ls-tree -r --name-only HEAD -- autoattack | grep '\.py$')
  git "${git_dir[@]}" archive HEAD -- "${py[@]}" | tar -x -C "$stage/.devpack/auto-attack"
  echo "$commit" > "$stage/.devpack/auto-attack/COMMIT"
  echo "fra31/auto-attack packed at $commit from $autoattack"
else
  echo "device_pack: no checkout of fra31/auto-attack at $autoattack (\$AFD_AUTOATTACK): device_autoattack.sh will not run" >&2
fi
echo "$rev $(pwd) $build" > "$stage/.devpack/built_from.txt"
mkdir -p .devpack
XZ_OPT='-9 -T0' tar -C "$stage" -cJf .devpack/pack.tar.xz .
grep -qx '/.devpack/' .git/info/exclude 2>/dev/null || echo '/.devpack/' >> .git/info/exclude
ls -la .devpack/pack.tar.xz
if (($(stat -c %s .devpack/pack.tar.xz) > 64 * 1024 * 1024 - 1024 * 1024)); then
  echo "device_pack: warning: the pack is over 63 MiB; a lent GPU machine takes 64 MiB of carried files" >&2
fi
echo "libraries packed: $(ls "$stage/.devpack/lib" | tr '\n' ' ')"
echo "executables packed: ${#exes[@]}, built from $rev"
