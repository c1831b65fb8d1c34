#!/usr/bin/env bash
# CPU benchmark against PyTorch CPU on the same machine: builds bench_cpu, then runs it and
# tools/bench_cpu_torch.py at the same thread counts, alternating afd and torch runs for several
# rounds (a noisy shared machine then slows both alike), and prints one table per thread count with
# the median over rounds of each run's median: workload, afd ms, torch ms, torch/afd (> 1: afd is
# faster), GFLOP/s of each, precision, threads, CPU model. Markdown, ready for docs/benchmarks.md.
#
# Usage: bash tools/bench_cpu.sh [--build-dir build-bench] [--threads "2 1"] [--rounds 3]
#                                [--reps 20] [--min-seconds 1] [--python /usr/bin/python3]
# Every raw JSON line is kept in <build-dir>/bench_cpu.jsonl.
set -euo pipefail
cd "$(dirname "$0")/.."

build=build-bench
threads="2 1"
rounds=3
reps=20
min_seconds=1
python=/usr/bin/python3  # Debian's python3-torch (tools/setup.sh --with-torch)
while (($#)); do
  case "$1" in
    --build-dir) build="$2"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    --rounds) rounds="$2"; shift 2 ;;
    --reps) reps="$2"; shift 2 ;;
    --min-seconds) min_seconds="$2"; shift 2 ;;
    --python) python="$2"; shift 2 ;;
    *) echo "bench_cpu.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
done

if [[ ! -f "$build/build.ninja" ]]; then
  meson setup "$build" --buildtype=release -Dtests=false >/dev/null
fi
ninja -C "$build" tools/bench_cpu >/dev/null
"$python" -c "import torch" || { echo "bench_cpu.sh: no torch for $python (bash tools/setup.sh --with-torch)" >&2; exit 1; }

log="$build/bench_cpu.jsonl"
: >"$log"
common=(--reps "$reps" --min-seconds "$min_seconds")
for ((round = 1; round <= rounds; ++round)); do
  for t in $threads; do
    echo "round $round/$rounds, $t thread(s)" >&2
    # Both libraries see the same thread count through the environment as well as the flag.
    # Alternate which one goes first so neither always runs on the cooler machine.
    runs=("afd" "torch")
    if ((round % 2 == 0)); then runs=("torch" "afd"); fi
    for impl in "${runs[@]}"; do
      if [[ $impl == afd ]]; then
        # afd calls OpenBLAS single-threaded (openblas_set_num_threads(1)), but OpenBLAS starts its
        # own pool of cores - 1 threads at load unless told not to; they spin for about 0.1 s and
        # took a core from the first timed calls of 2-thread runs.
        OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=$t "$build/tools/bench_cpu" --threads "$t" "${common[@]}" 2>/dev/null | grep '^JSON ' | cut -c6- >>"$log"
      else
        OMP_NUM_THREADS=$t "$python" tools/bench_cpu_torch.py --threads "$t" "${common[@]}" 2>/dev/null | grep '^JSON ' | cut -c6- >>"$log"
      fi
    done
  done
done

"$python" - "$log" <<'EOF'
import collections, json, statistics, sys

runs = [json.loads(line) for line in open(sys.argv[1])]
ms = collections.defaultdict(list)  # (impl, threads, workload) -> per-run medians
gflop, order, cpu, version = {}, [], runs[0]["cpu"], ""
for r in runs:
    if r["impl"] == "torch":
        version = r["version"]
    for name, w in r["workloads"].items():
        ms[(r["impl"], r["threads"], name)].append(w["ms"])
        gflop[name] = w["gflop"]
        if name not in order:
            order.append(name)
# Torch-only variants "name@variant" (bench_cpu_torch.py: conv1 without oneDNN) are compared with
# afd's "name"; they follow the default rows.
order = [n for n in order if "@" not in n] + [n for n in order if "@" in n]
threads = sorted({r["threads"] for r in runs}, reverse=True)
rounds = len(ms[("afd", threads[0], order[0])])
print(f"afd vs PyTorch {version} CPU, batch 128, f32, {cpu}; median over {rounds} alternating "
      f"rounds of per-run medians; ratio = torch ms / afd ms (> 1: afd faster); "
      f"@no-onednn: PyTorch with oneDNN off for conv1 (its faster path for that layer)\n")
print("| workload | afd ms | torch ms | torch/afd | afd GFLOP/s | torch GFLOP/s | precision | threads | CPU |")
print("|---|---:|---:|---:|---:|---:|---|---:|---|")
summary = {}
for t in threads:
    for name in order:
        a = statistics.median(ms[("afd", t, name.split("@")[0])])
        b = statistics.median(ms[("torch", t, name)])
        g = gflop[name]
        print(f"| {name} | {a:.2f} | {b:.2f} | {b / a:.2f} | {g / a * 1e3:.1f} | {g / b * 1e3:.1f} "
              f"| f32 | {t} | {cpu} |")
        summary[f"{name} ({t} threads)"] = round(b / a, 3)
print("\nJSON " + json.dumps({"ratios_torch_over_afd": summary}))
EOF
