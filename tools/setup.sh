#!/usr/bin/env bash
# Installs everything the project needs on Debian 12, idempotently: only missing packages are
# installed (apt-get update runs only then). CUDA, cuDNN and NCCL are expected under
# /usr/local/cuda where present; without them the build simply has no CUDA backend.
#
# Usage: bash tools/setup.sh [--with-torch]   (--with-torch: Debian's python3-torch, the
#                                              reference for fixtures and benchmarks)
set -euo pipefail

packages=(meson ninja-build pkg-config g++ libfmt-dev libgtest-dev libopenblas-dev zlib1g-dev
          nlohmann-json3-dev python3 libjpeg62-turbo-dev libpng-dev libgloo-dev)
if [[ "${1:-}" == "--with-torch" ]]; then packages+=(python3-torch python3-numpy python3-pil python3-torchvision); fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  echo "setup: all ${#packages[@]} packages present"
  exit 0
fi

echo "setup: installing ${missing[*]}"
sudo=""
if [[ $(id -u) -ne 0 ]]; then sudo="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
