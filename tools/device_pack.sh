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
# when the two differ. Carry the file, not the folder: carry [".devpack/pack.tar.xz"].
# Where CIFAR-10 and a checkout of fra31/auto-attack are here, it also writes .devpack/aa.tar.xz
# for tools/device_autoattack.sh (afd_run, slices of two CIFAR batches, the reference's Python
# files), carried instead: [".devpack/aa.tar.xz"]. Each must fit beside the tracked files in the
# 64 MiB that travel; the script says how much that comes to.
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
echo "$rev $(git rev-parse HEAD) $(pwd) $build" > "$stage/.devpack/built_from.txt"
# The sha1 of every tracked file as built: the GPU machine gets the tree without .git, and
# device_common.sh compares this list with the files there (MISMATCH names those that differ).
git ls-files -z | xargs -0 sha1sum > "$stage/.devpack/sources.sha1"
rm -rf .devpack && mkdir -p .devpack
grep -qx '/.devpack/' .git/info/exclude 2>/dev/null || echo '/.devpack/' >> .git/info/exclude
XZ_OPT='-9 -T0' tar -C "$stage" -cJf .devpack/pack.tar.xz .

# What travels to a lent machine is the whole working tree plus the carried files, 64 MiB in all:
# say so when a pack would not fit beside the tracked files (results/ grows with each published run).
tree_bytes=$(git ls-files -z | du -cb --files0-from=- | tail -1 | cut -f1)
check_fits() {
  local total=$((tree_bytes + $(stat -c %s "$1")))
  echo "$1: $(stat -c %s "$1") bytes; with the tracked files $((total / 1024 / 1024)) MiB of the 64 MiB that travel"
  if ((total > 63 * 1024 * 1024)); then
    echo "device_pack: WARNING: $1 and the tracked files come to over 63 MiB: a lent GPU machine refuses the call" >&2
  fi
}
check_fits .devpack/pack.tar.xz
echo "libraries packed: $(ls "$stage/.devpack/lib" | tr '\n' ' ')"
echo "executables packed: ${#exes[@]}, built from $rev"

# A second, lean archive for tools/device_autoattack.sh (issue 7's GPU timing), carried instead of
# the first: afd_run and its libraries, the first AA_TRAIN records of CIFAR-10's data_batch_1.bin
# and the first AA_TEST of test_batch.bin (data/cifar10, $AFD_CIFAR10_DIR or the workspace's
# ../shared/data/cifar10; a file of whole records is a valid partial CIFAR-10 set), and the Python
# files of fra31/auto-attack at HEAD of $AFD_AUTOATTACK (a work tree or a bare git directory) with
# its commit. Whole batches (23 MB each after xz) do not fit beside the tracked files.
aa_train=${AA_TRAIN:-2000}
aa_test=${AA_TEST:-1000}
cifar=""
for dir in data/cifar10 ${AFD_CIFAR10_DIR:-} ../shared/data/cifar10; do
  if [[ -f $dir/data_batch_1.bin && -f $dir/test_batch.bin ]]; then cifar=$dir; break; fi
done
autoattack=${AFD_AUTOATTACK:-/work/.mirror/fra31+auto-attack/repo}
git_dir=(--git-dir "$autoattack")
[[ -d $autoattack/autoattack ]] && git_dir=(-C "$autoattack")
commit=$(git "${git_dir[@]}" rev-parse HEAD 2>/dev/null || true)
if [[ -z $cifar ]]; then
  echo "device_pack: no CIFAR-10 (data_batch_1.bin, test_batch.bin) in data/cifar10, \$AFD_CIFAR10_DIR or ../shared/data/cifar10: no aa.tar.xz for device_autoattack.sh" >&2
  exit 0
fi
if [[ -z $commit ]]; then
  echo "device_pack: no checkout of fra31/auto-attack at $autoattack (\$AFD_AUTOATTACK): no aa.tar.xz for device_autoattack.sh" >&2
  exit 0
fi
aa=$(mktemp -d)
trap 'rm -rf "$stage" "$aa"' EXIT
mkdir -p "$aa/$build" "$aa/.devpack/cifar10" "$aa/.devpack/auto-attack"
cp "$stage/$build/afd_run" "$aa/$build/"
cp -r "$stage/.devpack/lib" "$stage/.devpack/built_from.txt" "$stage/.devpack/sources.sha1" "$aa/.devpack/"
head -c $((3073 * aa_train)) "$cifar/data_batch_1.bin" > "$aa/.devpack/cifar10/data_batch_1.bin"
head -c $((3073 * aa_test)) "$cifar/test_batch.bin" > "$aa/.devpack/cifar10/test_batch.bin"
# Only the Python files: a snapshot may lack large blobs such as examples/model_test.pt.
mapfile -t py < <(git "${git_dir[@]}" ls-tree -r --name-only HEAD -- autoattack | grep '\.py$')
# (git archive still reports such a missing blob beside the files it writes: silenced, and the
# result checked instead.)
git "${git_dir[@]}" archive HEAD -- "${py[@]}" 2> /dev/null | tar -x -C "$aa/.devpack/auto-attack"
[[ -f $aa/.devpack/auto-attack/autoattack/autoattack.py ]] ||
  { echo "device_pack: could not extract fra31/auto-attack's Python files from $autoattack" >&2; exit 1; }
echo "$commit" > "$aa/.devpack/auto-attack/COMMIT"
XZ_OPT='-9 -T0' tar -C "$aa" -cJf .devpack/aa.tar.xz .
echo "aa.tar.xz: afd_run, $aa_train training and $aa_test test images of CIFAR-10 from $cifar, fra31/auto-attack $commit"
check_fits .devpack/aa.tar.xz
