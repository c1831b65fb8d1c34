#!/usr/bin/env bash
# The CPU-scale reproduction of the paper on MNIST (issue 9; docs/reproduction.md): NT, AT,
# TRADES, AFD-DCGAN and AFD-WGAN with the paper's MNIST ResNet18 and presets, each trained for
# 10 epochs on all 60,000 training images, with a shorter training attack than the paper's
# (5 iterations instead of 40: APGD-CE for AT and AFD; TRADES' KL attack with steps of 0.075
# instead of 0.01, so that 5 steps still cross the eps-ball of 0.3). Every run
# checkpoints after each epoch; the script is safe to stop (Ctrl-C, kill, a reboot) and to run
# again: a finished run is skipped, a stopped one continues from its last checkpoint.
#
#   bash tools/reproduce_mnist.sh [--out DIR] [--build DIR] [--jobs N] [--only NAME[,NAME...]]
#
# --jobs N runs N trainings side by side, one thread each (default 2: one per core here).
# Runs go to DIR/NAME (default runs/reproduce_mnist/NAME); logs to DIR/NAME.log.
set -euo pipefail
cd "$(dirname "$0")/.."

out=runs/reproduce_mnist
build=build
jobs=2
only=""
while (($#)); do
  case "$1" in
    --out) out=${2:?--out needs a folder}; shift 2 ;;
    --build) build=${2:?--build needs a folder}; shift 2 ;;
    --jobs) jobs=${2:?--jobs needs a number}; shift 2 ;;
    --only) only=${2:?--only needs names}; shift 2 ;;
    -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "reproduce_mnist: error: unknown argument '$1'" >&2; exit 2 ;;
  esac
done

# NAME and the flags that define it on top of the paper's preset (configs/mnist_*.flags).
declare -A runs=(
  [nt]="--flagfile configs/mnist_nt.flags"
  [at]="--flagfile configs/mnist_at.flags --attack apgd-ce --attack-eps 0.3 --attack-steps 5"
  [trades]="--flagfile configs/mnist_trades.flags --trades-steps 5 --trades-step-size 0.075"
  [afd_dcgan]="--flagfile configs/mnist_afd_dcgan.flags --attack apgd-ce --attack-eps 0.3 --attack-steps 5"
  [afd_wgan]="--flagfile configs/mnist_afd_wgan.flags --attack apgd-ce --attack-eps 0.3 --attack-steps 5"
)
order=(nt at trades afd_dcgan afd_wgan)
if [[ -n "$only" ]]; then IFS=, read -r -a order <<< "$only"; fi
for name in "${order[@]}"; do
  [[ -n "${runs[$name]:-}" ]] || { echo "reproduce_mnist: error: unknown run '$name' (known: ${!runs[*]})" >&2; exit 2; }
done

bash tools/setup.sh
if [[ ! -f "$build/build.ninja" ]]; then meson setup "$build" --buildtype=release; fi
ninja -C "$build" afd_run
afd="$build/afd_run"
"$afd" data --dataset mnist --no-describe > /dev/null 2>&1 || bash tools/fetch_data.sh mnist
export OMP_WAIT_POLICY=passive
mkdir -p "$out"

train() {
  local name=$1 dir="$out/$1"
  if [[ -f "$dir/final.json" ]]; then
    echo "reproduce_mnist: $name: done ($dir/final.json)" >&2
    return 0
  fi
  # The common budget: 10 epochs over all training images, a checkpoint after each, the epoch
  # summary on the first 1,000 test points.
  local flags=(${runs[$name]} --epochs 10 --train-subset 0 --checkpoint-every 1 --test-subset 1000 --threads 1
               --progress lines --progress-every 50 --out "$dir" --overwrite)
  if [[ -f "$dir/checkpoint/trainer.safetensors" ]]; then
    echo "reproduce_mnist: $name: continuing from $dir/checkpoint" >&2
    flags=(--resume "$dir" --threads 1 --progress lines --progress-every 50)
  else
    echo "reproduce_mnist: $name: training into $dir" >&2
  fi
  "$afd" train "${flags[@]}" >> "$out/$name.log" 2>&1 || {
    echo "reproduce_mnist: $name: stopped (status $?); run the script again to continue (log: $out/$name.log)" >&2
    return 1
  }
  echo "reproduce_mnist: $name: finished" >&2
}

status=0
running=0
for name in "${order[@]}"; do
  train "$name" &
  running=$((running + 1))
  if ((running >= jobs)); then
    wait -n || status=1
    running=$((running - 1))
  fi
done
while ((running > 0)); do
  wait -n || status=1
  running=$((running - 1))
done
exit $status
