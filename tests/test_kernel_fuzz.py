"""The compiled ops are memory-safe whatever they are given: `tests/fuzz_kernels.py` calls them directly with
2,400 random cases in a fresh process (a memory error there is a signal, not an exception, and would end it)."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import fuzz_kernels

REPO_ROOT = Path(__file__).resolve().parent.parent
EXPECTED = {
    "gru_forward": (
        "valid",
        "valid (non-contiguous)",
        "valid (bf16 products)",
        "valid (bfloat16 model)",
        "valid (int8 weights)",
        *fuzz_kernels.GRU_INVALID,
    ),
    "gru_backward": ("valid", "valid (non-contiguous)", "valid (bf16 products)", *fuzz_kernels.BACKWARD_INVALID),
    "luong_step": (
        "valid",
        "valid (non-contiguous)",
        "valid (bfloat16 model)",
        "valid (int8 model)",
        *fuzz_kernels.LUONG_INVALID,
    ),
    "gemm": ("valid", *fuzz_kernels.GEMM_INVALID),
    "int8_linear": ("valid", "valid (portable)", *fuzz_kernels.INT8_INVALID),
}


def test_compiled_ops_raise_on_every_invalid_case_and_match_the_reference_on_valid_ones():
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "tests" / "fuzz_kernels.py"), "20261205", "2400"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO_ROOT,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    if result.returncode < 0:
        raise AssertionError(f"the fuzzed ops killed the process: {signal.Signals(-result.returncode).name}")
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["failures"] == []
    counts = report["counts"]
    assert sum(counts.values()) >= 2000
    for op, categories in EXPECTED.items():
        for category in categories:
            assert counts.get(f"{op}: {category}", 0) >= 1, f"{op}: {category} never ran"
