#!/usr/bin/env bash
# Epoch time of the trainers side by side (issue 8): NT, AT, TRADES, AFD-WGAN and AFD-DCGAN with the
# paper's MNIST presets (configs/mnist_*.flags: the MNIST ResNet18, batch 128, the preset's training
# attack and steps) on the same first N training images, the same device and thread count. Each
# run is `afd_run train ... --epochs 1`; the figure is the epoch's training time from metrics.jsonl
# (train_epoch only: the epoch-end test evaluation is not counted). Methods run in a rotated order
# each round; the table gives the median over rounds, images/s, and each method's time over AT's
# and TRADES' (the paper, Section 4.1: an AFD epoch took 1.31x AT's and 1.04x TRADES'; perf.md's
# target: AFD <= 1.15x AT).
#
# The training attack of AT and AFD is PGD-Linf (eps 0.3, 40 steps of 0.01, random start) by
# default, so that every method attacks every point of every batch: the presets' APGD-CE attacks
# only the points the model classifies correctly (AutoAttack's rule), which in a short run from
# scratch is a minority, so its epoch time would measure the model's accuracy more than the method.
# TRADES always runs its own KL attack (40 steps).
#
# Usage: bash tools/bench_train.sh [--build DIR] [--images 2560] [--rounds 2] [--threads 2]
#                                  [--methods "nt at trades afd-wgan afd-dcgan"] [--attack pgd-linf|preset]
#   --attack preset: the presets' own training attack (APGD-CE x40).
# Needs the real MNIST in data/mnist (bash tools/fetch_data.sh mnist). Runs land in
# <build>/bench_train/; the raw lines in <build>/bench_train.jsonl.
set -euo pipefail
cd "$(dirname "$0")/.."

build=build
images=2560
rounds=2
threads=2
methods="nt at trades afd-wgan afd-dcgan"
attack=(--attack pgd-linf --attack-steps 40 --attack-step-size 0.01 --attack-random-start)
while (($#)); do
  case "$1" in
    --build) build=${2:?}; shift 2 ;;
    --images) images=${2:?}; shift 2 ;;
    --rounds) rounds=${2:?}; shift 2 ;;
    --threads) threads=${2:?}; shift 2 ;;
    --methods) methods=${2:?}; shift 2 ;;
    --attack) [[ ${2:?} == preset ]] && attack=() || attack=(--attack "$2"); shift 2 ;;
    -h|--help) sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench_train.sh: error: unknown argument '$1'" >&2; exit 2 ;;
  esac
done

if [[ ! -f "$build/build.ninja" ]]; then meson setup "$build" --buildtype=release > /dev/null; fi
ninja -C "$build" afd_run > /dev/null
afd="$build/afd_run"
runs="$build/bench_train"
log="$build/bench_train.jsonl"
mkdir -p "$runs"
: > "$log"

read -r -a list <<< "$methods"
for ((round = 1; round <= rounds; ++round)); do
  n=${#list[@]}
  for ((k = 0; k < n; ++k)); do
    m=${list[$(((k + round - 1) % n))]}
    case "$m" in
      afd-wgan) flags=configs/mnist_afd_wgan.flags ;;
      afd-dcgan) flags=configs/mnist_afd_dcgan.flags ;;
      nt|at|trades) flags=configs/mnist_$m.flags ;;
      *) echo "bench_train.sh: error: unknown method '$m' (nt, at, trades, afd-wgan, afd-dcgan)" >&2; exit 2 ;;
    esac
    echo "round $round/$rounds: $m ($flags), $images images, $threads thread(s), load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
    OMP_WAIT_POLICY=passive "$afd" train --flagfile "$flags" --epochs 1 --train-subset "$images" "${attack[@]}" \
      --test-subset 100 --no-epoch-eval-attack --threads "$threads" --progress none \
      --out "$runs/$m" --overwrite > /dev/null
    python3 - "$runs/$m" "$m" "$round" >> "$log" << 'EOF'
import json, sys
run, method, rnd = sys.argv[1:]
epoch = [json.loads(l) for l in open(f"{run}/metrics.jsonl") if '"type":"epoch"' in l][-1]
flags = dict(l.split("=", 1) for l in open(f"{run}/resolved.flags").read().splitlines() if l.startswith("--") and "=" in l)
print(json.dumps({"method": method, "round": int(rnd), "seconds": epoch["seconds"],  # train_epoch's time
                  "images": int(flags["--train-subset"]),
                  "attack": flags.get("--attack"), "attack_steps": flags.get("--attack-steps"),
                  "trades_steps": flags.get("--trades-steps")}))
EOF
  done
done

python3 - "$log" "$threads" "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)" << 'EOF'
import collections, json, statistics, sys
log, threads, cpu = sys.argv[1:]
rows = [json.loads(l) for l in open(log)]
by = collections.defaultdict(list)
info = {}
for r in rows:
    by[r["method"]].append(r["seconds"])
    info[r["method"]] = r
med = {m: statistics.median(v) for m, v in by.items()}
print(f"Epoch time on the CPU ({cpu}, {threads} threads, f32), MNIST ResNet18, the paper's MNIST presets, "
      f"{info[rows[0]['method']]['images']} training images, median of {max(len(v) for v in by.values())} rounds\n")
print("| method | training attack | epoch s | img/s | / AT | / TRADES |")
print("|---|---|---:|---:|---:|---:|")
for m in by:
    r = info[m]
    at = f"{med[m] / med['at']:.2f}" if "at" in med else "-"
    tr = f"{med[m] / med['trades']:.2f}" if "trades" in med else "-"
    attack = ("none" if m == "nt" else f"KL-PGD x{r['trades_steps']}" if m == "trades"
              else f"{r['attack']} x{r['attack_steps']}")
    print(f"| {m} | {attack} | {med[m]:.1f} | {r['images'] / med[m]:.1f} | {at} | {tr} |")
print("\nThe paper (Section 4.1): AFD 1.31x AT, 1.04x TRADES; perf.md's target: AFD <= 1.15x AT.")
print("JSON " + json.dumps({"threads": int(threads), "median_seconds": med}))
EOF
