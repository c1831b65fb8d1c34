#!/usr/bin/env bash
# Attack-step throughput on the CPU against the same attacks written in plain PyTorch on the same
# machine: builds bench_attacks, then runs it and tools/bench_attacks_torch.py at the same thread
# count, alternating afd and torch runs (and swapping their order every round), and prints a
# Markdown table with the median over rounds of each run's median: case, batch, attack-step
# images/s of each (batch * steps / seconds per attack call), the ratio afd / torch (> 1: afd is
# faster), and the model's own forward and forward + input-gradient times on each side.
#
# Usage: bash tools/bench_attacks.sh [--build-dir build-bench] [--threads 2] [--rounds 2]
#                                    [--reps 3] [--only CASE] [--python /usr/bin/python3]
# Every raw JSON line is kept in <build-dir>/bench_attacks.jsonl.
set -euo pipefail
cd "$(dirname "$0")/.."

build=build-bench
threads=2
rounds=2
reps=3
only=""
python=/usr/bin/python3  # Debian's python3-torch (tools/setup.sh --with-torch)
while (($#)); do
  case "$1" in
    --build-dir) build="$2"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    --rounds) rounds="$2"; shift 2 ;;
    --reps) reps="$2"; shift 2 ;;
    --only) only="$2"; shift 2 ;;
    --python) python="$2"; shift 2 ;;
    *) echo "bench_attacks.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
done

if [[ ! -f "$build/build.ninja" ]]; then
  meson setup "$build" --buildtype=release -Dcuda=disabled -Dtests=false >/dev/null
fi
ninja -C "$build" tools/bench_attacks >/dev/null
if ! "$python" -c "import torch"; then
  echo "bench_attacks.sh: no torch for $python (bash tools/setup.sh --with-torch)" >&2
  exit 1
fi

extra=()
if [[ -n $only ]]; then extra=(--only "$only"); fi
log="$build/bench_attacks.jsonl"
: >"$log"
for ((round = 1; round <= rounds; ++round)); do
  runs=("afd" "torch")
  if ((round % 2 == 0)); then runs=("torch" "afd"); fi
  for impl in "${runs[@]}"; do
    echo "round $round/$rounds, $impl, $threads thread(s), load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
    if [[ $impl == afd ]]; then
      cmd=(env OPENBLAS_NUM_THREADS=1 "$build/tools/bench_attacks")  # see bench_cpu.sh
    else
      cmd=("$python" tools/bench_attacks_torch.py)
    fi
    OMP_NUM_THREADS=$threads "${cmd[@]}" --threads "$threads" --reps "$reps" "${extra[@]}" 2>/dev/null |
      grep '^JSON ' | cut -c6- >>"$log"
  done
done

"$python" - "$log" <<'EOF_PY'
import collections, json, statistics, sys

runs = [json.loads(line) for line in open(sys.argv[1])]
ms = collections.defaultdict(list)  # (impl, case, "attack"/"forward"/"input_grad") -> per-run medians
info, order, cpu, version, skipped = {}, [], runs[0]["cpu"], "", set()
for r in runs:
    if r["impl"] == "torch":
        version = r["version"]
    skipped.update(r.get("skipped", []))
    for name, c in r["cases"].items():
        for part in ("attack", "forward", "input_grad"):
            ms[(r["impl"], name, part)].append(c[part + "_ms"])
        info[name] = (c["batch"], r["steps"])
        if name not in order:
            order.append(name)
threads = runs[0]["threads"]
med = lambda impl, name, part: statistics.median(ms[(impl, name, part)])
rounds = min(len(ms[("afd", n, "attack")]) for n in order) if order else 0
print(f"afd vs PyTorch {version} CPU, f32, {threads} threads, {cpu}; median over {rounds} alternating rounds "
      f"of per-run medians; step img/s = batch * steps / seconds per attack call; ratio afd/torch > 1: afd faster\n")
print("| case | batch | steps | afd img/s | torch img/s | ratio afd/torch "
      "| afd fwd ms | torch fwd ms | afd fwd+grad ms | torch fwd+grad ms |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
summary = {}
for name in order:
    b, steps = info[name]
    if not ms[("afd", name, "attack")] or not ms[("torch", name, "attack")]:
        why = "skipped: attack not in afd's registry" if name in skipped else "missing on one side"
        print(f"| {name} | {b} | {steps} | {why} | | | | | | |")
        continue
    a, t = med("afd", name, "attack"), med("torch", name, "attack")
    print(f"| {name} | {b} | {steps} | {b * steps / a * 1e3:.1f} | {b * steps / t * 1e3:.1f} | {t / a:.2f} "
          f"| {med('afd', name, 'forward'):.1f} | {med('torch', name, 'forward'):.1f} "
          f"| {med('afd', name, 'input_grad'):.1f} | {med('torch', name, 'input_grad'):.1f} |")
    summary[name] = round(t / a, 3)
for name in sorted(skipped - set(order)):
    print(f"| {name} | | | skipped: attack not in afd's registry | | | | | | |")
print("\nJSON " + json.dumps({"threads": threads, "ratios_afd_over_torch": summary}))
EOF_PY
