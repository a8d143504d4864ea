"""What a transformers user meets in the first hour: the README's two commands in one clone, plots by default,
a time-limited run (its line, its bar, one final evaluation, the C++ build outside the budget), no pin-memory
warnings on the CPU, the model card naming the folder as the user gave it, and a mistyped local path that
fails at once instead of asking the Hub."""

import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from runs import SCRIPT

import run_translation
from modeling_gru_seq2seq import GruSeq2SeqConfig, training
from modeling_gru_seq2seq.loading import ModelLoadError, load_model_and_tokenizer, local_path
from modeling_gru_seq2seq.model_card import write_model_card
from modeling_gru_seq2seq.plotting import plot_loss
from modeling_gru_seq2seq.training import TimeBudgetProgressCallback, TimeLimitCallback
from modeling_gru_seq2seq.translate import main as translate_main

REPOSITORY = os.path.dirname(SCRIPT)


def readme_commands() -> tuple[str, str]:
    """The two commands at the top of the README."""
    with open(os.path.join(REPOSITORY, "README.md"), encoding="utf-8") as handle:
        block = handle.read().split("```bash\n", 1)[1].split("```", 1)[0]
    first, second = block.strip().splitlines()[:2]
    return first, second


@pytest.mark.slow
def test_readme_command_1_then_command_2s_checks_in_one_clone(tmp_path, pairs_file):
    """In a `git clone`: command 1 (tiny) writes `runs/fr-en` with plots, a card naming `runs/fr-en` and no
    pin-memory warning; then command 2's checks (ruff, the test collection) see nothing of it."""
    if shutil.which("git") is None or not os.path.isdir(os.path.join(REPOSITORY, ".git")):
        pytest.skip("needs git and the repository's history")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", REPOSITORY, str(clone)], check=True, timeout=120)
    data = tmp_path / "shared" / "data" / "eng-fra.txt"  # the command's ../shared/data/eng-fra.txt
    data.parent.mkdir(parents=True)
    shutil.copy(pairs_file, data)
    first, second = readme_commands()
    train = first.split(" && ", 1)[1]  # (the package is installed already)
    assert train.startswith("python run_translation.py --train_file ../shared/data/eng-fra.txt --output_dir runs/")
    tiny = "--max_train_samples 300 --max_train_minutes 0.2 --hidden_size 32 --num_layers 1 --report_to none"
    command = train.replace("python ", f"{sys.executable} ", 1) + " " + tiny
    result = subprocess.run(command, shell=True, cwd=clone, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "pin_memory" not in result.stdout + result.stderr
    run = clone / "runs" / "fr-en"
    assert (run / "loss.png").is_file() and list(run.glob("attention_*.png"))
    assert 'model="runs/fr-en"' in (run / "README.md").read_text(encoding="utf-8")
    checks = second.split(" && ", 1)[1]
    assert checks == "ruff check . && ruff format --check . && pytest"
    for check in (["ruff", "check", "."], ["ruff", "format", "--check", "."], ["pytest", "--collect-only", "-q"]):
        result = subprocess.run([sys.executable, "-m", *check], cwd=clone, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, f"{' '.join(check)}:\n{result.stdout[-3000:]}{result.stderr[-2000:]}"


def test_matplotlib_is_a_default_requirement():
    requirements = importlib.metadata.requires("gru-seq2seq")
    assert any(re.fullmatch(r"matplotlib\b[^;]*", requirement) for requirement in requirements), requirements


def test_a_single_logged_loss_still_draws_a_visible_point(tmp_path, monkeypatch):
    import matplotlib.figure

    drawn = []
    save = matplotlib.figure.Figure.savefig
    monkeypatch.setattr(
        matplotlib.figure.Figure, "savefig", lambda figure, *a, **k: (drawn.append(figure), save(figure, *a, **k))
    )
    plot_loss([{"step": 5, "loss": 2.0}], tmp_path / "loss.png")
    [line] = drawn[0].axes[0].get_lines()
    assert line.get_marker() not in (None, "None", "", " ") and len(line.get_xdata()) == 1
    assert (tmp_path / "loss.png").is_file()


def test_the_card_names_the_folder_as_the_user_gave_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = GruSeq2SeqConfig(source_vocab_size=10, target_vocab_size=10)
    for output_dir, named in (
        ("runs/fr-en", "runs/fr-en"),
        ("./runs/fr-en/", "runs/fr-en"),
        (str(tmp_path / "absolute" / "fr-en"), "fr-en"),
    ):
        os.makedirs(output_dir, exist_ok=True)
        card = Path(write_model_card(output_dir, config, ["fr", "en"], "")).read_text()
        assert f'pipeline("translation", model="{named}"' in card, output_dir
        assert str(tmp_path) not in card
    card = Path(write_model_card("runs/fr-en", config, ["fr", "en"], "", repo_id="someone/gru-fr-en")).read_text()
    assert 'model="someone/gru-fr-en"' in card


@pytest.mark.parametrize(
    "name, local",
    [
        ("/no/such/model", True),
        ("./fr-en", True),
        ("../fr-en", True),
        ("~/fr-en", True),
        ("runs/fr-enn", True),  # `runs/` is a folder here
        ("someone/fr-en", False),  # a Hub id
        ("fr-en", False),
    ],
)
def test_a_mistyped_local_path_fails_at_once_without_asking_the_hub(tmp_path, monkeypatch, capsys, name, local):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs" / "fr-en").mkdir(parents=True)
    assert local_path(name) is local
    if not local:
        return

    def no_hub(*args, **kwargs):
        raise AssertionError("the Hub was asked")

    import transformers.utils.hub

    monkeypatch.setattr(transformers.utils.hub, "cached_files", no_hub)
    monkeypatch.setattr(transformers.utils.hub, "cached_file", no_hub)
    with pytest.raises(ModelLoadError, match=re.escape(f"{name}: no such model directory (a local path")) as error:
        load_model_and_tokenizer(name)
    if name == "runs/fr-enn":
        assert str(error.value).endswith("runs holds fr-en")
    assert translate_main([name, "Je suis content."]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "no such model directory (a local path" in error


# ---------------------------------------------------------------- a time-limited run


def test_a_time_limited_run_says_where_it_stopped_and_evaluates_the_final_model_once(pairs_file, tmp_path, capsys):
    output_dir = tmp_path / "run"
    flags = ["--train_file", pairs_file, "--output_dir", str(output_dir), "--hidden_size", "16", "--num_layers", "1"]
    flags += ["--min_count", "1", "--per_device_train_batch_size", "4", "--num_train_epochs", "1000"]
    flags += ["--eval_strategy", "epoch", "--save_strategy", "no", "--max_train_minutes", "0.05"]
    flags += ["--num_attention_plots", "0", "--max_eval_samples", "8", "--report_to", "none", "--do_predict", "false"]
    assert run_translation.main(flags) == 0
    out = capsys.readouterr().out
    [(step, minutes)] = re.findall(r"time limit reached at step (\d+) \((\d+\.\d+) minutes\)", out)
    assert float(minutes) >= 0.05
    history = json.loads((output_dir / "trainer_state.json").read_text())["log_history"]
    assert history[-1]["step"] == int(step)
    evaluated = [entry["step"] for entry in history if "eval_loss" in entry]
    assert evaluated.count(int(step)) <= 1  # the cut is not evaluated twice over (there, then by do_eval)
    eval_results = json.loads((output_dir / "eval_results.json").read_text())
    assert "eval_bleu" in eval_results


def test_the_compiled_loops_are_ready_before_the_clock_starts(pairs_file, tmp_path, monkeypatch):
    events = []
    built = training.build_gru_loops
    monkeypatch.setattr(run_translation, "build_gru_loops", lambda model: (events.append("build"), built(model)))
    begin = TimeLimitCallback.on_train_begin
    monkeypatch.setattr(
        TimeLimitCallback, "on_train_begin", lambda self, *a, **k: events.append("clock") or begin(self, *a, **k)
    )
    chosen = []
    monkeypatch.setattr(training, "choice", lambda *args, **kwargs: chosen.append((args, kwargs)))
    flags = ["--train_file", pairs_file, "--output_dir", str(tmp_path / "run"), "--hidden_size", "16"]
    flags += ["--num_layers", "1", "--min_count", "1", "--max_steps", "2", "--max_train_minutes", "5"]
    flags += ["--eval_strategy", "no", "--num_attention_plots", "0", "--do_predict", "false", "--report_to", "none"]
    flags += ["--max_eval_samples", "4", "--disable_tqdm", "true"]
    assert run_translation.main(flags) == 0
    assert events == ["build", "clock"]
    assert chosen == [((16,), {"rows": 1, "training": True})]


def test_the_progress_bar_follows_the_time_budget(monkeypatch):
    """10 steps in 10 s of a 60 s budget: the bar counts to about 60 steps (not to `max_steps`), and ends full
    at the step where the limit stopped training."""
    now = [100.0]
    monkeypatch.setattr(training.time, "monotonic", lambda: now[0])
    args = SimpleNamespace()
    state = SimpleNamespace(is_world_process_zero=True, max_steps=10_000, global_step=0)
    control = SimpleNamespace(should_training_stop=False)
    progress = TimeBudgetProgressCallback(minutes=1)
    progress.on_train_begin(args, state, control)
    for _ in range(10):
        now[0] += 1.0
        state.global_step += 1
        progress.on_step_end(args, state, control)
    assert 55 <= progress.training_bar.total <= 65
    now[0] += 50.0
    state.global_step = 61
    control.should_training_stop = True
    progress.on_step_end(args, state, control)
    assert progress.training_bar.total == progress.training_bar.n == 61
    progress.on_train_end(args, state, control)
