#!/usr/bin/env bash
# The CPU-scale reproduction of the paper on MNIST (issue 9; docs/reproduction.md), in three
# stages, each safe to stop (Ctrl-C, kill, a reboot) and to run again: finished pieces are
# skipped, a stopped training continues from its last checkpoint.
#
#   train   NT, AT, TRADES, AFD-DCGAN, AFD-WGAN and (MNIST only) the norm baseline of the paper's
#           Sec. 4.6 with the paper's MNIST ResNet18 and presets,
#           each for 10 epochs on all 60,000 training images, with a shorter training attack than
#           the paper's (5 iterations instead of 40: APGD-CE for AT, AFD and norm; TRADES' KL attack with
#           steps of 0.075 instead of 0.01, so that 5 steps still cross the eps-ball of 0.3).
#   eval    the nine attacks of the paper over its eps grids on the first 1,000 test points, one
#           part per model and attack (DIR/eval/NAME.ATTACK), plus the black-box part (DIR/eval/bb:
#           PGD-Linf and C&W-L2 crafted on NT, AT and TRADES, on every model: Tables 1 and A3).
#           Parts of unfinished trainings wait; a part evaluated on other weights than a model's
#           checkpoint now holds (trained again with another --seed, say) is evaluated again.
#   report  afd_run eval --merge of every finished part into DIR/report (eval.md, tables, plots,
#           the per-claim verdicts).
#   publish (not part of "all") copies what is finished into results/reproduce_mnist (or
#           --publish-to DIR) to be committed: each model's weights, final.json, resolved flags
#           and epoch lines, each part's eval.json and per-sample flags, and the report. Copied
#           back (cp -rn results/reproduce_mnist/. runs/reproduce_mnist/), they let another machine
#           go on with the evaluation without training again.
#
#   bash tools/reproduce_mnist.sh [--stage train|eval|report|publish|all] [--out DIR] [--build DIR]
#                                 [--jobs N] [--only NAME[,NAME...]] [--count N] [--seed S]
#                                 [--full [--dataset mnist|cifar10] [--device cuda]] [--publish-to DIR]
#
# --full: the paper's full scale instead (the presets of configs/DATASET_*.flags as they are:
# 100 epochs, 40-step training attacks; every test point; default out runs/reproduce_DATASET_full),
# for GPU machines (--device cuda; --jobs 1 on one GPU).
# --jobs N runs N trainings or evaluation parts side by side, one thread each (default 2: one per
# core here). --count N evaluates the first N test points instead of 1,000 (a quick check). --seed S
# trains with seed S instead of 0 (model init, data order, training attack; the evaluation's attack
# starts keep seed 0), for a second seed of some models in another --out. Runs
# go to DIR/NAME (default runs/reproduce_mnist/NAME); logs to DIR/NAME.log and
# DIR/eval/NAME.ATTACK.log.
set -euo pipefail
cd "$(dirname "$0")/.."

out=""
build=build
full=0
dataset=mnist
device=""
publish_to=""
jobs=2
only=""
stage=all
count=""
seed=0
while (($#)); do
  case "$1" in
    --full) full=1; shift ;;
    --publish-to) publish_to=${2:?--publish-to needs a folder}; shift 2 ;;
    --dataset) dataset=${2:?--dataset needs mnist or cifar10}; shift 2 ;;
    --device) device=${2:?--device needs a device, e.g. cuda}; shift 2 ;;
    --count) count=${2:?--count needs a number}; shift 2 ;;
    --seed) seed=${2:?--seed needs a number}; shift 2 ;;
    --stage) stage=${2:?--stage needs train, eval, report or all}; shift 2 ;;
    --out) out=${2:?--out needs a folder}; shift 2 ;;
    --build) build=${2:?--build needs a folder}; shift 2 ;;
    --jobs) jobs=${2:?--jobs needs a number}; shift 2 ;;
    --only) only=${2:?--only needs names}; shift 2 ;;
    -h|--help) sed -n '2,36p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "reproduce_mnist: error: unknown argument '$1'" >&2; exit 2 ;;
  esac
done

# NAME and the flags that define it on top of the paper's preset (configs/DATASET_NAME.flags).
case "$dataset" in mnist|cifar10) ;; *) echo "reproduce_mnist: error: --dataset '$dataset': mnist or cifar10" >&2; exit 2 ;; esac
((full)) || [[ $dataset == mnist ]] || { echo "reproduce_mnist: error: the CPU scale is MNIST only; add --full" >&2; exit 2; }
declare -A runs
order=(nt at trades afd_dcgan afd_wgan)
# The norm baseline of the paper's Sec. 4.6 (Figure A5: F(x') pulled towards F(x) by a loss term
# instead of a discriminator) was run on MNIST only.
[[ $dataset == mnist ]] && order+=(norm)
for name in "${order[@]}"; do runs[$name]="--flagfile configs/${dataset}_$name.flags"; done
# One thread per run at the CPU scale (--jobs runs side by side); afd_run's default otherwise.
threads=()
if ((full)); then
  budget=(--train-subset 0)  # the presets as they are: epochs, the 40-step training attacks
  out=${out:-runs/reproduce_${dataset}_full}
  count=${count:-0}          # every test point
else
  budget=(--epochs 10 --train-subset 0)
  threads=(--threads 1)
  runs[at]+=" --attack apgd-ce --attack-eps 0.3 --attack-steps 5"
  runs[trades]+=" --trades-steps 5 --trades-step-size 0.075"
  runs[afd_dcgan]+=" --attack apgd-ce --attack-eps 0.3 --attack-steps 5"
  runs[afd_wgan]+=" --attack apgd-ce --attack-eps 0.3 --attack-steps 5"
  runs[norm]+=" --attack apgd-ce --attack-eps 0.3 --attack-steps 5"
  out=${out:-runs/reproduce_mnist}
  count=${count:-1000}
fi
if [[ -n "$device" ]]; then threads+=(--device "$device"); fi
# The models' names in the report, and the nine attacks of the paper (afd_run help attacks).
declare -A labels=([nt]=NT [at]=AT [trades]=TRADES [afd_dcgan]=AFD-DCGAN [afd_wgan]=AFD-WGAN [norm]=NORM)
# Table 1's attacks first, AutoAttack (the longest) last.
attacks=(pgd-linf cw-l2 fgsm mim-linf pgd-l2 pgd-l1 ddn deepfool-linf autoattack)
case "$stage" in train|eval|report|publish|all) ;; *) echo "reproduce_mnist: error: --stage '$stage': train, eval, report, publish or all" >&2; exit 2 ;; esac
all_models=("${order[@]}")  # the black-box part and the report take every model, whatever --only says
if [[ -n "$only" ]]; then IFS=, read -r -a order <<< "$only"; fi
for name in "${order[@]}"; do
  [[ -n "${runs[$name]:-}" ]] || { echo "reproduce_mnist: error: unknown run '$name' (known: ${!runs[*]})" >&2; exit 2; }
done

bash tools/setup.sh
if [[ ! -f "$build/build.ninja" ]]; then meson setup "$build" --buildtype=release; fi
ninja -C "$build" afd_run
afd="$build/afd_run"
"$afd" data --dataset "$dataset" --no-describe > /dev/null 2>&1 || bash tools/fetch_data.sh "$dataset"
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
  take_lock "$out/$name.lock" "$name" || return 0
  local flags=(${runs[$name]} "${budget[@]}" --seed "$seed" --checkpoint-every 1 --test-subset 1000 "${threads[@]}"
               --progress lines --progress-every 50 --out "$dir" --overwrite)
  if [[ -f "$dir/checkpoint/trainer.safetensors" ]]; then
    echo "reproduce_mnist: $name: continuing from $dir/checkpoint" >&2
    flags=(--resume "$dir" "${threads[@]}" --progress lines --progress-every 50)
  else
    echo "reproduce_mnist: $name: training into $dir" >&2
  fi
  local code=0
  "$afd" train "${flags[@]}" >> "$out/$name.log" 2>&1 || code=$?
  rm -rf "$out/$name.lock"
  if ((code)); then
    echo "reproduce_mnist: $name: stopped (status $code); run the script again to continue (log: $out/$name.log)" >&2
    return 1
  fi
  echo "reproduce_mnist: $name: finished" >&2
}

# take_lock FOLDER NAME: a lock folder holding this process's pid, so that several runs of this
# script share the work (one per core, or one per machine on a shared folder) and never train or
# evaluate the same thing twice at once; a dead holder's lock is taken over. Fails if held.
take_lock() {
  local lock=$1
  if ! mkdir "$lock" 2> /dev/null; then
    if kill -0 "$(cat "$lock/pid" 2> /dev/null)" 2> /dev/null; then
      echo "reproduce_mnist: $2: busy in process $(cat "$lock/pid")" >&2
      return 1
    fi
    rm -rf "$lock"
    mkdir "$lock" 2> /dev/null || return 1
  fi
  echo "$BASHPID" > "$lock/pid"
}

# pool FUNCTION ITEM...: FUNCTION ITEM for every item, --jobs at a time; fails if any failed.
pool() {
  local fn=$1 status=0 running=0
  shift
  for item in "$@"; do
    "$fn" "$item" &
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
  return $status
}

# The crc32 that afd_run eval records as a model's "weights_crc32" (of model.safetensors' bytes),
# taken from gzip's trailer: its last 8 bytes are the CRC-32 of the input and its length, both
# little-endian.
weights_crc32() {
  gzip -c "$1/checkpoint/model.safetensors" | tail -c 8 | head -c 4 | od -An -tx1 | tr -s ' ' '\n' | grep . | tac |
    tr -d '\n'
}

# One evaluation part: NAME.ATTACK (white-box) or bb (black-box, every model). A part is done
# when its eval.json exists (written last); an interrupted part starts again.
evaluate() {
  local part=$1 dir="$out/eval/$1"
  # A black-box part from before the AT and TRADES sources (one source) is done again.
  if [[ $part == bb && -f "$dir/eval.json" ]] && ! grep -q '"black_box_sources"' "$dir/eval.json"; then
    echo "reproduce_mnist: bb: $dir has one source only; evaluating it again" >&2
    rm -rf "$dir"
  fi
  # So is a part evaluated on other weights than a finished model's checkpoint now holds (the model
  # trained again here, e.g. with another --seed), or lacking a finished model (for bb, any model
  # or source: a model added since, like the norm baseline, has no weights_crc32 there).
  if [[ -f "$dir/eval.json" ]]; then
    local checked=("${part%%.*}")
    [[ $part == bb ]] && checked=("${all_models[@]}")
    for name in "${checked[@]}"; do
      [[ -f "$out/$name/final.json" ]] || continue
      if ! grep -q "\"weights_crc32\": \"$(weights_crc32 "$out/$name")\"" "$dir/eval.json"; then
        echo "reproduce_mnist: $part: $dir lacks the weights of $name's checkpoint; evaluating it again" >&2
        rm -rf "$dir"
        break
      fi
    done
  fi
  if [[ -f "$dir/eval.json" ]]; then return 0; fi
  local flags=(--count "$count" "${threads[@]}" --progress none --out "$dir")
  if [[ "$part" == bb ]]; then
    local ckpts=() names=()
    for name in "${all_models[@]}"; do
      [[ -f "$out/$name/final.json" ]] || { echo "reproduce_mnist: bb: waits for $name's training" >&2; return 0; }
      ckpts+=("$out/$name/checkpoint"); names+=("${labels[$name]}")
    done
    # The sources: NT (Table 1), AT and TRADES (Table A3).
    local sources=() source_names=()
    for name in nt at trades; do
      [[ -f "$out/$name/final.json" ]] || { echo "reproduce_mnist: bb: needs $name as a source" >&2; return 0; }
      sources+=("$out/$name/checkpoint"); source_names+=("${labels[$name]}")
    done
    flags+=(--checkpoint "$(IFS=,; echo "${ckpts[*]}")" --names "$(IFS=,; echo "${names[*]}")" --attacks none
            --source-checkpoint "$(IFS=,; echo "${sources[*]}")" --source-names "$(IFS=,; echo "${source_names[*]}")"
            --bb-attacks pgd-linf,cw-l2)
  else
    local name=${part%%.*} attack=${part#*.}
    [[ -f "$out/$name/final.json" ]] || { echo "reproduce_mnist: $part: waits for $name's training" >&2; return 0; }
    # The sanity report runs once per model, after AutoAttack (whose result it reuses).
    flags+=(--checkpoint "$out/$name/checkpoint" --names "${labels[$name]}" --attacks "$attack"
            --sanity-points "$([[ $attack == autoattack ]] && echo 200 || echo 0)")
  fi
  local lock="$out/eval/$part.lock"
  take_lock "$lock" "$part" || return 0
  echo "reproduce_mnist: $part: evaluating into $dir" >&2
  local start=$SECONDS code=0
  "$afd" eval "${flags[@]}" > "$out/eval/$part.log" 2>&1 || code=$?
  rm -rf "$lock"
  if ((code)); then
    echo "reproduce_mnist: $part: failed (status $code; log: $out/eval/$part.log)" >&2
    return 1
  fi
  echo "reproduce_mnist: $part: done in $((SECONDS - start)) s" >&2
}

status=0
if [[ $stage == train || $stage == all ]]; then
  pool train "${order[@]}" || status=1
fi
if [[ $stage == eval || $stage == all ]]; then
  mkdir -p "$out/eval"
  parts=()
  for attack in "${attacks[@]}"; do
    for name in "${order[@]}"; do parts+=("$name.$attack"); done
    [[ $attack == cw-l2 ]] && parts+=(bb)  # Table 1 complete but for AutoAttack
  done
  pool evaluate "${parts[@]}" || status=1
fi
if [[ $stage == report || $stage == all ]]; then
  done_parts=()
  for name in "${all_models[@]}"; do
    for attack in "${attacks[@]}"; do
      [[ -f "$out/eval/$name.$attack/eval.json" ]] && done_parts+=("$out/eval/$name.$attack")
    done
  done
  [[ -f "$out/eval/bb/eval.json" ]] && done_parts+=("$out/eval/bb")
  if ((${#done_parts[@]})); then
    "$afd" eval --merge "$(IFS=,; echo "${done_parts[*]}")" --out "$out/report" > /dev/null
    echo "reproduce_mnist: report of ${#done_parts[@]} of $(( ${#all_models[@]} * ${#attacks[@]} + 1 )) parts: $out/report/eval.md" >&2
  else
    echo "reproduce_mnist: no evaluation part is finished yet" >&2
  fi
fi
if [[ $stage == publish ]]; then
  dest=${publish_to:-results/$(basename "$out")}
  copied=0
  for name in "${order[@]}"; do
    [[ -f "$out/$name/final.json" ]] || continue
    mkdir -p "$dest/$name/checkpoint"
    cp "$out/$name/final.json" "$out/$name/resolved.flags" "$dest/$name/"
    # The epoch lines come from the training log; an evaluation-only copy of the runs has none
    # (keep the published ones).
    if [[ -f "$out/$name.log" ]]; then grep -h "done in" "$out/$name.log" > "$dest/$name/epochs.txt" || true; fi
    for f in model.safetensors discriminator.safetensors; do
      [[ -f "$out/$name/checkpoint/$f" ]] && cp "$out/$name/checkpoint/$f" "$dest/$name/checkpoint/"
    done
    copied=$((copied + 1))
  done
  for part_dir in "$out"/eval/*/; do
    part=$(basename "$part_dir")
    [[ -f "$part_dir/eval.json" ]] || continue
    mkdir -p "$dest/eval/$part"
    cp "$part_dir/eval.json" "$part_dir/per_sample.safetensors" "$dest/eval/$part/"
  done
  if [[ -f "$out/report/eval.md" ]]; then
    rm -rf "$dest/report"
    mkdir -p "$dest/report"
    cp -r "$out/report/." "$dest/report/"
  fi
  echo "reproduce_mnist: published $copied model(s), $(ls -d "$dest"/eval/*/ 2> /dev/null | wc -l) part(s) and the report to $dest" >&2
fi
exit $status
