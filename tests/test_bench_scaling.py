"""benchmarks/bench_scaling.py, the tutorial's studies, on a tiny model and budget: each study runs and writes its
rows (its measurements are taken by hand on an idle machine, see benchmarks/RESULTS.md)."""

import importlib.util
import json
import pathlib
import shlex
import subprocess
import sys

import pytest

SCRIPT = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "bench_scaling.py"
spec = importlib.util.spec_from_file_location("bench_scaling", SCRIPT)
bench_scaling = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench_scaling)
TINY = "--hidden_size 16 --num_layers 1 --min_count 1 --report_to none"


def test_help_documents_the_grid_and_the_budget_flags():
    help_text = subprocess.run(
        [sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True, check=True
    ).stdout
    for flag in ("--study", "--rows", "--minutes", "--steps", "--threads", "--extra"):
        assert flag in help_text
    for name, flags in bench_scaling.GRID.items():
        assert f"{name!r}: {' '.join(flags) or '(the defaults)'}" in help_text
    open_help = subprocess.run(
        [sys.executable, str(SCRIPT), "--study", "open", "--help"], capture_output=True, text=True, check=True
    ).stdout
    assert len(bench_scaling.OPEN_ROWS) >= 10
    for name, flags in bench_scaling.OPEN_ROWS.items():
        assert f"{name!r}: {' '.join(flags)}" in open_help
    refused = subprocess.run(
        [sys.executable, str(SCRIPT), "--study", "open", "--rows", "hidden 256"], capture_output=True, text=True
    )
    assert refused.returncode == 2 and "--rows: --study open has rows: 'word level'" in refused.stderr


@pytest.mark.slow
def test_the_open_study_scores_each_row_on_one_uniform_test(pairs_file, tmp_path, capsys):
    """Two rows (a word-level one and a subword one) on the tiny file: each trains, is scored greedy and with 5
    beams on the same uniform test (sentences longer than the training filter's 50 words would be in it; here
    the file's own, of every length), with BLEU by source length."""
    output = tmp_path / "rows.json"
    rows = ["word level", "bpe 4k"]
    flags = ["--study", "open", "--rows", *rows, "--minutes", "0.02", "--train_file", pairs_file]
    bench_scaling.main([*flags, f"--extra={TINY}", "--threads", "1", "--output", str(output)])
    recorded = json.loads(output.read_text())
    assert [row["row"] for row in recorded["rows"]] == rows and recorded["study"] == "open"
    for row in recorded["rows"]:
        assert row["test_pairs"] == recorded["rows"][0]["test_pairs"] > 75  # one test, carved before the filter
        for key in ("bleu", "chrf", "bleu_normalized", "beam5_bleu", "beam5_bleu_normalized", "bleu_len_1_5"):
            assert 0 <= row[key] <= 100, key
    printed = capsys.readouterr().out
    assert "| BLEU normalized |" in printed and all(f"| {row} |" in printed for row in rows)


@pytest.mark.slow
@pytest.mark.parametrize(
    "study, flags, rows",
    [
        ("scaling", ["--rows", "hidden 256", "--minutes", "0.02"], ["hidden 256"]),
        (
            "pretraining",
            ["--steps", "4"],
            ["no pretraining", "autoencoder, encoder frozen", "autoencoder, encoder trained"],
        ),
        (
            "unknown",
            ["--steps", "4"],
            [
                f"--unknown_pairs {pairs}{replace}"
                for pairs in ("drop", "keep")
                for replace in ("", " --replace_unknown")
            ],
        ),
    ],
)
def test_each_study_runs_and_records_its_rows(pairs_file, tmp_path, capsys, study, flags, rows):
    output = tmp_path / "rows.json"
    extra = TINY.replace("--hidden_size 16", "") if study == "scaling" else TINY  # the row sets the width
    bench_scaling.main(
        [
            "--study",
            study,
            *flags,
            "--train_file",
            pairs_file,
            f"--extra={extra}",
            "--threads",
            "1",
            "--output",
            str(output),
        ]
    )
    recorded = json.loads(output.read_text())
    assert [row["row"] for row in recorded["rows"]] == rows
    assert recorded["machine"] and recorded["study"] == study
    for row in recorded["rows"]:
        assert row["steps"] >= 1 and 0 <= row["bleu"] <= 100 and row["test_pairs"] == 75 and row["peak_memory_mib"] > 0
    if study == "scaling":
        assert 0 <= recorded["rows"][0]["beam5_bleu"] <= 100
    printed = capsys.readouterr().out
    assert all(f"| {row} |" in printed for row in rows)


@pytest.mark.slow
def test_a_scaling_row_that_diverges_is_recorded_and_the_grid_goes_on(pairs_file, tmp_path):
    output = tmp_path / "rows.json"
    extra = f"{TINY} --learning_rate 1e6"
    flags = ["--rows", "1 layer", "hidden 256", "--minutes", "0.02", "--train_file", pairs_file, f"--extra={extra}"]
    bench_scaling.main([*flags, "--threads", "1", "--output", str(output)])
    rows = json.loads(output.read_text())["rows"]
    assert [row["row"] for row in rows] == ["1 layer", "hidden 256"]
    assert all(row["failed"].startswith("error: training diverged at step") for row in rows)


def readme_training_commands() -> list[dict[str, tuple[str, ...]]]:
    """Each `python run_translation.py` command of the README's bash blocks, as {flag: its values}."""
    text = (SCRIPT.parents[1] / "README.md").read_text(encoding="utf-8")
    commands = []
    for block in text.split("```bash\n")[1:]:
        for command in block.split("```", 1)[0].replace("\\\n", " ").splitlines():
            words = shlex.split(command.split(" && ")[-1])
            if words[:2] == ["python", "run_translation.py"]:
                commands.append(flag_values(words[2:]))
    return commands


def flag_values(words: list[str]) -> dict[str, tuple[str, ...]]:
    """`["--a", "1", "--b"]` -> `{"--a": ("1",), "--b": ()}`; a repeated flag keeps its last values, as argparse."""
    flags: dict[str, tuple[str, ...]] = {}
    for word in words:
        if word.startswith("--"):
            flag = word
            flags[flag] = ()
        else:
            flags[flag] += (word,)
    return flags


def test_the_readmes_hour_recipe_is_the_best_row_confirmed_at_60_minutes():
    """The README's general-translator recipe is, flag for flag, the open-study row with the best greedy BLEU of
    those confirmed with a 60-minute run in bench_open.json, trained as the study trains it, and the README gives
    that run's BLEU. If that row uses `--bf16`, its fp32 form (the same flags without `--bf16`) is confirmed at 60
    minutes too, and the README gives its command and BLEU."""
    recorded = json.loads((SCRIPT.parent / "bench_open.json").read_text())
    confirmed = {row["row"]: row for row in recorded["rows"] if row["minutes"] == 60}
    assert confirmed, "no 60-minute confirmation in bench_open.json"
    best = max(confirmed, key=lambda name: confirmed[name]["bleu"])
    recipes = [best]
    if "--bf16" in bench_scaling.OPEN_ROWS[best]:
        fp32 = [flag for flag in bench_scaling.OPEN_ROWS[best] if flag != "--bf16"]
        fp32_rows = [name for name in confirmed if bench_scaling.OPEN_ROWS[name] == fp32]
        assert fp32_rows, f"the best row {best!r} uses --bf16 and its fp32 form has no 60-minute run"
        recipes += fp32_rows[:1]
    commands = readme_training_commands()
    readme = (SCRIPT.parents[1] / "README.md").read_text(encoding="utf-8")
    outside_training = {
        "--train_file",
        "--output_dir",
        "--num_train_epochs",
        "--eval_strategy",
        "--save_strategy",
        "--num_beams",
    }
    for name in recipes:
        wanted = flag_values([*bench_scaling.OPEN_BASE, *bench_scaling.OPEN_ROWS[name], *bench_scaling.OPEN_TEST])
        wanted["--max_train_minutes"] = ("60",)
        matching = [
            command
            for command in commands
            if {flag: values for flag, values in command.items() if flag not in outside_training} == wanted
        ]
        assert matching, f"the README has no command training the row {name!r} for 60 minutes"
        assert matching[0]["--train_file"] == ("../shared/data/eng-fra.txt",)
        assert f"BLEU {confirmed[name]['bleu']:.1f} greedy" in readme, name
