"""What real data and real interruptions throw at the package: broken Tatoeba files, runs killed while
saving, corrupt or mismatched model directories, two runs that must agree, outputs that must stay bounded
and a reader that closes the pipe.

Guards tested elsewhere, not repeated here: tests/test_data.py (a line without a tab, a column count other
than line 1's, blank lines counted with --skip_bad_lines, invalid UTF-8 in line 1000, a missing or empty
file, BOM and CRLF, every pair removed by the length filter); tests/test_run_translation.py (SIGKILL after
and during a checkpoint, SIGKILL during the final model's save, Ctrl-C).
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys

import pytest
import torch
from datasets import load_from_disk
from test_push_to_hub import FAKE_HUB
from test_run_translation import TINY, run_script

from data_scripts.prepare_tatoeba import DataFileError, PrepareArguments, prepare_tatoeba, read_pairs
from modeling_gru_seq2seq import (
    GruSeq2SeqConfig,
    GruSeq2SeqForConditionalGeneration,
    GruSeq2SeqTokenizer,
    train_word_level,
)
from modeling_gru_seq2seq.loading import ModelLoadError, load_model_and_tokenizer
from modeling_gru_seq2seq.pipeline_gru_seq2seq import save_translation_pipeline
from modeling_gru_seq2seq.translate import main as translate_main
from modeling_gru_seq2seq.translate import translate

SKIP = PrepareArguments(min_count=1, skip_bad_lines=True)
STRICT = PrepareArguments(min_count=1)
ONE_MB_OF_WORDS = b"a " * 500_000

# ---------------------------------------------------------------- broken Tatoeba files

# name: (content, the error without --skip_bad_lines (None: none), (pairs, blank lines, bad lines) with it)
BROKEN_FILES = {
    "blank lines before the first pair": (
        b"\n \n" + b"Go.\tVa !\nHi.\tSalut.\tx\nRun!\tCours !\n",
        r":4: expected 2 tab-separated columns like line 3, found 3: 'Hi\.\\tSalut\.\\tx'",
        (2, 2, 1),
    ),
    "1,500 blank lines, then pairs": (b"\n" * 1500 + b"Go.\tVa !\n\nHi.\tSalut.\n", None, (2, 1501, 0)),
    "a 1 MB line without a tab": (
        b"Go.\tVa !\n" + ONE_MB_OF_WORDS + b"\nHi.\tSalut.\n",
        r":2: expected 2 tab-separated columns like line 1, found 1: 'a a a ",
        (2, 0, 1),
    ),
    "a 1 MB pair": (b"Go.\tVa !\n" + ONE_MB_OF_WORDS + b"\t" + ONE_MB_OF_WORDS + b"\nHi.\tSalut.\n", None, (3, 0, 0)),
    "every line after the first bad": (
        b"Go.\tVa !\tCC-BY\nno tab\none\ttab\nfour\tcolumns\there\tx\n",
        r":2: expected 3 .* found 1",
        (1, 0, 3),
    ),
    "lone CR line ends with a blank line": (b"Go.\tVa !\r\rHi.\tSalut.\rRun!\tCours !\r", None, (3, 1, 0)),
}


def number_of_lines(content: bytes) -> int:
    """Lines as the reader sees them (universal newlines: `\\n`, `\\r\\n`, a lone `\\r`)."""
    text = content.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    return text.count(b"\n") + (not text.endswith(b"\n"))


def printed_counts(stderr: str) -> tuple[int, int]:
    """(blank, bad) as `read_pairs` printed them on stderr."""
    blank = re.search(r"Ignored (\d+) blank lines", stderr)
    bad = re.search(r"Skipped (\d+) bad lines", stderr)
    return int(blank.group(1)) if blank else 0, int(bad.group(1)) if bad else 0


@pytest.mark.parametrize("name", BROKEN_FILES)
def test_broken_file_gives_a_clear_error_or_skips_and_counts_every_line(name, tmp_path, capsys):
    content, error, (num_pairs, num_blank, num_bad) = BROKEN_FILES[name]
    path = tmp_path / "pairs.txt"
    path.write_bytes(content)
    if error is not None:
        with pytest.raises(DataFileError, match=re.escape(str(path)) + error) as raised:
            read_pairs(str(path), STRICT)
        assert "\n" not in str(raised.value) and len(str(raised.value)) < 300  # one short line, even for 1 MB
        capsys.readouterr()
    pairs = read_pairs(str(path), SKIP)
    assert (len(pairs), *printed_counts(capsys.readouterr().err)) == (num_pairs, num_blank, num_bad)
    assert num_pairs + num_blank + num_bad == number_of_lines(content)  # never a silent wrong count


def test_invalid_utf8_after_lone_cr_line_ends_names_its_line(tmp_path):
    path = tmp_path / "mac.txt"
    path.write_bytes(b"Go.\tVa !\rHi.\tSalut.\rTea.\tTh\xe9.\r")
    with pytest.raises(DataFileError, match=re.escape(f"{path}:3: invalid UTF-8")):
        read_pairs(str(path), STRICT)


def test_split_left_empty_by_rounding_is_an_error(tmp_path):
    path = tmp_path / "same.txt"
    path.write_text("I see 1.\tJe vois 1.\nI see 2.\tJe vois 2.\n", encoding="utf-8")  # one source: "je vois ."
    with pytest.raises(DataFileError, match=re.escape(f"{path}: the test split is empty (0.05 of 1 source sentences")):
        prepare_tatoeba(str(path), PrepareArguments(min_count=1, validation_fraction=0))


def test_every_pair_holding_a_rare_word_names_the_trimming_step(tmp_path):
    path = tmp_path / "rare.txt"
    path.write_text("Go.\tVa !\nHi.\tSalut.\nRun!\tCours !\n", encoding="utf-8")
    with pytest.raises(DataFileError, match=re.escape(f"{path}: no pairs left after dropping pairs with trimmed")):
        prepare_tatoeba(str(path), PrepareArguments(min_count=2))


# ---------------------------------------------------------------- data preparation killed while saving

KILL_IN_SAVE_TO_DISK = """
import os, signal
from datasets import Dataset
original = Dataset.save_to_disk
def die_after_the_first_split(self, path, *args, **kwargs):
    if not path.endswith("train"):  # dataset_dict.json and train are written, validation and test are not
        os.kill(os.getpid(), signal.SIGKILL)
    return original(self, path, *args, **kwargs)
Dataset.save_to_disk = die_after_the_first_split
"""

KILL_WHILE_DELETING_A_CORPUS = """
import os, shutil, signal
original = shutil.rmtree
def delete_part_then_die(path, *args, **kwargs):
    if os.path.isfile(os.path.join(path, "dataset_dict.json")):  # a complete corpus being deleted
        original(os.path.join(path, "tokenizer"))
        os.kill(os.getpid(), signal.SIGKILL)
    return original(path, *args, **kwargs)
shutil.rmtree = delete_part_then_die
"""


def prepare_command(train_file, output_dir, *extra, prelude=""):
    argv = [
        "prepare_tatoeba",
        "--train_file",
        str(train_file),
        "--output_dir",
        str(output_dir),
        "--min_count",
        "1",
        *extra,
    ]
    code = (
        f"{prelude}\nimport runpy, sys\nsys.argv = {argv!r}\n"
        "runpy.run_module('data_scripts.prepare_tatoeba', run_name='__main__')"
    )
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def assert_complete_corpus(output_dir):
    assert set(load_from_disk(str(output_dir))) == {"train", "validation", "test"}
    assert GruSeq2SeqTokenizer.from_pretrained(output_dir / "tokenizer").source_vocab_size > 4


def test_killed_data_preparation_leaves_no_corpus_or_the_old_one_and_the_rerun_cleans_up(tmp_path):
    train_file = tmp_path / "pairs.txt"
    names = [first + second for first in "bdfklmnprt" for second in "aeio"]  # 40 sources: 2 + 2 + 36 pairs
    train_file.write_text("".join(f"I see {name}.\tJe vois {name}.\n" for name in names), encoding="utf-8")
    output_dir = tmp_path / "prepared"

    killed = prepare_command(train_file, output_dir, prelude=KILL_IN_SAVE_TO_DISK)
    assert killed.returncode == -signal.SIGKILL
    assert not output_dir.exists()  # nothing that could load as if complete
    with pytest.raises(FileNotFoundError):
        load_from_disk(str(output_dir))
    rerun = prepare_command(train_file, output_dir)
    assert rerun.returncode == 0, rerun.stderr
    assert_complete_corpus(output_dir)
    assert sorted(os.listdir(tmp_path)) == ["pairs.txt", "prepared"]  # the killed run's staging is gone

    replaced = prepare_command(train_file, output_dir, "--overwrite_output_dir", prelude=KILL_WHILE_DELETING_A_CORPUS)
    assert replaced.returncode == -signal.SIGKILL
    assert_complete_corpus(output_dir)  # the new corpus is in place before the old one is deleted
    again = prepare_command(train_file, output_dir, "--overwrite_output_dir")
    assert again.returncode == 0, again.stderr
    assert sorted(os.listdir(tmp_path)) == ["pairs.txt", "prepared"]


# ---------------------------------------------------------------- push_to_hub killed while saving locally

# Trainer.push_to_hub saves the model into output_dir again before uploading (through
# GruSeq2SeqTrainer.save_model's staging folder): kill it there, leaving model.safetensors half written as a
# kill in the middle of the write would. (Patched before transformers is imported, which binds
# safetensors' save_file.)
KILL_IN_PUSH_SAVE = """
import os, signal
from safetensors import torch as safetensors_torch
pushing = []
original_save = safetensors_torch.save_file
def save_half_then_die(tensors, filename, *args, **kwargs):
    original_save(tensors, filename, *args, **kwargs)
    if pushing:
        with open(filename, "r+b") as handle:
            handle.truncate(os.path.getsize(filename) // 2)
        os.kill(os.getpid(), signal.SIGKILL)
safetensors_torch.save_file = save_half_then_die
from modeling_gru_seq2seq.training import GruSeq2SeqTrainer
original_push = GruSeq2SeqTrainer.push_to_hub
def push(self, *args, **kwargs):
    pushing.append(True)
    return original_push(self, *args, **kwargs)
GruSeq2SeqTrainer.push_to_hub = push
"""


@pytest.mark.slow
def test_sigkill_in_push_to_hub_local_save_keeps_the_saved_model_whole_and_the_rerun_pushes(pairs_file, tmp_path):
    pushed, output_dir = tmp_path / "hub", tmp_path / "out"
    args = [
        "--train_file",
        pairs_file,
        "--output_dir",
        str(output_dir),
        *TINY,
        "--max_steps",
        "3",
        "--save_strategy",
        "steps",
        "--save_steps",
        "3",
        "--eval_strategy",
        "no",
        "--max_eval_samples",
        "8",
        "--max_predict_samples",
        "8",
        "--num_attention_plots",
        "0",
        "--push_to_hub",
        "--hub_model_id",
        "someone/gru-fr-en",
    ]
    env = {"PUSHED_DIR": str(pushed)}
    killed = run_script(*args, env=env, prelude=KILL_IN_PUSH_SAVE + FAKE_HUB)
    assert killed.returncode == -signal.SIGKILL
    staged = output_dir / ".model-staging" / "model.safetensors"
    assert staged.stat().st_size < (output_dir / "model.safetensors").stat().st_size  # the half-written save
    load_model_and_tokenizer(str(output_dir))  # ... stayed in staging: the model saved before the push is whole

    rerun = run_script(*args, env=env, prelude=FAKE_HUB)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert f"Resuming from {output_dir / 'checkpoint-3'}" in rerun.stdout
    load_model_and_tokenizer(str(output_dir))
    repo = pushed / "someone" / "gru-fr-en"
    assert (repo / "model.safetensors").read_bytes() == (output_dir / "model.safetensors").read_bytes()


# ---------------------------------------------------------------- corrupt or mismatched model directories

PAIRS = [("je suis content .", "i am happy ."), ("il est la .", "he is here ."), ("elle a froid !", "she is cold !")]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """An untrained tiny model saved as run_translation.py saves one (its outputs run to the length limit)."""
    torch.manual_seed(0)
    tokenizer = GruSeq2SeqTokenizer.from_vocabularies(
        train_word_level([fr for fr, _ in PAIRS]), train_word_level([en for _, en in PAIRS])
    )
    config = GruSeq2SeqConfig(
        source_vocab_size=tokenizer.source_vocab_size,
        target_vocab_size=tokenizer.target_vocab_size,
        hidden_size=8,
        num_layers=1,
    )
    model = GruSeq2SeqForConditionalGeneration(config)
    model.generation_config.max_length = 21  # 20 new tokens
    directory = tmp_path_factory.mktemp("reliability") / "model"
    save_translation_pipeline(model.eval(), tokenizer, str(directory))
    return directory


def remove(name):
    return lambda directory: (directory / name).unlink()


def cut_in_half(name):
    def cut(directory):
        data = (directory / name).read_bytes()
        (directory / name).write_bytes(data[: len(data) // 2])

    return cut


def set_config(**fields):
    def edit(directory):
        config = json.loads((directory / "config.json").read_text())
        (directory / "config.json").write_text(json.dumps({**config, **fields}))

    return edit


def other_tokenizer(directory):
    GruSeq2SeqTokenizer.from_vocabularies(
        train_word_level(["je suis la . tu es grand"]), train_word_level(["i am here ."])
    ).save_pretrained(directory)


def interrupted_training(directory):
    (directory / "config.json").unlink()
    (directory / "checkpoint-12").mkdir()
    (directory / ".model-staging").mkdir()


# name: (how the directory is damaged, the one-line error: `{dir}` stands for the directory)
CORRUPTIONS = {
    "missing config.json": (remove("config.json"), "{dir}: not a saved model (no config.json in it)"),
    "truncated model.safetensors": (
        cut_in_half("model.safetensors"),
        "{dir}/model.safetensors: truncated ({size} bytes, its header describes {full}; an interrupted save?)",
    ),
    "tokenizer of another model": (
        other_tokenizer,
        "{dir}/tokenizer.json: a source vocabulary of 11 ids, but the model's source embedding "
        "has 15 rows (config.json): the tokenizer belongs to another model",
    ),
    "unknown attention": (
        set_config(attention="cosine"),
        "{dir}/config.json: attention: got 'cosine', want one of dot, general, concat",
    ),
    "config.json cut short": (cut_in_half("config.json"), "{dir}/config.json: not valid JSON ("),
    "missing target vocabulary": (
        remove("target_tokenizer.json"),
        "{dir}/target_tokenizer.json: missing (the tokenizer needs both vocabularies)",
    ),
    "another model type": (
        set_config(model_type="marian"),
        "{dir}/config.json: model_type 'marian' is not a gru-seq2seq model ('gru_seq2seq')",
    ),
    "interrupted training run": (
        interrupted_training,
        "{dir}: not a saved model (no config.json in it); it holds .model-staging, "
        "checkpoint-12: a training run that did not finish saving, rerun its command to resume",
    ),
}


@pytest.fixture(scope="module")
def corrupt_dirs(model_dir):
    """Each corruption applied to a copy of `model_dir`: {name: (directory, expected message)}."""
    full_size = (model_dir / "model.safetensors").stat().st_size
    dirs = {}
    for index, (name, (damage, message)) in enumerate(CORRUPTIONS.items()):
        directory = model_dir.parent / f"corrupt-{index}"
        shutil.copytree(model_dir, directory)
        damage(directory)
        dirs[name] = directory, message.format(dir=directory, size=full_size // 2, full=full_size)
    return dirs


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_corrupt_model_directory_is_one_error_naming_file_and_problem(corrupt_dirs, name):
    directory, message = corrupt_dirs[name]
    with pytest.raises(ModelLoadError) as raised:
        load_model_and_tokenizer(str(directory))
    assert str(raised.value).startswith(message) and "\n" not in str(raised.value)


CLI_DRIVER = """
import sys
from {module} import main
for directory in sys.argv[2:]:
    arguments = [directory, "je suis content ."] if sys.argv[1] == "translate" else [
        "--model_name_or_path", directory, "--do_eval", "--output_dir", directory + "-eval"]
    print(f"exit {{main(arguments)}}", file=sys.stderr, flush=True)
"""


@pytest.mark.parametrize(
    "command, module", [("translate", "modeling_gru_seq2seq.translate"), ("run_translation", "run_translation")]
)
def test_both_commands_print_only_the_one_line_error(corrupt_dirs, command, module):
    names = list(CORRUPTIONS)
    result = subprocess.run(
        [sys.executable, "-c", CLI_DRIVER.format(module=module), command, *(str(corrupt_dirs[n][0]) for n in names)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = result.stderr.splitlines()
    assert len(lines) == 2 * len(names), result.stderr  # per directory: the error, then the exit code
    for name, error, exit_line in zip(names, lines[::2], lines[1::2], strict=False):
        assert error.startswith(f"error: {corrupt_dirs[name][1]}") and exit_line == "exit 2", (name, error)


# ---------------------------------------------------------------- determinism


def run_with_seed(pairs_file, output_dir, seed: int) -> tuple[dict, dict, str]:
    """Losses by step, all_results.json and the test predictions of a short CPU run."""
    result = run_script(
        "--train_file",
        pairs_file,
        "--output_dir",
        str(output_dir),
        *TINY,
        "--seed",
        str(seed),
        "--learning_rate",
        "3e-3",
        "--max_train_samples",
        "200",
        "--max_steps",
        "10",
        "--logging_steps",
        "1",
        "--eval_strategy",
        "no",
        "--save_strategy",
        "no",
        "--max_eval_samples",
        "20",
        "--max_predict_samples",
        "20",
        "--num_attention_plots",
        "0",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    state = json.loads((output_dir / "trainer_state.json").read_text())
    losses = {entry["step"]: entry["loss"] for entry in state["log_history"] if "loss" in entry}
    results = json.loads((output_dir / "all_results.json").read_text())
    return losses, results, (output_dir / "generated_predictions.txt").read_text(encoding="utf-8")


def test_two_cpu_runs_with_the_same_seed_agree_step_for_step(pairs_file, tmp_path):
    losses, results, predictions = run_with_seed(pairs_file, tmp_path / "first", seed=3)
    again_losses, again_results, again_predictions = run_with_seed(pairs_file, tmp_path / "again", seed=3)
    assert len(losses) == 10 and again_losses == losses  # exactly equal, every step
    for key in ("eval_bleu", "eval_chrf", "eval_loss", "predict_bleu", "predict_chrf", "predict_loss"):
        assert again_results[key] == results[key], key
    assert again_predictions == predictions
    other_losses, _, _ = run_with_seed(pairs_file, tmp_path / "other", seed=4)
    assert other_losses != losses  # the seed matters, so agreeing above is not a given


# ---------------------------------------------------------------- bounded outputs, closed pipes, quiet stdout


def test_max_new_tokens_bounds_the_output_of_long_and_many_sentences(model_dir, capsys):
    model, tokenizer = load_model_and_tokenizer(str(model_dir))
    sentences = [" ".join(["je suis content ."] * 250)] + ["il est la ."] * 1024  # 1,000 words, then 1,024 lines
    lengths = {len(t.output_tokens) for t in translate(model, tokenizer, sentences, batch_size=256, max_new_tokens=3)}
    assert lengths == {3}  # untrained: never an early <eos>, so the limit is what stops it
    assert {len(t.output_tokens) for t in translate(model, tokenizer, sentences[:2])} == {20}  # the model's own
    assert translate_main([str(model_dir), "je suis content .", "il est la .", "--max_new_tokens", "2"]) == 0
    assert [len(line.split()) for line in capsys.readouterr().out.splitlines()] == [2, 2]


def test_closed_output_pipe_ends_quietly(model_dir):
    """`gru-translate MODEL < file | head -1`: the reader is gone before the translations are written. With
    stdout buffered (PYTHONUNBUFFERED unset), two short lines wait in Python's buffer for the final flush,
    the hardest case; a larger or unbuffered output fails earlier, in the write, in the same handler."""
    script = shutil.which("gru-translate", path=os.path.dirname(sys.executable))
    buffered = {name: value for name, value in os.environ.items() if name != "PYTHONUNBUFFERED"}
    process = subprocess.Popen(
        [script, str(model_dir)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=buffered
    )
    process.stdout.close()
    _, stderr = process.communicate(b"je suis content .\nil est la .\n", timeout=120)
    assert process.returncode == 128 + signal.SIGPIPE
    assert stderr == b""


def test_data_notes_go_to_stderr_not_into_samples_output(model_dir, tmp_path, capsys):
    samples = tmp_path / "samples.tsv"
    samples.write_text("I am happy.\tJe suis content.\n\nHe is here.\tIl est là.\n", encoding="utf-8")
    assert translate_main([str(model_dir), "--samples", str(samples), "-n", "2", "--seed", "0"]) == 0
    captured = capsys.readouterr()
    assert "Ignored 1 blank lines" in captured.err and "Ignored" not in captured.out
    assert captured.out.startswith("> ")
