"""`--load_best_model_at_end` with the staged checkpoints, and `--early_stopping_patience`: the best checkpoint is
kept, recorded where it is, and becomes the saved model; early stopping ends at the evaluation it should."""

import json

import pytest
import torch
from runs import TINY
from safetensors.torch import load_file

import run_translation

SCRIPTED_BLEU = [10.0, 30.0, 20.0, 5.0, 4.0, 3.0, 2.0, 1.0]  # the best is the second evaluation


@pytest.fixture
def scripted_bleu(monkeypatch):
    """Validation BLEU as `SCRIPTED_BLEU` says, one value per evaluation (test predictions score 0)."""
    calls = []
    build = run_translation.build_compute_metrics

    def scripted(tokenizer, references, flags, decode=None, source_lengths=None):
        compute = build(tokenizer, references, flags, decode, source_lengths)

        def compute_metrics(prediction):
            metrics = compute(prediction)
            metrics["bleu"] = SCRIPTED_BLEU[len(calls)] if len(calls) < len(SCRIPTED_BLEU) else 0.0
            calls.append(metrics["bleu"])
            return metrics

        return compute_metrics

    monkeypatch.setattr(run_translation, "build_compute_metrics", scripted)
    return calls


def run_flags(pairs_file, output_dir, *more):
    flags = ["--train_file", pairs_file, "--output_dir", str(output_dir), *TINY, "--learning_rate", "1e-3"]
    flags += ["--eval_strategy", "steps", "--eval_steps", "2", "--save_strategy", "steps", "--save_steps", "2"]
    flags += ["--max_eval_samples", "6", "--num_attention_plots", "0", "--do_predict", "false"]
    return [*flags, *more]


@pytest.mark.parametrize("limit", ["1", "2"])
def test_the_best_checkpoint_is_kept_and_becomes_the_saved_model(pairs_file, tmp_path, scripted_bleu, limit):
    output_dir = tmp_path / "run"
    flags = run_flags(pairs_file, output_dir, "--max_steps", "8", "--save_total_limit", limit)
    flags += ["--load_best_model_at_end", "--metric_for_best_model", "bleu"]
    assert run_translation.main(flags) == 0
    state = json.loads((output_dir / "trainer_state.json").read_text(encoding="utf-8"))
    assert state["best_global_step"] == 4 and state["best_model_checkpoint"] == str(output_dir / "checkpoint-4")
    assert (output_dir / "checkpoint-4").is_dir()
    recorded = json.loads((output_dir / "checkpoint-4" / "trainer_state.json").read_text(encoding="utf-8"))
    assert recorded["best_model_checkpoint"] == str(output_dir / "checkpoint-4")
    best, saved = (load_file(folder / "model.safetensors") for folder in (output_dir / "checkpoint-4", output_dir))
    assert best.keys() == saved.keys() and all(torch.equal(best[name], saved[name]) for name in best)
    kept = sorted(path.name for path in output_dir.glob("checkpoint-*"))
    assert kept == (["checkpoint-4"] if limit == "1" else ["checkpoint-4", "checkpoint-8"])
    if limit == "2":  # the last checkpoint is not what was saved
        last = load_file(output_dir / "checkpoint-8" / "model.safetensors")
        assert not all(torch.equal(last[name], saved[name]) for name in last)


def test_early_stopping_ends_after_the_patience_runs_out(pairs_file, tmp_path, scripted_bleu):
    output_dir = tmp_path / "run"
    flags = run_flags(pairs_file, output_dir, "--max_steps", "40", "--early_stopping_patience", "2")
    flags += ["--load_best_model_at_end", "--metric_for_best_model", "bleu"]
    assert run_translation.main(flags) == 0
    state = json.loads((output_dir / "trainer_state.json").read_text(encoding="utf-8"))
    assert state["global_step"] == 8  # best at the 2nd evaluation (step 4); the 3rd and 4th are no better
    assert state["best_model_checkpoint"] == str(output_dir / "checkpoint-4")


def test_early_stopping_without_a_metric_is_one_line(pairs_file, tmp_path, capsys):
    output_dir = tmp_path / "run"
    assert run_translation.main(run_flags(pairs_file, output_dir, "--early_stopping_patience", "2")) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: --early_stopping_patience counts evaluations") and "\n" not in error
