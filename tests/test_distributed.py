"""DDP on CPU: `torchrun --nproc_per_node 2 run_translation.py` trains in sync and its distributed
evaluation scores exactly what one process scores on the same saved model and data."""

import json
import math
import os
import subprocess
import sys

import pytest
from runs import SCRIPT, TINY

pytestmark = pytest.mark.slow  # whole training runs in subprocesses


def test_two_process_training_evaluates_like_one_process(pairs_file, tmp_path):
    pairs = tmp_path / "pairs.txt"
    with open(pairs_file, encoding="utf-8") as source:
        pairs.write_text("".join(line for _, line in zip(range(1000), source, strict=False)), encoding="utf-8")
    data = [
        "--train_file",
        str(pairs),
        *TINY,
        "--max_eval_samples",
        "40",
        "--per_device_eval_batch_size",
        "12",
        "--eval_strategy",
        "no",
        "--num_attention_plots",
        "0",
    ]
    distributed_dir, single_dir = tmp_path / "ddp", tmp_path / "single"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    trained = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            "2",
            SCRIPT,
            *data,
            "--output_dir",
            str(distributed_dir),
            "--max_steps",
            "30",
            "--learning_rate",
            "5e-3",
            "--do_predict",
            "false",
            "--ddp_backend",
            "gloo",
            "--ddp_find_unused_parameters",
            "false",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert trained.returncode == 0, trained.stderr[-3000:]
    state = json.loads((distributed_dir / "trainer_state.json").read_text())
    assert state["global_step"] == 30
    # 2 processes x 50 pairs per step: an epoch takes half the steps one process needs
    train_samples = json.loads((distributed_dir / "train_results.json").read_text())["train_samples"]
    assert state["epoch"] == pytest.approx(30 / math.ceil(train_samples / 100))

    evaluated = subprocess.run(
        [
            sys.executable,
            SCRIPT,
            *data,
            "--model_name_or_path",
            str(distributed_dir),
            "--do_eval",
            "--output_dir",
            str(single_dir),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    distributed = json.loads((distributed_dir / "eval_results.json").read_text())
    single = json.loads((single_dir / "eval_results.json").read_text())
    assert distributed["eval_samples"] == single["eval_samples"] == 40
    assert distributed["eval_chrf"] > 5  # the model says something, so equal scores mean equal outputs
    for key in ("eval_bleu", "eval_chrf", "eval_gen_len", "eval_bleu_in_vocab"):
        assert distributed[key] == single[key], key


def test_two_processes_train_one_subword_vocabulary(pairs_file, tmp_path):
    """Under DDP the first process trains the subword vocabulary and the other reads it: it is trained once."""
    output_dir = tmp_path / "ddp"
    at = TINY.index("--min_count")  # word vocabularies only
    flags = ["--train_file", pairs_file, "--output_dir", str(output_dir), *TINY[:at], *TINY[at + 2 :]]
    flags += ["--max_steps", "4"]
    flags += ["--vocabulary", "bpe", "--vocab_size", "400", "--normalization", "none", "--eval_strategy", "no"]
    flags += ["--num_attention_plots", "0", "--do_predict", "false", "--max_eval_samples", "20"]
    flags += ["--ddp_backend", "gloo", "--ddp_find_unused_parameters", "false"]
    trained = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", SCRIPT, *flags],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    ranks = [line for line in trained.stderr.splitlines() if "[rank" in line or "error:" in line]
    assert trained.returncode == 0, "\n".join(ranks)[-6000:]
    assert trained.stdout.count("Trained bpe vocabularies on the training split") == 1, trained.stdout[-3000:]
    assert (output_dir / "tokenizer.json").is_file() and not (output_dir / ".vocabulary").exists()
