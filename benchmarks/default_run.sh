#!/usr/bin/env bash
# The default training run the README reports: the tutorial's settings on the shared Tatoeba file, CPU.
# Usage: bash benchmarks/default_run.sh [output_dir]   (prints wall time; metrics in output_dir/all_results.json)
set -euo pipefail
cd "$(dirname "$0")/.."
output_dir=${1:-runs/default}
start=$(date +%s)
python run_translation.py --train_file ../shared/data/eng-fra.txt --output_dir "$output_dir" --overwrite_output_dir
echo "wall time: $(( $(date +%s) - start )) s"
