#!/usr/bin/env bash
# Wheels for benchmarks/gpu_check.sh on a GPU machine without internet: what such a machine may lack of the
# package's requirements (datasets, evaluate, accelerate, sacrebleu, ninja) and of the tests' (pytest,
# hypothesis), with their dependencies, and transformers, for CPython 3.12 on manylinux x86_64; never torch (the
# machine's own). Versions are this environment's, the ones the project is tested with.
# GPU_WHEELS_DROP names wheels not to keep: by default the largest, of packages that a CUDA PyTorch image
# holds anyway (pyarrow, numpy, pandas, lxml: about 85 of the 120 MB, leaving about 37 MB);
# GPU_WHEELS_DROP= keeps them all.
# Usage: bash benchmarks/gpu_wheels.sh OUTDIR    (then gpu_check.sh ... --wheels OUTDIR; wheels are not committed)
set -euo pipefail
outdir=${1:?usage: bash benchmarks/gpu_wheels.sh OUTDIR}
python=${PYTHON:-python3}
drop=${GPU_WHEELS_DROP-pyarrow numpy pandas lxml}

pinned() {  # NAME... -> NAME==VERSION... as installed here
    "$python" -c 'import importlib.metadata as m, sys; print(*(f"{n}=={m.version(n)}" for n in sys.argv[1:]))' "$@"
}

target=(--only-binary=:all: --implementation cp --python-version 3.12 --abi cp312)
for glibc in 2_28 2_27 2_26 2_24 2_17 2_12 2_5; do  # pip matches each manylinux tag exactly as given
    target+=(--platform "manylinux_${glibc}_x86_64")
done
target+=(--platform manylinux2014_x86_64 --platform manylinux2010_x86_64 --platform manylinux1_x86_64)
# accelerate requires torch, so it comes alone; its other requirements are in the second list. transformers and
# its hub/tokenizers versions too, without their other requirements (typer & co., which a CUDA image holds): an
# H100 image had transformers 5.17, older than the one the project is tested with
"$python" -m pip download -d "$outdir" "${target[@]}" --no-deps $(pinned accelerate transformers tokenizers \
    huggingface_hub kernels hf_xet tomlkit)
"$python" -m pip download -d "$outdir" "${target[@]}" $(pinned datasets evaluate sacrebleu ninja pytest hypothesis \
    psutil pyyaml safetensors huggingface_hub numpy packaging)
for name in $drop; do
    rm -f "$outdir/$name"-*.whl
done
echo "$(ls "$outdir" | wc -l) wheels, $(du -sh "$outdir" | cut -f1), in $outdir${drop:+ (dropped: $drop)}"
