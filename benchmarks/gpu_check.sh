#!/usr/bin/env bash
# The GPU check, in at most 6 minutes, every result written into RESULTS_DIR:
#   1. the `cuda` tests: cuda_tests.xml (junit), cuda_tests.log;
#   2. bench_train.py, fp32 and bf16 autocast, at teacher forcing 0.5 and 1.0 (dot attention; pairs/s, peak GPU
#      memory, the CUDA kernel share of a step): bench_train_fp32.json, bench_train_bf16.json; bench_generate.py
#      on a hidden-500 model it trains first (sentences/s, peak GPU memory): bench_generate.json;
#   3. the tutorial's experiment: run_translation.py --max_steps 50000 --per_device_train_batch_size 50
#      --eval_strategy no --save_strategy no --max_train_minutes 3, which then evaluates once (validation and
#      test) at the step reached: tutorial/*.json (the model itself is not kept).
# Each step's output is in STEP.log and its exit code in steps.jsonl (124: timed out); a failed step does not
# stop the others. summary.json gathers the numbers: pairs/s, sentences/s, peak memory, kernel share, steps/s,
# the projected time for 50,000 steps and test BLEU.
#
# Usage: bash benchmarks/gpu_check.sh RESULTS_DIR [--device cuda|cpu] [--data DIR] [--wheels DIR]
#   --device  cuda (default) or cpu (a dry run)
#   --data    a folder holding eng-fra.txt and seed_tutorial.py, at its top or in data/ and peers/ (default ../shared)
#   --wheels  a folder of wheels (benchmarks/gpu_wheels.sh) to install missing packages from, offline
# Knobs (environment): GPU_CHECK_SECONDS (360, the whole run), GPU_CHECK_BENCH_STEPS (50 timed steps a variant),
# GPU_CHECK_PROFILE_STEPS (5), GPU_CHECK_GENERATE_COUNT (300 sentences), GPU_CHECK_GENERATE_TRAIN_STEPS (300),
# GPU_CHECK_PEER_STEPS (300, the peer's training before it decodes), GPU_CHECK_TUTORIAL_STEPS (50000),
# GPU_CHECK_TUTORIAL_MINUTES (3; less if earlier steps leave less time), GPU_CHECK_EVAL_SAMPLES (all),
# GPU_CHECK_CAP_SCALE (1: multiplies each step's own time limit, for slow CPUs), PYTHON (python3).
# The CPU dry run in the README sets them tiny.
set -euo pipefail

usage="usage: bash benchmarks/gpu_check.sh RESULTS_DIR [--device cuda|cpu] [--data DIR] [--wheels DIR]"
repo=$(cd "$(dirname "$0")/.." && pwd)
results=${1:?$usage}
shift
device=cuda data_dir=$repo/../shared wheels=
while (( $# )); do
    case $1 in
        --device) device=${2:?$usage} ;;
        --data) data_dir=${2:?$usage} ;;
        --wheels) wheels=${2:?$usage} ;;
        *) echo "$usage" >&2; exit 2 ;;
    esac
    shift 2
done
[[ $device == cuda || $device == cpu ]] || { echo "--device must be cuda or cpu" >&2; exit 2; }
pairs=$data_dir/eng-fra.txt peer=$data_dir/seed_tutorial.py
[[ -f $pairs ]] || pairs=$data_dir/data/eng-fra.txt
[[ -f $peer ]] || peer=$data_dir/peers/seed_tutorial.py
for file in "$pairs" "$peer"; do
    [[ -f $file ]] || { echo "missing $file (see --data)" >&2; exit 2; }
done

seconds=${GPU_CHECK_SECONDS:-360}
bench_steps=${GPU_CHECK_BENCH_STEPS:-50}
profile_steps=${GPU_CHECK_PROFILE_STEPS:-5}
generate_count=${GPU_CHECK_GENERATE_COUNT:-300}
generate_train_steps=${GPU_CHECK_GENERATE_TRAIN_STEPS:-300}
peer_steps=${GPU_CHECK_PEER_STEPS:-300}
tutorial_steps=${GPU_CHECK_TUTORIAL_STEPS:-50000}
tutorial_minutes=${GPU_CHECK_TUTORIAL_MINUTES:-3}
eval_samples=${GPU_CHECK_EVAL_SAMPLES:-}
cap_scale=${GPU_CHECK_CAP_SCALE:-1}
python=${PYTHON:-python3}
tutorial_overhead=60  # seconds for the tutorial run's start, data preparation, evaluation and saving
tutorial_reserve=$(( tutorial_overhead + 60 ))  # kept for it by the steps before: at least a minute of training

mkdir -p "$results"
results=$(cd "$results" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
: >"$results/steps.jsonl"
export PYTHONPATH=$repo${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 \
    TOKENIZERS_PARALLELISM=false
cd "$repo"
start=$(date +%s)
deadline=$(( start + seconds ))

record() {  # NAME RC SECONDS LIMIT NOTE: one line of steps.jsonl
    printf '{"step": "%s", "rc": %s, "seconds": %s, "limit_s": %s, "note": "%s"}\n' "$@" >>"$results/steps.jsonl"
    echo "[gpu_check] $1: rc $2 after $3 s (limit $4 s) $5"
}

step() {  # NAME CAP RESERVE COMMAND...: COMMAND under a timeout of CAP seconds or what the deadline leaves after
          # RESERVE; its output in NAME.log
    local name=$1 cap=$(( $2 * cap_scale )) reserve=$3 rc=0 began
    shift 3
    local limit=$(( deadline - $(date +%s) - reserve ))
    (( limit < cap )) || limit=$cap
    if (( limit <= 0 )); then
        record "$name" null 0 0 "skipped: no time left"
        return
    fi
    began=$(date +%s)
    timeout -k 10 "$limit" "$@" >"$results/$name.log" 2>&1 || rc=$?
    record "$name" "$rc" $(( $(date +%s) - began )) "$limit" ""
}

# 1. missing packages, then the cuda tests
missing=()
for module in datasets evaluate accelerate sacrebleu pytest hypothesis ninja; do
    "$python" -c "import $module" 2>/dev/null || missing+=("$module")
done
if (( ${#missing[@]} == 0 )); then
    record install 0 0 0 "nothing missing"
elif [[ -z $wheels ]]; then
    record install 1 0 0 "missing ${missing[*]} and no --wheels"
else
    step install 120 "$tutorial_reserve" "$python" -m pip install --no-index --find-links "$wheels" "${missing[@]}"
fi
step cuda_tests 120 "$tutorial_reserve" "$python" -m pytest -m cuda tests/test_cuda.py -p no:cacheprovider \
    --junitxml "$results/cuda_tests.xml"

# 2. benchmarks
bench=(--device "$device" --data "$pairs" --peer "$peer")
for precision in fp32 bf16; do
    extra=(--profile "$profile_steps" --skip_peer)  # the peer's one-sentence loops outran the 90 s on an H100
    [[ $precision == fp32 ]] || extra+=(--bf16)
    step "bench_train_$precision" 90 "$tutorial_reserve" "$python" benchmarks/bench_train.py "${bench[@]}" \
        --steps "$bench_steps" --variants dot-0.5 dot-1.0 "${extra[@]}" --output "$results/bench_train_$precision.json"
done
step bench_generate 120 "$tutorial_reserve" "$python" benchmarks/bench_generate.py "${bench[@]}" \
    --count "$generate_count" --train_steps "$generate_train_steps" --peer_train_steps "$peer_steps" \
    --output "$results/bench_generate.json"

# 3. the tutorial's experiment, with what time is left (up to GPU_CHECK_TUTORIAL_MINUTES of training)
minutes=$(awk -v left=$(( deadline - $(date +%s) - tutorial_overhead )) -v most="$tutorial_minutes" \
    'BEGIN { m = left / 60; if (m > most) m = most; if (m < 0.1) m = 0.1; printf "%.2f", m }')
tutorial=(--train_file "$pairs" --output_dir "$work/tutorial" --max_steps "$tutorial_steps"
          --per_device_train_batch_size 50 --eval_strategy no --save_strategy no --max_train_minutes "$minutes"
          --report_to none --disable_tqdm true)
[[ -z $eval_samples ]] || tutorial+=(--max_eval_samples "$eval_samples" --max_predict_samples "$eval_samples")
[[ $device == cuda ]] || tutorial+=(--use_cpu true)
step tutorial "$seconds" 0 "$python" run_translation.py "${tutorial[@]}"
mkdir -p "$results/tutorial"
for name in all_results.json train_results.json eval_results.json predict_results.json trainer_state.json \
        generated_predictions.txt; do
    [[ ! -f $work/tutorial/$name ]] || cp "$work/tutorial/$name" "$results/tutorial/"
done

# the summary
"$python" - "$results" "$device" "$minutes" $(( $(date +%s) - start )) <<'EOF' || echo "[gpu_check] no summary" >&2
"""Gather the results folder's numbers into summary.json and print them."""
import json, os, platform, sys, time
import xml.etree.ElementTree as ElementTree

import torch
import transformers

results, device, minutes, seconds = sys.argv[1:]


def read(name):
    """The JSON file `name` of the results folder; {} if it is missing."""
    path = os.path.join(results, name)
    if not os.path.isfile(path):
        return {}
    with open(path) as handle:
        return json.load(handle)


with open(os.path.join(results, "steps.jsonl")) as handle:
    steps = [json.loads(line) for line in handle]
summary = {"date": time.strftime("%Y-%m-%d %H:%M"), "device": device, "python": platform.python_version(),
           "torch": torch.__version__, "transformers": transformers.__version__, "seconds": int(seconds),
           "steps": steps}
if torch.cuda.is_available():
    summary.update(gpu=torch.cuda.get_device_name(), cuda=torch.version.cuda, cudnn=torch.backends.cudnn.version())
if os.path.isfile(os.path.join(results, "cuda_tests.xml")):
    suite = ElementTree.parse(os.path.join(results, "cuda_tests.xml")).getroot().find("testsuite")
    summary["cuda_tests"] = {key: int(suite.get(key)) for key in ("tests", "failures", "errors", "skipped")}
summary["bench_train"] = [
    {"precision": precision, **{key: row.get(key) for key in (
        "who", "variant", "median_pairs_per_s", "train_pairs_per_s", "peak_gpu_memory_mb",
        "cuda_kernel_seconds_per_step", "cuda_kernel_share")}}
    for precision in ("fp32", "bf16") for row in read(f"bench_train_{precision}.json").get("rows", [])]
summary["bench_generate"] = [
    {key: row.get(key) for key in ("who", "mode", "sentences_per_s", "mean_output_tokens", "peak_gpu_memory_mb")}
    for row in read("bench_generate.json").get("rows", [])]
state, train = read("tutorial/trainer_state.json"), read("tutorial/train_results.json")
scores = read("tutorial/all_results.json")
if state and train:
    steps_per_s = state["global_step"] / train["train_runtime"]
    summary["tutorial"] = {
        "max_train_minutes": float(minutes), "global_step": state["global_step"],
        "train_runtime_s": train["train_runtime"], "steps_per_s": steps_per_s,
        "projected_minutes_for_50000_steps": 50000 / steps_per_s / 60,  # the tutorial's run
        "test_bleu": scores.get("predict_bleu"), "validation_bleu": scores.get("eval_bleu"),
        "train_loss": train.get("train_loss")}
with open(os.path.join(results, "summary.json"), "w") as handle:
    json.dump(summary, handle, indent=2)
print(json.dumps(summary, indent=2))
EOF
echo "[gpu_check] results in $results ($(( $(date +%s) - start )) s)"
