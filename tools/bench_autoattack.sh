#!/usr/bin/env bash
# AutoAttack standard (Linf) time on the CPU, afd against the reference code (issue 7): afd_run eval
# --attacks autoattack and fra31/auto-attack's AutoAttack on PyTorch (tools/bench_autoattack_torch.py)
# on the same checkpoint of the MNIST ResNet18 and the same first N MNIST test points, one thread
# each, run side by side (one core each on a 2-core machine: both see the same machine). Prints
# each component's cumulative robust accuracy and time on both sides and the ratio reference / afd
# (> 1: afd faster).
#
# Usage: bash tools/bench_autoattack.sh --checkpoint runs/main_job/at/checkpoint [--count 1000]
#                                       [--build build] [--eps 0.3] [--sequential]
#   --sequential runs the two one after the other instead (for a machine with one free core).
# Needs the real MNIST (bash tools/fetch_data.sh mnist), Debian's python3-torch and a checkout of
# fra31/auto-attack (env AFD_AUTOATTACK; see tests/fixtures/attacks/refs_common.py).
set -euo pipefail
cd "$(dirname "$0")/.."
build=build
count=1000
eps=0.3
checkpoint=""
sequential=0
while (($#)); do
  case "$1" in
    --checkpoint) checkpoint=${2:?}; shift 2 ;;
    --count) count=${2:?}; shift 2 ;;
    --build) build=${2:?}; shift 2 ;;
    --eps) eps=${2:?}; shift 2 ;;
    --sequential) sequential=1; shift ;;
    -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench_autoattack.sh: error: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
[[ -n "$checkpoint" ]] || { echo "bench_autoattack.sh: error: --checkpoint DIR is required" >&2; exit 2; }
ninja -C "$build" afd_run > /dev/null
out="$build/bench_autoattack"
rm -rf "$out" && mkdir -p "$out"

ours() {
  OMP_WAIT_POLICY=passive "$build/afd_run" eval --checkpoint "$checkpoint" --attacks autoattack --eps "$eps" \
    --count "$count" --threads 1 --sanity-points 0 --progress lines --out "$out/afd" > /dev/null 2> "$out/afd.log"
}
theirs() {
  /usr/bin/python3 tools/bench_autoattack_torch.py --checkpoint "$checkpoint" --count "$count" --eps "$eps" \
    --threads 1 > "$out/torch.json" 2> "$out/torch.log"
}
echo "afd and the reference on $count points, load $(cut -d' ' -f1-3 /proc/loadavg); logs in $out/" >&2
if ((sequential)); then
  ours
  theirs
else
  ours & p1=$!
  theirs & p2=$!
  wait $p1
  wait $p2
fi

python3 - "$out" "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)" << 'EOF_PY'
import json, sys
out, cpu = sys.argv[1:]
ours = json.load(open(f"{out}/afd/eval.json"))
m = ours["models"][0]["attacks"][0]
theirs = json.loads([l for l in open(f"{out}/torch.json") if l.startswith("JSON ")][-1][5:])
print(f"AutoAttack standard Linf, {ours['count']} MNIST test points, MNIST ResNet18, one thread each, f32, {cpu}; "
      f"torch {theirs['version']}, auto-attack {theirs['autoattack'][:7]}\n")
print("| component | afd robust % | reference robust % | afd s | reference s | reference / afd |")
print("|---|---:|---:|---:|---:|---:|")
print(f"| clean | {100 * ours['models'][0]['clean_acc']:.2f} | {100 * theirs['clean_acc']:.2f} | | | |")
for a, b in zip(m["components"], theirs["components"]):
    print(f"| {a['attack']} | {100 * a['robust_acc']:.2f} | {100 * b['robust_acc']:.2f} | {a['seconds']:.1f} | "
          f"{b['seconds']:.1f} | {b['seconds'] / a['seconds']:.2f} |")
ta, tb = sum(a["seconds"] for a in m["components"]), sum(b["seconds"] for b in theirs["components"])
print(f"| all | | | {ta:.1f} | {tb:.1f} | {tb / ta:.2f} |")
EOF_PY
