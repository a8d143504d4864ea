"""Cases that once ended in a traceback from deep inside: one line and a non-zero exit, nothing lost."""

import datetime
import errno
import json
import os
import shutil

import pytest
import torch
from runs import TINY

import run_translation
from modeling_gru_seq2seq import owner_lock


def tiny_run(pairs_file, output_dir, *more):
    flags = ["--train_file", pairs_file, "--output_dir", str(output_dir), *TINY, "--max_steps", "2"]
    return [*flags, "--eval_strategy", "no", "--num_attention_plots", "1", "--max_eval_samples", "8", *more]


def one_line(capsys) -> str:
    """The error a command ended with: its last line on stderr (progress bars come before it), no traceback."""
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err and "Traceback" not in captured.out
    return [line for line in captured.err.splitlines() if line.strip()][-1]


def test_generate_with_inputs_embeds_is_refused_in_one_line(tiny_model):
    with pytest.raises(ValueError) as error:
        tiny_model.generate(inputs_embeds=torch.zeros(1, 3, 8), max_new_tokens=2)
    assert str(error.value).startswith("generate(inputs_embeds=...): this model reads token ids; pass input_ids")
    assert error.value.__cause__ is None and "\n" not in str(error.value)


def test_a_read_only_output_folder_is_one_line(pairs_file, tmp_path, capsys, monkeypatch):
    """The run's lock file cannot be written (a read-only file system: root ignores file modes, so the writer
    is patched to answer as one does)."""
    output_dir = tmp_path / "out"
    output_dir.mkdir()
    real_open = os.open

    def read_only(path, *args, **kwargs):
        if str(path).startswith(str(output_dir)):
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(owner_lock.os, "open", read_only)
    assert run_translation.main(tiny_run(pairs_file, output_dir)) == 2
    assert one_line(capsys) == f"error: --output_dir {output_dir}: cannot write there (Read-only file system)"


def test_ctrl_c_after_training_says_what_was_saved(pairs_file, tmp_path, capsys, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(run_translation, "save_plots", interrupted)  # Ctrl-C while the heatmaps are drawn
    output_dir = tmp_path / "out"
    assert run_translation.main(tiny_run(pairs_file, output_dir)) == 130
    error = one_line(capsys)
    assert error == (
        f"interrupted (Ctrl-C): the trained model is saved in {output_dir}; rerun the command to evaluate again "
        "(training is not repeated)"
    )
    assert (output_dir / "model.safetensors").is_file()


def test_a_checkpoint_holding_other_pickles_is_refused_naming_the_file(pairs_file, tmp_path, capsys):
    output_dir = tmp_path / "out"
    flags = tiny_run(pairs_file, output_dir, "--save_strategy", "steps", "--save_steps", "2")
    assert run_translation.main(flags) == 0
    checkpoint = output_dir / "checkpoint-2"
    torch.save({"made": datetime.datetime(2026, 1, 1)}, checkpoint / "rng_state.pth")  # not plain data
    capsys.readouterr()
    assert run_translation.main([*flags, "--max_steps", "4"]) == 2
    error = one_line(capsys)
    assert error.startswith(f"error: {checkpoint / 'rng_state.pth'}: holds pickled objects that are not plain data")


def test_resume_by_another_path_to_the_same_training_file(pairs_file, tmp_path, monkeypatch, capsys):
    """Trained with a relative path, resumed with the absolute one (or through a link, or a copy with the same
    content): the same data, so the resume goes on."""
    shutil.copy(pairs_file, tmp_path / "pairs.txt")
    monkeypatch.chdir(tmp_path)
    flags = tiny_run("pairs.txt", tmp_path / "out", "--save_strategy", "steps", "--save_steps", "2")
    assert run_translation.main(flags) == 0
    for path in (str(tmp_path / "pairs.txt"), str(tmp_path / "copy.txt")):
        shutil.copy(tmp_path / "pairs.txt", tmp_path / "copy.txt")
        steps = {str(tmp_path / "pairs.txt"): "4", str(tmp_path / "copy.txt"): "6"}[path]
        rerun = [path if flag == "pairs.txt" else flag for flag in flags]
        assert run_translation.main([*rerun, "--max_steps", steps]) == 0, capsys.readouterr().err
        state = json.loads((tmp_path / "out" / "trainer_state.json").read_text(encoding="utf-8"))
        assert state["global_step"] == int(steps)
    (tmp_path / "other.txt").write_text((tmp_path / "pairs.txt").read_text(encoding="utf-8")[:-200], encoding="utf-8")
    other = [str(tmp_path / "other.txt") if flag == "pairs.txt" else flag for flag in flags]
    capsys.readouterr()
    assert run_translation.main([*other, "--max_steps", "8"]) == 2
    error = one_line(capsys)
    assert "was trained with --train_file" in error and f"this run has '{tmp_path / 'other.txt'}'" in error


def test_generation_settings_that_cannot_run_are_one_line(tmp_path, capsys):
    from tiny import PAIRS, learn_by_heart

    from modeling_gru_seq2seq import translate
    from modeling_gru_seq2seq.pipeline_gru_seq2seq import save_translation_pipeline

    model, tokenizer = learn_by_heart(PAIRS)
    save_translation_pipeline(model.eval(), tokenizer, str(tmp_path / "model"))
    path = tmp_path / "model" / "generation_config.json"
    settings = json.loads(path.read_text(encoding="utf-8"))
    path.write_text(json.dumps({**settings, "do_sample": True, "temperature": 0}), encoding="utf-8")
    assert translate.main([str(tmp_path / "model"), "je suis content ."]) == 2
    error = one_line(capsys)
    assert error.startswith(f"error: {path}: `temperature` (=0) has to be a strictly positive float")


@pytest.mark.parametrize("kind", ["missing", "file", "empty", "broken"])
def test_a_dataset_name_that_holds_no_dataset_is_one_line(tmp_path, capsys, kind):
    folder = tmp_path / "data"
    if kind == "file":
        folder.write_text('{"translation": {"fr": "a", "en": "b"}}\n', encoding="utf-8")
    elif kind in ("empty", "broken"):
        folder.mkdir()
    if kind == "broken":
        (folder / "train.jsonl").write_text('{"translation": {"fr": "a", "en": \n', encoding="utf-8")
    flags = ["--dataset_name", str(folder), "--output_dir", str(tmp_path / "out"), *TINY]
    assert run_translation.main(flags) == 2
    error = one_line(capsys)
    expected = {
        "missing": f"error: --dataset_name {folder}: no such folder",
        "file": f"error: --dataset_name {folder}: a file, want a folder of split files",
        "empty": f"error: --dataset_name {folder}: cannot be read as a dataset",
        "broken": f"error: --dataset_name {folder}: cannot be read as a dataset",
    }[kind]
    assert error.startswith(expected), error


@pytest.mark.parametrize("kind", ["truncated", "plain text", "non-finite"])
def test_damaged_or_non_finite_word_vectors_are_one_line(pairs_file, tmp_path, capsys, kind):
    """A truncated `.gz` or plain text named `.gz`: one line before the data is read (the training file here does
    not even exist); a vector holding nan or inf: one line naming it, not a diverged training."""
    import gzip

    lines = "".join(f"{word} {' '.join(['0.1'] * 32)}\n" for word in ("je", "suis", "content"))
    path = tmp_path / ("vectors.vec" if kind == "non-finite" else "vectors.vec.gz")
    if kind == "truncated":
        path.write_bytes(gzip.compress(lines.encode() * 200)[:-40])
    elif kind == "plain text":
        path.write_text(lines, encoding="utf-8")
    else:
        path.write_text(lines.replace("0.1", "nan", 1), encoding="utf-8")
    train_file = pairs_file if kind == "non-finite" else str(tmp_path / "never-read.txt")
    flags = tiny_run(train_file, tmp_path / "out", "--source_embeddings", str(path))
    assert run_translation.main(flags) == 2
    error = one_line(capsys)
    expected = {
        "truncated": f"error: --source_embeddings {path}: the gzip data is truncated or damaged",
        "plain text": f"error: --source_embeddings {path}: named .gz, but not gzip data",
        "non-finite": f"error: --source_embeddings {path}, line 1: the vector of 'je' holds non-finite values",
    }[kind]
    assert error.startswith(expected), error


def test_a_full_disk_at_a_checkpoint_names_the_last_complete_one_and_the_rerun_resumes(
    pairs_file, tmp_path, capsys, monkeypatch
):
    """safetensors' own error for a full disk while a checkpoint is written (a patched writer: the second save
    fails as safetensors does at 0 bytes free): one line saying the disk is full and naming the last complete
    checkpoint; the rerun resumes from it."""
    from safetensors import SafetensorError
    from transformers import modeling_utils

    saves, real_save = [], modeling_utils.safe_save_file

    def full_disk_at_the_second_save(*args, **kwargs):
        saves.append(1)
        if len(saves) == 2:
            raise SafetensorError(
                'Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: "No space left on '
                'device" })'
            )
        return real_save(*args, **kwargs)

    monkeypatch.setattr(modeling_utils, "safe_save_file", full_disk_at_the_second_save)
    output_dir = tmp_path / "out"
    flags = tiny_run(pairs_file, output_dir, "--save_strategy", "steps", "--save_steps", "2", "--max_steps", "4")
    assert run_translation.main(flags) == 1
    error = one_line(capsys)
    assert error.startswith("error: the disk is full (saving failed: Error while serializing")
    assert error.endswith(
        f"the last complete checkpoint is {output_dir / 'checkpoint-2'}: make room, then rerun the "
        "same command to resume"
    )
    monkeypatch.setattr(modeling_utils, "safe_save_file", real_save)
    assert run_translation.main(flags) == 0
    assert "Resuming from" in capsys.readouterr().out
    assert json.loads((output_dir / "trainer_state.json").read_text(encoding="utf-8"))["global_step"] == 4


AUTO_SCRIPT = """
import json, sys
sys.modules["modeling_gru_seq2seq"] = None  # only the code saved with the model
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer
try:
    (AutoTokenizer if sys.argv[2] == "tokenizer" else AutoModelForSeq2SeqLM).from_pretrained(
        sys.argv[1], trust_remote_code=True
    )
    print(json.dumps(None))
except Exception as error:
    print(json.dumps([type(error).__name__, [base.__name__ for base in type(error).__mro__], str(error),
                      error.__cause__ is None and (error.__context__ is None or error.__suppress_context__)]))
"""


@pytest.mark.parametrize(
    "damage, expected",
    [
        ("truncated weights", "model.safetensors: truncated"),
        ("header too large", "model.safetensors: truncated"),
        ("no weights", "model.safetensors: missing (the directory holds no weights)"),
        ("broken generation config", "generation_config.json: not valid JSON"),
        ("broken tokenizer", "tokenizer.json: not valid JSON"),
    ],
)
def test_a_damaged_model_folder_is_one_line_through_the_auto_classes(tmp_path, damage, expected):
    """transformers' Auto classes with `trust_remote_code`, in a process that cannot import the package: the code
    saved with the model checks its files as gru-translate does (raw SafetensorError, OSError and
    JSONDecodeError tracebacks before)."""
    import subprocess
    import sys

    from tiny import PAIRS, learn_by_heart

    from modeling_gru_seq2seq.pipeline_gru_seq2seq import save_translation_pipeline

    model, tokenizer = learn_by_heart(PAIRS)
    folder = tmp_path / "model"
    save_translation_pipeline(model.eval(), tokenizer, str(folder))
    weights = folder / "model.safetensors"
    if damage == "truncated weights":
        weights.write_bytes(weights.read_bytes()[:-100])
    elif damage == "header too large":
        weights.write_bytes((10**12).to_bytes(8, "little") + weights.read_bytes()[8:])
    elif damage == "no weights":
        weights.unlink()
    elif damage == "broken generation config":
        (folder / "generation_config.json").write_text('{"max_length": 5', encoding="utf-8")
    else:
        (folder / "tokenizer.json").write_text('{"version": ', encoding="utf-8")
    which = "tokenizer" if damage == "broken tokenizer" else "model"
    result = subprocess.run(
        [sys.executable, "-c", AUTO_SCRIPT, str(folder), which],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "HF_MODULES_CACHE": str(tmp_path / "modules")},
    )
    assert result.returncode == 0, result.stderr
    name, bases, message, unchained = json.loads(result.stdout.strip().splitlines()[-1])
    assert name == "SavedFileError" and "OSError" in bases and unchained
    assert message.startswith(str(folder / expected.split(":")[0]) + ":") and expected in message, message
    assert "\n" not in message
