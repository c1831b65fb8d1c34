#!/usr/bin/env bash
# Whole-model CPU benchmark against PyTorch CPU on the same machine: builds bench_models, then runs
# it and tools/bench_models_torch.py at the same thread counts, alternating afd and torch runs (and
# swapping their order every round), and prints a Markdown table per thread count with the median
# over rounds of each run's median: model, batch, forward and training-step images/s of each, and
# the ratios torch ms / afd ms (> 1: afd is faster).
#
# Usage: bash tools/bench_models.sh [--build-dir build-bench] [--threads "2 1"] [--rounds 2]
#                                   [--reps 3] [--python /usr/bin/python3]
# Every raw JSON line is kept in <build-dir>/bench_models.jsonl.
set -euo pipefail
cd "$(dirname "$0")/.."

build=build-bench
threads="2 1"
rounds=2
reps=3
python=/usr/bin/python3  # Debian's python3-torch (tools/setup.sh --with-torch)
while (($#)); do
  case "$1" in
    --build-dir) build="$2"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    --rounds) rounds="$2"; shift 2 ;;
    --reps) reps="$2"; shift 2 ;;
    --python) python="$2"; shift 2 ;;
    *) echo "bench_models.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
done

if [[ ! -f "$build/build.ninja" ]]; then
  meson setup "$build" --buildtype=release -Dtests=false >/dev/null
fi
ninja -C "$build" tools/bench_models >/dev/null
if ! "$python" -c "import torch"; then
  echo "bench_models.sh: no torch for $python (bash tools/setup.sh --with-torch)" >&2
  exit 1
fi

log="$build/bench_models.jsonl"
: >"$log"
for ((round = 1; round <= rounds; ++round)); do
  for t in $threads; do
    echo "round $round/$rounds, $t thread(s)" >&2
    runs=("afd" "torch")
    if ((round % 2 == 0)); then runs=("torch" "afd"); fi
    for impl in "${runs[@]}"; do
      if [[ $impl == afd ]]; then
        cmd=(env OPENBLAS_NUM_THREADS=1 "$build/tools/bench_models")  # see bench_cpu.sh
      else
        cmd=("$python" tools/bench_models_torch.py)
      fi
      OMP_NUM_THREADS=$t "${cmd[@]}" --threads "$t" --reps "$reps" 2>/dev/null | grep '^JSON ' | cut -c6- >>"$log"
    done
  done
done

"$python" - "$log" <<'EOF_PY'
import collections, json, statistics, sys

runs = [json.loads(line) for line in open(sys.argv[1])]
ms = collections.defaultdict(list)  # (impl, threads, model, "forward"/"train") -> per-run medians
batch, order, cpu, version = {}, [], runs[0]["cpu"], ""
for r in runs:
    if r["impl"] == "torch":
        version = r["version"]
    for name, m in r["models"].items():
        ms[(r["impl"], r["threads"], name, "forward")].append(m["forward_ms"])
        ms[(r["impl"], r["threads"], name, "train")].append(m["train_ms"])
        batch[name] = m["batch"]
        if name not in order:
            order.append(name)
threads = sorted({r["threads"] for r in runs}, reverse=True)
rounds = len(ms[("afd", threads[0], order[0], "forward")])
print(f"afd vs PyTorch {version} CPU, f32, {cpu}; median over {rounds} alternating rounds of per-run "
      f"medians; img/s = batch / ms; ratio = torch ms / afd ms (> 1: afd faster)\n")
print("| model | batch | threads | afd fwd img/s | torch fwd img/s | fwd torch/afd "
      "| afd train img/s | torch train img/s | train torch/afd |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
summary = {}
for t in threads:
    for name in order:
        b = batch[name]
        af, tf = (statistics.median(ms[(i, t, name, "forward")]) for i in ("afd", "torch"))
        at, tt = (statistics.median(ms[(i, t, name, "train")]) for i in ("afd", "torch"))
        print(f"| {name} | {b} | {t} | {b / af * 1e3:.1f} | {b / tf * 1e3:.1f} | {tf / af:.2f} "
              f"| {b / at * 1e3:.1f} | {b / tt * 1e3:.1f} | {tt / at:.2f} |")
        summary[f"{name} ({t} threads)"] = {"forward": round(tf / af, 3), "train": round(tt / at, 3)}
print("\nJSON " + json.dumps({"ratios_torch_over_afd": summary}))
EOF_PY
