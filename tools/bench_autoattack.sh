#!/usr/bin/env bash
# AutoAttack standard (Linf) time, afd against the reference code (issue 7): afd_run eval --attacks
# autoattack and fra31/auto-attack's AutoAttack on PyTorch (tools/bench_autoattack_torch.py) on the
# same checkpoint and the same first N test points. On the CPU (the MNIST ResNet18, one thread each)
# the two run side by side (one core each on a 2-core machine: both see the same machine); on a GPU
# (--device cuda, the CIFAR-10 ResNet18: tools/device_autoattack.sh) one after the other. Prints
# each component's cumulative robust accuracy and time on both sides and the ratio reference / afd
# (> 1: afd faster).
#
# Usage: bash tools/bench_autoattack.sh --checkpoint runs/main_job/at/checkpoint [--count 1000]
#            [--build build] [--eps 0.3] [--sequential] [--dataset mnist|cifar10] [--data-dir DIR]
#            [--device cpu|cuda] [--precision strict|tf32] [--out DIR] [--side-timeout S]
#   --sequential runs the two one after the other instead (for a machine with one free core).
#   --eps: default 0.3 (MNIST) or 8/255 (CIFAR-10). --precision: on a GPU, both sides strict fp32
#   (default) or TF32 convolutions and matrix products. --out: logs (default BUILD/bench_autoattack).
#   --side-timeout: stop a side after S seconds (its table column then says so).
# Needs the dataset (bash tools/fetch_data.sh mnist), PyTorch (Debian's python3-torch here; $PYTHON
# names another interpreter) and a checkout of fra31/auto-attack (env AFD_AUTOATTACK; see
# tests/fixtures/attacks/refs_common.py).
set -euo pipefail
cd "$(dirname "$0")/.."
build=build
count=1000
eps=""
checkpoint=""
sequential=0
dataset=mnist
data_dir=""
device=cpu
precision=strict
out=""
side_timeout=0
while (($#)); do
  case "$1" in
    --checkpoint) checkpoint=${2:?}; shift 2 ;;
    --count) count=${2:?}; shift 2 ;;
    --build) build=${2:?}; shift 2 ;;
    --eps) eps=${2:?}; shift 2 ;;
    --sequential) sequential=1; shift ;;
    --dataset) dataset=${2:?}; shift 2 ;;
    --data-dir) data_dir=${2:?}; shift 2 ;;
    --device) device=${2:?}; shift 2 ;;
    --precision) precision=${2:?}; shift 2 ;;
    --out) out=${2:?}; shift 2 ;;
    --side-timeout) side_timeout=${2:?}; shift 2 ;;
    -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench_autoattack.sh: error: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
[[ -n "$checkpoint" ]] || { echo "bench_autoattack.sh: error: --checkpoint DIR is required" >&2; exit 2; }
case "$dataset" in
  mnist) eps=${eps:-0.3} ;;
  cifar10) eps=${eps:-0.03137254901960784} ;;  # 8/255
  *) echo "bench_autoattack.sh: error: --dataset '$dataset': mnist or cifar10" >&2; exit 2 ;;
esac
data_dir=${data_dir:-data/$dataset}
threads=1
# One GPU: each side has it to itself; a few threads for the host's share of the work.
[[ $device == cpu ]] || { sequential=1; threads=4; }
python=${PYTHON:-/usr/bin/python3}
# A build folder made here is brought up to date; a prebuilt one (tools/device_pack.sh) has no
# build.ninja and runs as it is.
if [[ -f "$build/build.ninja" ]]; then ninja -C "$build" afd_run > /dev/null; fi
out=${out:-$build/bench_autoattack}
rm -rf "$out" && mkdir -p "$out"

# A side that fails or runs out of time is reported in the table; the other still runs.
ours() {
  OMP_WAIT_POLICY=passive timeout -k 10 "$side_timeout" "$build/afd_run" eval --checkpoint "$checkpoint" --dataset "$dataset" --data-dir "$data_dir" \
    --attacks autoattack --eps "$eps" --count "$count" --device "$device" --precision "$precision" --threads "$threads" \
    --sanity-points 0 --progress lines --out "$out/afd" > /dev/null 2> "$out/afd.log" ||
    echo "afd_run eval: exit $?" >> "$out/afd.log"
}
theirs() {
  timeout -k 10 "$side_timeout" "$python" tools/bench_autoattack_torch.py --checkpoint "$checkpoint" --dataset "$dataset" --data-dir "$data_dir" \
    --count "$count" --eps "$eps" --device "$device" --precision "$precision" --threads "$threads" \
    > "$out/torch.json" 2> "$out/torch.log" || echo "bench_autoattack_torch.py: exit $?" >> "$out/torch.log"
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

"$python" - "$out" "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)" "$dataset" << 'EOF_PY'
import json, os, sys
out, cpu, dataset = sys.argv[1:]


def last_line(path):  # why a side has no result: the last line of its log
    try:
        return open(path).read().strip().splitlines()[-1]
    except (OSError, IndexError):
        return "no log"


ours = json.load(open(f"{out}/afd/eval.json")) if os.path.exists(f"{out}/afd/eval.json") else None
lines = [l for l in open(f"{out}/torch.json") if l.startswith("JSON ")] if os.path.exists(f"{out}/torch.json") else []
theirs = json.loads(lines[-1][5:]) if lines else None
data = {"mnist": "MNIST test points, MNIST ResNet18", "cifar10": "CIFAR-10 test points, CIFAR-10 ResNet18"}[dataset]
if theirs:
    where = f"{theirs['gpu']}, {theirs['precision']}" if theirs.get("gpu") else f"one thread each, f32, {cpu}"
    print(f"AutoAttack standard Linf, {theirs['count']} {data}, {where}; "
          f"torch {theirs['version']}, auto-attack {theirs['autoattack'][:7]}\n")
else:
    print(f"AutoAttack standard Linf, {ours['count'] if ours else ''} {data}\n")
if ours is None:
    print(f"afd: no result ({last_line(out + '/afd.log')})\n")
if theirs is None:
    print(f"reference: no result ({last_line(out + '/torch.log')})\n")
mine = ours["models"][0]["attacks"][0]["components"] if ours else []
ref = theirs["components"] if theirs else []
fmt = lambda v, f: "" if v is None else format(v, f)
print("| component | afd robust % | reference robust % | afd s | reference s | reference / afd |")
print("|---|---:|---:|---:|---:|---:|")
clean_a = 100 * ours["models"][0]["clean_acc"] if ours else None
clean_b = 100 * theirs["clean_acc"] if theirs else None
print(f"| clean | {fmt(clean_a, '.2f')} | {fmt(clean_b, '.2f')} | | | |")
for k in range(max(len(mine), len(ref))):
    a = mine[k] if k < len(mine) else None
    b = ref[k] if k < len(ref) else None
    ratio = b["seconds"] / max(a["seconds"], 1e-9) if a and b else None
    print(f"| {(a or b)['attack']} | {fmt(a and 100 * a['robust_acc'], '.2f')} | {fmt(b and 100 * b['robust_acc'], '.2f')} | "
          f"{fmt(a and a['seconds'], '.1f')} | {fmt(b and b['seconds'], '.1f')} | {fmt(ratio, '.2f')} |")
if mine and ref:
    ta, tb = sum(a["seconds"] for a in mine), sum(b["seconds"] for b in ref)
    print(f"| all | | | {ta:.1f} | {tb:.1f} | {tb / max(ta, 1e-9):.2f} |")
EOF_PY
