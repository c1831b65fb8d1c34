#!/usr/bin/env bash
# AutoAttack on a GPU, afd against the reference code on PyTorch (issue 7's GPU timing):
#   bash tools/device_autoattack.sh [log-dir] [--count N] [--epochs E] [--precision strict|tf32]
#                                   [--train-subset N] [--device cuda] [--budget S]
# 1. Trains the CIFAR-10 ResNet18 with AT (APGD-CE, eps 8/255, 5 steps) on the GPU for E epochs
#    (default 5) on the training images at hand, into runs/device_autoattack/at-DEVICE-E-N (kept:
#    a second call on the same machine skips this). A model with some robustness, so that every
#    component of AutoAttack has points left to attack (on a natural model APGD-CE alone does all
#    the work); a timing workload, not a result.
# 2. tools/bench_autoattack.sh --dataset cifar10 --device cuda on the first N test images (default
#    1000): afd_run eval --attacks autoattack, then fra31/auto-attack on PyTorch, each with the GPU
#    to itself and at most half of what is left of the budget (default 540 s in all), in strict
#    fp32 (default) or TF32; prints each component's robust accuracy and time and the ratio.
# On a lent GPU machine: here commit, `bash tools/device_pack.sh` (its .devpack/aa.tar.xz holds
# afd_run, 2,000 training and 1,000 test images of CIFAR-10 and the reference's Python files:
# whole batches do not fit in what travels), then run with carry [".devpack/aa.tar.xz"]:
#   timeout -s TERM 570 bash tools/device_autoattack.sh /tmp/aa
# Elsewhere it uses a CUDA build in build-gpu (tools/device_check.sh makes one), data/cifar10 (or
# $AFD_CIFAR10_DIR) and $AFD_AUTOATTACK. A smoke test of the script on a CPU:
#   PYTHON=/usr/bin/python3 bash tools/device_autoattack.sh /tmp/aa --device cpu --train-subset 256 --epochs 1 --count 10
# Logs and the table go to log-dir (default device-logs-aa, or /tmp/device-logs-aa when $OUT is
# set); with $OUT set, $OUT/summary.txt and $OUT/logs.tgz are written after the training and on any
# exit.
set -uo pipefail
cd "$(dirname "$0")/.."
logs=""
count=1000
epochs=5
precision=strict
subset=0
device=cuda
budget=540
while (($#)); do
  case "$1" in
    --count) count=${2:?--count needs a number}; shift 2 ;;
    --epochs) epochs=${2:?--epochs needs a number}; shift 2 ;;
    --precision) precision=${2:?--precision needs strict or tf32}; shift 2 ;;
    --train-subset) subset=${2:?--train-subset needs a number}; shift 2 ;;
    --device) device=${2:?--device needs cuda or cpu}; shift 2 ;;
    --budget) budget=${2:?--budget needs seconds}; shift 2 ;;
    -h|--help) sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "device_autoattack.sh: error: unknown argument '$1'" >&2; exit 2 ;;
    *) logs=$1; shift ;;
  esac
done
# Not $OUT itself: only a few files come back from it (save_to_out puts the table and the logs there).
[[ -z $logs && -n ${OUT:-} ]] && logs=/tmp/device-logs-aa
logs=${logs:-device-logs-aa}
mkdir -p "$logs"
source tools/device_common.sh
progress() { echo "[$(printf '%4d' "$SECONDS") s] $*" | tee -a "$logs/progress.txt"; }
# The progress lines and the table so far, also into $OUT: on exit, and after the training (should
# the run be killed outright, SIGKILL and no trap, that snapshot still comes back).
snapshot() {
  { cat "$logs/progress.txt" 2>/dev/null; echo; cat "$logs/table.md" 2>/dev/null; } > "$logs/summary.txt"
  save_to_out "$logs"
}
trap snapshot EXIT
# The running stage is stopped at once (stage, stop_stage: tools/device_common.sh).
trap 'progress "stopped by a signal"; stop_stage; exit 143' TERM INT

{ timeout -k 5 30 nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader ||
  echo "nvidia-smi failed"; } > "$logs/gpu.txt" 2>&1
progress "gpu: $(head -1 "$logs/gpu.txt")"
if [[ -f .devpack/aa.tar.xz ]]; then
  unpack_devpack "$logs" .devpack/aa.tar.xz || { progress "$build_status"; exit 1; }
  progress "unpacked: $build_status; $preflight"
  data=.devpack/cifar10
  export AFD_AUTOATTACK=.devpack/auto-attack
else
  build=build-gpu
  data=${AFD_CIFAR10_DIR:-data/cifar10}
  ninja -C "$build" afd_run > "$logs/build.log" 2>&1 || { progress "build: FAILED (see build.log)"; exit 1; }
fi
[[ -f $data/data_batch_1.bin && -f $data/test_batch.bin ]] ||
  { progress "no CIFAR-10 in $data (data_batch_1.bin, test_batch.bin)"; exit 1; }
# PyTorch ($PYTHON, default python3) runs with the LD_LIBRARY_PATH of before (it brings its own
# CUDA libraries).
printf '#!/bin/sh\nexec env LD_LIBRARY_PATH="%s" %s "$@"\n' "$orig_ld" "${PYTHON:-python3}" > "$logs/python3"
chmod +x "$logs/python3"
"$logs/python3" -c 'import torch; print("torch", torch.__version__, "CUDA", torch.version.cuda)' > "$logs/torch.txt" 2>&1
progress "$(tail -1 "$logs/torch.txt")"

run=runs/device_autoattack/at-$device-$epochs-$subset
if [[ ! -f $run/final.json ]]; then
  # A stopped training leaves the checkpoint of its last finished epoch, which the benchmark uses.
  stage "$logs/train.log" "$logs/train.log" timeout -k 10 $((budget / 3)) \
    "$build/afd_run" train --dataset cifar10 --data-dir "$data" --method at \
    --epochs "$epochs" --attack apgd-ce --attack-eps 8/255 --attack-steps 5 --device "$device" \
    --precision "$precision" --seed 0 --train-subset "$subset" --test-subset 1000 --checkpoint-every 1 --progress lines \
    --out "$run" --overwrite
  progress "train: exit $? ($(grep -c '^epoch.* done' "$logs/train.log") epochs; $(grep '^epoch.* done' "$logs/train.log" | tail -1 | cut -c1-160))"
fi
[[ -f $run/checkpoint/model.safetensors ]] || { progress "no checkpoint in $run: see train.log"; exit 1; }
snapshot
side=$(((budget - SECONDS) / 2))
((side < 30)) && side=30
# Each side stops itself after $side seconds; the whole under one more timeout, as a stage.
stage "$logs/table.md" "$logs/bench.log" timeout -k 10 $((2 * side + 30)) \
  env PYTHON="$logs/python3" bash tools/bench_autoattack.sh --checkpoint "$run/checkpoint" --dataset cifar10 \
  --data-dir "$data" --device "$device" --precision "$precision" --count "$count" --build "$build" \
  --side-timeout "$side" --out "$logs/bench"
progress "bench_autoattack: exit $?"
cat "$logs/table.md"
