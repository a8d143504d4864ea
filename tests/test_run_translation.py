"""run_translation.py end to end on real pairs: training, metrics, outputs, reload, resume after SIGKILL,
one-line errors for bad input, two runs with one seed that agree step for step, finished and resumed runs
(a rerun, other settings, a rewritten training file) and the output directory (users' files, a file in its
place, writability, room, a failed save, checkpoint-named files and folders)."""

import errno
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys

import pytest
import sacrebleu
from runs import SCRIPT, TINY, one_line_error, run_script
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer, pipeline

import run_translation
from data_scripts.prepare_tatoeba import PrepareArguments, prepare_tatoeba
from modeling_gru_seq2seq.training import GruSeq2SeqTrainer
from modeling_gru_seq2seq.translate import translate


@pytest.fixture(scope="module")
def trained(pairs_file, tmp_path_factory):
    output_dir = tmp_path_factory.mktemp("run") / "out"
    result = run_script(
        "--train_file",
        pairs_file,
        "--output_dir",
        str(output_dir),
        *TINY,
        "--learning_rate",
        "3e-3",
        "--num_train_epochs",
        "4",
        "--max_train_samples",
        "400",
        "--max_eval_samples",
        "40",
        "--max_predict_samples",
        "60",
        "--logging_steps",
        "2",
        "--eval_strategy",
        "epoch",
        "--save_strategy",
        "epoch",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return output_dir, result


@pytest.mark.slow
def test_training_reports_and_saves_everything(trained):
    output_dir, result = trained
    results = json.loads((output_dir / "all_results.json").read_text())
    for key in (
        "eval_bleu",
        "eval_chrf",
        "eval_gen_len",
        "eval_bleu_in_vocab",
        "predict_bleu",
        "predict_chrf",
        "predict_gen_len",
        "predict_bleu_in_vocab",
        "train_loss",
    ):
        assert key in results, key
    for name in (
        "train_results.json",
        "eval_results.json",
        "predict_results.json",
        "trainer_state.json",
        "README.md",
        "loss.png",
        "attention_0.png",
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "target_tokenizer.json",
        "generation_config.json",
    ):
        assert (output_dir / name).is_file(), name
    losses = [
        entry["loss"]
        for entry in json.loads((output_dir / "trainer_state.json").read_text())["log_history"]
        if "loss" in entry
    ]
    assert losses[-1] < losses[0] - 1.0  # the stated margin: one nat per target token
    assert "nrefs:1|case:mixed|eff:no|tok:13a" in result.stdout and "sacrebleu signature" in result.stdout


@pytest.mark.slow
def test_bleu_equals_sacrebleu_on_generated_predictions(trained, pairs_file):
    output_dir, _ = trained
    lines = (output_dir / "generated_predictions.txt").read_text(encoding="utf-8").split("\n")[:-1]
    test_split = prepare_tatoeba(pairs_file, PrepareArguments(min_count=1)).dataset["test"].select(range(60))
    references = [pair["en"] for pair in test_split["translation"]]
    assert len(lines) == len(references) == 60
    results = json.loads((output_dir / "predict_results.json").read_text())
    assert results["predict_bleu"] == pytest.approx(sacrebleu.corpus_bleu(lines, [references]).score, abs=1e-9)
    assert results["predict_chrf"] == pytest.approx(sacrebleu.corpus_chrf(lines, [references]).score, abs=1e-9)
    # the saved model reloads and translates the test sources to the same lines
    model = AutoModelForSeq2SeqLM.from_pretrained(output_dir)
    tokenizer = AutoTokenizer.from_pretrained(output_dir)
    sources = [pair["fr"] for pair in test_split["translation"]]
    # in the Trainer's batches (--per_device_eval_batch_size 50): decoding drops each sentence from its batch at
    # its <eos>, and the products of a batch of other rows may round differently in the last bits
    batches = [sources[:50], sources[50:]]
    assert [t.text for batch in batches for t in translate(model, tokenizer, batch, batch_size=50)] == lines
    translator = pipeline("translation", model=str(output_dir), trust_remote_code=True)
    assert translator(sources[0]) == [{"translation_text": lines[0]}]


def resume_args(pairs_file, output_dir):
    return [
        "--train_file",
        pairs_file,
        "--output_dir",
        str(output_dir),
        *TINY,
        "--max_train_samples",
        "200",
        "--max_steps",
        "12",
        "--save_strategy",
        "steps",
        "--save_steps",
        "4",
        "--logging_steps",
        "1",
        "--eval_strategy",
        "no",
        "--do_eval",
        "false",
        "--max_eval_samples",
        "10",
        "--max_predict_samples",
        "10",
        "--save_total_limit",
        "5",
        "--num_attention_plots",
        "0",
    ]


KILL_AFTER_FIRST_CHECKPOINT = """
import os, signal
from modeling_gru_seq2seq.training import GruSeq2SeqTrainer
original = GruSeq2SeqTrainer._save_checkpoint
def save_then_die(self, *args, **kwargs):
    original(self, *args, **kwargs)
    os.kill(os.getpid(), signal.SIGKILL)
GruSeq2SeqTrainer._save_checkpoint = save_then_die
"""

KILL_DURING_SECOND_CHECKPOINT = """
import os, signal
from transformers import Trainer
original = Trainer._save_rng_state
def die_on_second_save(self, output_dir):
    if self.state.global_step > 4:  # model and optimizer of checkpoint 8 are written: die mid-save
        os.kill(os.getpid(), signal.SIGKILL)
    original(self, output_dir)
Trainer._save_rng_state = die_on_second_save
"""


def logged_losses(output_dir):
    state = json.loads((output_dir / "trainer_state.json").read_text())
    return state["global_step"], {entry["step"]: entry["loss"] for entry in state["log_history"] if "loss" in entry}


@pytest.mark.slow
def test_resume_after_sigkill_matches_an_uninterrupted_run(pairs_file, tmp_path):
    reference = tmp_path / "reference"
    assert run_script(*resume_args(pairs_file, reference)).returncode == 0
    final_step, reference_losses = logged_losses(reference)
    assert final_step == 12

    for name, prelude, complete_checkpoint in (
        ("after", KILL_AFTER_FIRST_CHECKPOINT, 4),
        ("during", KILL_DURING_SECOND_CHECKPOINT, 4),
    ):
        output_dir = tmp_path / name
        killed = run_script(*resume_args(pairs_file, output_dir), prelude=prelude)
        assert killed.returncode == -9
        checkpoints = sorted(p.name for p in output_dir.iterdir() if p.name.startswith("checkpoint-"))
        assert checkpoints == [f"checkpoint-{complete_checkpoint}"]  # a half-written checkpoint never shows
        resumed = run_script(*resume_args(pairs_file, output_dir))
        assert resumed.returncode == 0, resumed.stderr[-3000:]
        assert f"Resuming from {output_dir / f'checkpoint-{complete_checkpoint}'}" in resumed.stdout
        step, losses = logged_losses(output_dir)
        assert step == final_step
        later = {s: loss for s, loss in reference_losses.items() if s > complete_checkpoint}
        assert {s: losses[s] for s in later} == pytest.approx(later, rel=1e-5)  # same data, same coin flips


KILL_DURING_FINAL_SAVE = """
import os, signal
from safetensors import torch as safetensors_torch
original = safetensors_torch.save_file
def die_in_final_save(tensors, filename, *args, **kwargs):
    if ".model-staging" in filename:
        original(tensors, filename, *args, **kwargs)
        os.kill(os.getpid(), signal.SIGKILL)
    return original(tensors, filename, *args, **kwargs)
safetensors_torch.save_file = die_in_final_save
"""


@pytest.mark.slow
def test_sigkill_during_final_save_never_leaves_a_loadable_half_model(pairs_file, tmp_path):
    output_dir = tmp_path / "final"
    killed = run_script(*resume_args(pairs_file, output_dir), prelude=KILL_DURING_FINAL_SAVE)
    assert killed.returncode == -9
    assert not (output_dir / "config.json").exists() and (output_dir / "checkpoint-12").is_dir()
    with pytest.raises((OSError, ValueError), match="config.json"):
        AutoModelForSeq2SeqLM.from_pretrained(output_dir)
    resumed = run_script(*resume_args(pairs_file, output_dir))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert not (output_dir / ".model-staging").exists()
    reloaded = AutoModelForSeq2SeqLM.from_pretrained(output_dir)
    assert reloaded.config.custom_pipelines and (output_dir / "model.safetensors").is_file()


@pytest.mark.slow
def test_ctrl_c_saves_a_checkpoint_and_the_rerun_resumes(pairs_file, tmp_path):
    output_dir = tmp_path / "interrupted"
    args = resume_args(pairs_file, output_dir)
    args[args.index("--max_steps") + 1] = "400"
    code = f"import runpy, sys\nsys.argv = {[SCRIPT, *args]!r}\nrunpy.run_path(sys.argv[0], run_name='__main__')"
    process = subprocess.Popen(
        [sys.executable, "-u", "-c", code], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    for line in process.stdout:  # wait until training is under way
        if "'loss'" in line:
            process.send_signal(signal.SIGINT)
            break
    output = process.stdout.read()
    assert process.wait(timeout=120) == 128 + signal.SIGINT
    assert "Interrupted at step" in output and "rerun the same command to resume" in output
    step = json.loads((output_dir / "trainer_state.json").read_text())["global_step"]
    assert (
        0 < step < 400
        and (output_dir / f"checkpoint-{step}").is_dir()
        and (output_dir / "model.safetensors").is_file()
    )
    args[args.index("--max_steps") + 1] = str(step + 2)
    resumed = run_script(*args)
    assert resumed.returncode == 0 and f"Resuming from {output_dir / f'checkpoint-{step}'}" in resumed.stdout
    assert json.loads((output_dir / "trainer_state.json").read_text())["global_step"] == step + 2


def test_one_line_errors_for_bad_input(pairs_file, tmp_path, capsys):
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "notes.txt").write_text("keep me")
    assert run_translation.main(["--train_file", pairs_file, "--output_dir", str(occupied)]) == 2
    error = capsys.readouterr().err.strip()
    assert "already exists" in error and "--overwrite_output_dir" in error and len(error.splitlines()) == 1
    assert (occupied / "notes.txt").read_text() == "keep me" and len(list(occupied.iterdir())) == 1

    assert run_translation.main(["--train_file", str(tmp_path / "nope.txt"), "--output_dir", str(tmp_path / "a")]) == 2
    assert capsys.readouterr().err.strip() == f"error: {tmp_path / 'nope.txt'}: no such file"

    assert run_translation.main(["--model_name_or_path", str(occupied), "--output_dir", str(tmp_path / "b")]) == 2
    assert capsys.readouterr().err.strip().endswith("not a saved model (no config.json in it)")

    for conflict, message in (
        (["--dataset_name", "x", "--train_file", pairs_file], "--dataset_name and --train_file"),
        (["--overwrite_output_dir", "--resume_from_checkpoint", str(occupied)], "--overwrite_output_dir starts over"),
    ):
        assert run_translation.main([*conflict, "--output_dir", str(tmp_path / "d")]) == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "d").exists()

    with pytest.raises(SystemExit) as exit_info:
        run_translation.main(["--attention", "cosine", "--output_dir", str(tmp_path / "c")])
    assert exit_info.value.code == 2 and "invalid choice: 'cosine'" in capsys.readouterr().err


def test_no_data_flag_offline_says_what_to_pass(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # no data/eng-fra.txt here, and the Hub is offline under the tests
    assert run_translation.main(["--output_dir", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err.strip()
    assert "download.pytorch.org" in error and "--train_file path/to/eng-fra.txt" in error
    assert len(error.splitlines()) == 1


@pytest.mark.slow
def test_zero_fractions_with_given_files_train_on_every_kept_pair(pairs_file, tmp_path):
    held_out = tmp_path / "held_out.txt"
    held_out.write_text("I am cold.\tJe suis froid.\nHe is here.\tIl est là.\n", encoding="utf-8")
    output_dir = tmp_path / "out"
    result = run_script(
        "--train_file",
        pairs_file,
        "--validation_file",
        str(held_out),
        "--test_file",
        str(held_out),
        "--validation_fraction",
        "0",
        "--test_fraction",
        "0",
        "--output_dir",
        str(output_dir),
        *TINY,
        "--max_steps",
        "1",
        "--eval_strategy",
        "no",
        "--num_attention_plots",
        "0",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    kept = prepare_tatoeba(pairs_file, PrepareArguments(min_count=1)).stats["pairs_kept"]
    assert json.loads((output_dir / "train_results.json").read_text())["train_samples"] == kept
    assert json.loads((output_dir / "predict_results.json").read_text())["predict_samples"] == 2


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


# ---------------------------------------------------------------- finished and resumed runs


RUN = [
    "--max_train_samples",
    "2000",
    "--hidden_size",
    "16",
    "--report_to",
    "none",
    "--eval_strategy",
    "no",
    "--save_strategy",
    "steps",
    "--save_steps",
    "3",
    "--max_eval_samples",
    "10",
    "--max_predict_samples",
    "10",
    "--num_attention_plots",
    "0",
    "--min_count",
    "1",
    "--disable_tqdm",
    "true",
]


def digest(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def global_step(output_dir) -> int:
    return json.loads((output_dir / "trainer_state.json").read_text())["global_step"]


@pytest.fixture(scope="module")
def finished_run(pairs_file, tmp_path_factory):
    output_dir = tmp_path_factory.mktemp("finished") / "run"
    args = ["--train_file", pairs_file, "--output_dir", str(output_dir), "--max_steps", "3", *RUN]
    assert run_translation.main(args) == 0
    return output_dir, args


def test_rerun_of_a_finished_run_trains_nothing_and_keeps_the_model(finished_run, tmp_path, capsys):
    output_dir, args = finished_run
    copy = tmp_path / "run"
    shutil.copytree(output_dir, copy)
    args = [str(copy) if arg == str(output_dir) else arg for arg in args]
    weights = digest(copy / "model.safetensors")
    capsys.readouterr()
    assert run_translation.main(args) == 0
    assert "Training already finished (3 of 3 steps" in capsys.readouterr().out
    assert global_step(copy) == 3 and digest(copy / "model.safetensors") == weights
    assert (copy / "predict_results.json").is_file()  # evaluate and predict still run
    longer = [("5" if previous == "--max_steps" else arg) for previous, arg in zip(["", *args], args, strict=False)]
    assert run_translation.main(longer) == 0  # a larger --max_steps continues
    assert global_step(copy) == 5


@pytest.mark.parametrize(
    "change, message",
    [
        (("--hidden_size", "32"), "was trained with --hidden_size 16, this run has 32"),
        (("--min_count", "2"), "was trained with --min_count 1, this run has 2"),
    ],
)
def test_resume_with_other_settings_stops_naming_the_argument(finished_run, tmp_path, capsys, change, message):
    output_dir, args = finished_run
    copy = tmp_path / "run"
    shutil.copytree(output_dir, copy)
    args = [str(copy) if arg == str(output_dir) else arg for arg in args]
    flag, value = change
    args[args.index(flag) + 1] = value
    assert run_translation.main(args) == 2
    error = capsys.readouterr().err.strip()
    assert message in error and len(error.splitlines()) == 1


@pytest.mark.parametrize(
    "added, message",
    [
        (("--seed", "7"), "was trained with --seed 42, this run has 7"),
        (("--per_device_train_batch_size", "7"), "was trained with --per_device_train_batch_size"),
        (("--source_embeddings", "VECTORS"), "was trained with --source_embeddings None, this run has"),
        (("--gradient_accumulation_steps", "2"), "was trained with --gradient_accumulation_steps 1, this run has 2"),
        (("--train_sampling_strategy", "group_by_length"), "was trained with --train_sampling_strategy"),
        (("--learning_rate", "2e-3"), None),  # the resume rule's list of what may change
        (("--max_train_minutes", "30", "--bf16", "false", "--save_total_limit", "1", "--logging_steps", "1"), None),
    ],
)
def test_the_resume_rule(finished_run, tmp_path, capsys, added, message):
    """A rerun (or resume) may change only the flags of `RESUME_MAY_CHANGE`; any other flag, also one the first
    run left at its default, is refused in one line naming it, before anything is trained or loaded (today
    `--source_embeddings` added on resume was loaded and then overwritten by the checkpoint)."""
    output_dir, args = finished_run
    copy = tmp_path / "run"
    shutil.copytree(output_dir, copy)
    vectors = tmp_path / "vectors.vec"
    vectors.write_text("je " + " ".join(["0.1"] * 16) + "\n", encoding="utf-8")
    args = [str(copy) if arg == str(output_dir) else arg for arg in args]
    args += ["--max_steps", "5", *(str(vectors) if value == "VECTORS" else value for value in added)]
    capsys.readouterr()
    if message is None:
        assert run_translation.main(args) == 0 and global_step(copy) == 5
        return
    assert run_translation.main(args) == 2
    error = capsys.readouterr().err.strip()
    assert message in error and len(error.splitlines()) == 1
    assert global_step(copy) == 3


def test_resume_on_a_rewritten_training_file_stops(pairs_file, tmp_path, capsys):
    train_file = tmp_path / "pairs.txt"
    shutil.copy(pairs_file, train_file)
    args = ["--train_file", str(train_file), "--output_dir", str(tmp_path / "run"), "--max_steps", "3", *RUN]
    assert run_translation.main(args) == 0
    train_file.write_text("I am glad.\tJe suis ravi.\n" + train_file.read_text(encoding="utf-8"), encoding="utf-8")
    capsys.readouterr()
    assert run_translation.main(args) == 2  # the same path, other bytes
    assert "was trained with the training file's content (SHA-256)" in capsys.readouterr().err


# ---------------------------------------------------------------- the output directory


def test_output_dir_that_is_a_file_or_under_one(tmp_path, capsys):
    a_file = tmp_path / "notes.txt"
    a_file.write_text("mine")
    for output_dir, reason in ((a_file, "it is a file"), (a_file / "run", "Not a directory")):
        args = ["--train_file", str(tmp_path / "never-read.txt"), "--output_dir", str(output_dir)]
        assert run_translation.main(args) == 2
        error = one_line_error(capsys)
        assert error.startswith(f"error: --output_dir: got '{output_dir}', want a directory") and reason in error
    assert a_file.read_text() == "mine"


def test_checkpoint_named_files_and_empty_checkpoint_folders(pairs_file, tmp_path, capsys):
    output_dir = tmp_path / "out"
    output_dir.mkdir()
    (output_dir / "checkpoint-notes.txt").write_text("mine")
    args = ["--train_file", str(tmp_path / "never-read.txt"), "--output_dir", str(output_dir)]
    assert run_translation.main([*args, "--overwrite_output_dir"]) == 2  # got as far as the data
    assert one_line_error(capsys).endswith("never-read.txt: no such file")
    assert (output_dir / "checkpoint-notes.txt").read_text() == "mine"
    (output_dir / "checkpoint-3").mkdir()
    assert run_translation.main(args) == 2
    error = one_line_error(capsys)
    assert error == (
        f"error: {output_dir / 'checkpoint-3'}: not a complete checkpoint (no trainer_state.json in it): "
        "remove it to resume from the one before, or pass --overwrite_output_dir to start over"
    )


def test_overwrite_keeps_a_users_checkpoint_folders_and_readme(finished_run, pairs_file, tmp_path, capsys):
    output_dir, args = finished_run
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    (mixed / "checkpoint-notes").mkdir()
    (mixed / "checkpoint-notes" / "todo.txt").write_text("mine")
    (mixed / "README.md").write_text("# My project\n")
    shutil.copytree(output_dir / "checkpoint-3", mixed / "checkpoint-3")  # ours: it holds trainer_state.json
    args = [str(mixed) if arg == str(output_dir) else arg for arg in args]
    assert run_translation.main([*args, "--overwrite_output_dir"]) == 0
    assert (mixed / "checkpoint-notes" / "todo.txt").read_text() == "mine"
    assert (mixed / "README.md").read_text() == "# My project\n"
    assert "gru-seq2seq model card" in (mixed / "MODEL_CARD.md").read_text()
    assert f"the model card is {mixed / 'MODEL_CARD.md'}" in capsys.readouterr().out


@pytest.mark.parametrize("code", [errno.EROFS, errno.ENOSPC])
def test_an_unwritable_output_dir_is_found_before_any_data_is_read(tmp_path, monkeypatch, capsys, code):
    real_write = os.write

    def failing_write(descriptor, data):
        if "_write_probe" in os.readlink(f"/proc/self/fd/{descriptor}"):
            raise OSError(code, os.strerror(code))
        return real_write(descriptor, data)

    monkeypatch.setattr(os, "write", failing_write)
    args = ["--train_file", str(tmp_path / "never-read.txt"), "--output_dir", str(tmp_path / "out")]
    assert run_translation.main(args) == 2
    error = capsys.readouterr().err.strip()
    assert error == f"error: --output_dir {tmp_path / 'out'}: cannot write there ({os.strerror(code)})"


def test_no_room_for_a_checkpoint_stops_before_training(pairs_file, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**9, 10**9 - 1000, 1000))
    args = ["--train_file", pairs_file, "--output_dir", str(tmp_path / "out"), "--max_steps", "3", *RUN]
    assert run_translation.main(args) == 2
    assert "0.0 MB free, but a checkpoint of this model needs about" in capsys.readouterr().err
    assert not list((tmp_path / "out").glob("checkpoint-*"))


def test_a_failed_save_names_the_last_complete_checkpoint(pairs_file, tmp_path, monkeypatch, capsys):
    save_model = GruSeq2SeqTrainer.save_model

    def full_disk_at_the_final_save(self, output_dir=None, _internal_call=False):
        if output_dir is None:  # the model's save after training; checkpoints name their folder
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp_path / "out" / "model.safetensors"))
        return save_model(self, output_dir, _internal_call)

    monkeypatch.setattr(GruSeq2SeqTrainer, "save_model", full_disk_at_the_final_save)
    args = ["--train_file", pairs_file, "--output_dir", str(tmp_path / "out"), "--max_steps", "3", *RUN]
    assert run_translation.main(args) == 1
    error = capsys.readouterr().err.strip().splitlines()[-1]  # after the data preparation's progress bars
    assert error.startswith("error: the disk is full (saving failed: [Errno 28] No space left on device")
    assert f"the last complete checkpoint is {tmp_path / 'out' / 'checkpoint-3'}: make room" in error
