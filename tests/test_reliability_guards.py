"""No silent wrong result, no hang, no lost work: finished and resumed runs, data files rewritten in place and
header lines, weights that do not fit their config, diverging training, padding on the wrong side, CR line
ends, the compiled loop's build lock and source, and the output directory (users' files, writability, room,
two launches)."""

import errno
import hashlib
import json
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import warnings

import pytest
import torch
from datasets import Dataset
from transformers import Seq2SeqTrainingArguments, default_data_collator

import run_translation
from data_scripts.prepare_tatoeba import PrepareArguments, read_pairs
from modeling_gru_seq2seq import GruSeq2SeqConfig, GruSeq2SeqForConditionalGeneration, gru_kernels
from modeling_gru_seq2seq.loading import ModelLoadError, load_model_and_tokenizer
from modeling_gru_seq2seq.training import GruSeq2SeqTrainer, TrainingDivergedError
from modeling_gru_seq2seq.translate import read_lines

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


# ---------------------------------------------------------------- runs


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


def test_resume_on_a_rewritten_training_file_stops(pairs_file, tmp_path, capsys):
    train_file = tmp_path / "pairs.txt"
    shutil.copy(pairs_file, train_file)
    args = ["--train_file", str(train_file), "--output_dir", str(tmp_path / "run"), "--max_steps", "3", *RUN]
    assert run_translation.main(args) == 0
    train_file.write_text("I am glad.\tJe suis ravi.\n" + train_file.read_text(encoding="utf-8"), encoding="utf-8")
    capsys.readouterr()
    assert run_translation.main(args) == 2  # the same path, other bytes
    assert "was trained with the training file's content (SHA-256)" in capsys.readouterr().err


def test_data_file_rewritten_with_its_old_mtime_is_read_anew(pairs_file, tmp_path):
    lines = pathlib.Path(pairs_file).read_text(encoding="utf-8").splitlines(keepends=True)
    path = tmp_path / "pairs.txt"
    first = []
    for part in (lines[:300], lines[1000:1300]):
        path.write_text("".join(part), encoding="utf-8")
        os.utime(path, (1_700_000_000, 1_700_000_000))  # `cp -p`, `rsync -a`, untar keep mtimes
        pairs = read_pairs(str(path), PrepareArguments())
        first.append(pairs["en"][0])
    assert first[0] != first[1]


def test_a_header_line_is_skipped_with_a_note(tmp_path, capsys):
    path = tmp_path / "pairs.txt"
    path.write_text("English\tFrench\nGo.\tVa !\nHi.\tSalut !\n", encoding="utf-8")
    pairs = read_pairs(str(path), PrepareArguments())
    assert pairs["en"] == ["go .", "hi ."] and "Skipped line 1, a header" in capsys.readouterr().err
    path.write_text("en\tfr\nGo.\tVa !\n", encoding="utf-8")
    assert read_pairs(str(path), PrepareArguments())["en"] == ["go ."]
    path.write_text("Go.\tVa !\nEnglish\tFrench\n", encoding="utf-8")  # line 1 only
    assert len(read_pairs(str(path), PrepareArguments())) == 2


# ---------------------------------------------------------------- weights


def saved_model(tmp_path, **config):
    torch.manual_seed(0)
    model = GruSeq2SeqForConditionalGeneration(
        GruSeq2SeqConfig(source_vocab_size=9, target_vocab_size=11, hidden_size=8, num_layers=2, **config)
    )
    model.save_pretrained(tmp_path)
    return tmp_path


@pytest.mark.parametrize(
    "change, message",
    [
        ({"num_layers": 1}, "unexpected: decoder.gru.bias_hh_l1"),
        ({"num_layers": 3}, "missing: decoder.gru.bias_hh_l2"),
        ({"attention": "general"}, "missing: decoder.attention.query_projection.weight"),
        ({"hidden_size": 4}, "other shapes than the config's"),
        ({"decoder_type": "bahdanau"}, "the weights do not fit the config"),
    ],
)
def test_weights_that_do_not_fit_the_config_raise_one_line(tmp_path, change, message):
    directory = saved_model(tmp_path)
    config = json.loads((directory / "config.json").read_text())
    (directory / "config.json").write_text(json.dumps({**config, **change}))
    with pytest.raises(ValueError, match=message) as error:
        GruSeq2SeqForConditionalGeneration.from_pretrained(directory)
    assert "\n" not in str(error.value)
    assert GruSeq2SeqForConditionalGeneration.from_pretrained(directory, ignore_mismatched_sizes=True) is not None


def test_non_finite_weights_raise_and_loading_reports_the_file(tmp_path):
    from safetensors.torch import load_file, save_file

    directory = saved_model(tmp_path)
    weights = load_file(directory / "model.safetensors")
    weights["decoder.out.bias"][0] = float("nan")
    save_file(weights, directory / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(ValueError, match="non-finite weights .* in decoder.out.bias"):
        GruSeq2SeqForConditionalGeneration.from_pretrained(directory)


def test_loading_names_the_weights_file(finished_run, tmp_path):
    output_dir, _ = finished_run
    copy = tmp_path / "model"
    shutil.copytree(output_dir, copy)
    config = json.loads((copy / "config.json").read_text())
    (copy / "config.json").write_text(json.dumps({**config, "num_layers": 3}))
    with pytest.raises(ModelLoadError, match=r"model\.safetensors: the weights do not fit the config"):
        load_model_and_tokenizer(str(copy))


def test_diverging_training_stops_before_the_weights_turn_non_finite(tmp_path):
    torch.manual_seed(0)
    model = GruSeq2SeqForConditionalGeneration(
        GruSeq2SeqConfig(source_vocab_size=12, target_vocab_size=12, hidden_size=8, num_layers=1)
    )
    calls = []

    def poison(module, args, output):  # the 3rd training batch's loss is NaN
        calls.append(1)
        if len(calls) == 3:
            output.loss = output.loss * float("nan")
        return output

    model.register_forward_hook(poison)
    generator = torch.Generator().manual_seed(0)
    dataset = Dataset.from_dict(
        {
            "input_ids": torch.randint(3, 12, (64, 5), generator=generator).tolist(),
            "labels": torch.randint(3, 12, (64, 4), generator=generator).tolist(),
        }
    )
    args = Seq2SeqTrainingArguments(
        output_dir=str(tmp_path),
        max_steps=10,
        per_device_train_batch_size=4,
        save_strategy="steps",
        save_steps=2,
        report_to="none",
        use_cpu=True,
        disable_tqdm=True,
        remove_unused_columns=False,
    )
    trainer = GruSeq2SeqTrainer(model=model, args=args, train_dataset=dataset, data_collator=default_data_collator)
    with pytest.raises(TrainingDivergedError, match="diverged at step 3.*learning rate.*checkpoint-2"):
        trainer.train()
    assert all(torch.isfinite(parameter).all() for parameter in model.parameters())
    assert (tmp_path / "checkpoint-2").is_dir() and not (tmp_path / "checkpoint-4").exists()


def test_left_padding_or_gaps_in_the_mask_raise(tmp_path):
    model = GruSeq2SeqForConditionalGeneration(
        GruSeq2SeqConfig(source_vocab_size=9, target_vocab_size=11, hidden_size=8)
    )
    input_ids = torch.tensor([[0, 5, 6, 2], [4, 5, 6, 2]])
    for mask in ([[0, 1, 1, 1], [1, 1, 1, 1]], [[1, 0, 1, 1], [1, 1, 1, 1]]):
        with pytest.raises(ValueError, match="padding on the right"):
            model.generate(input_ids=input_ids, attention_mask=torch.tensor(mask), max_new_tokens=3)


def test_cr_only_line_ends_are_line_ends(tmp_path):
    path = tmp_path / "old-mac.txt"
    path.write_bytes(b"Je suis content.\rIl fait froid.\r\rNous sommes amis.\r")
    assert read_lines(str(path)) == ["Je suis content.", "Il fait froid.", "", "Nous sommes amis."]
    path.write_bytes(b"a\r\nb\nc")
    assert read_lines(str(path)) == ["a", "b", "c"]


# ---------------------------------------------------------------- the compiled loop's build


@pytest.fixture
def extensions_root(tmp_path):
    """An extensions folder holding a copy of the built library (so nothing is compiled again)."""
    assert gru_kernels.recurrence_ops() is not None
    root = tmp_path / "extensions"
    shutil.copytree(gru_kernels.build_directory(), root / os.path.basename(gru_kernels.build_directory()))
    return root


LOAD = "from modeling_gru_seq2seq.gru_kernels import recurrence_ops; print(recurrence_ops() is not None)"


def test_a_dead_builders_lock_is_taken_over(extensions_root):
    folder = extensions_root / os.path.basename(gru_kernels.build_directory())
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (folder / gru_kernels.OWNER_FILE).write_text(f"{socket.gethostname()} {dead.stdout.strip()}\n")
    (folder / gru_kernels.TORCH_LOCK_FILE).write_text("")  # torch's, as a SIGKILL mid-build leaves it
    result = subprocess.run(
        [sys.executable, "-c", LOAD],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "TORCH_EXTENSIONS_DIR": str(extensions_root)},
    )
    assert result.returncode == 0 and result.stdout.strip() == "True", result.stderr[-2000:]
    assert not (folder / gru_kernels.OWNER_FILE).exists() and not (folder / gru_kernels.TORCH_LOCK_FILE).exists()


def test_a_live_builder_is_waited_on_within_bounds(extensions_root, monkeypatch):
    folder = extensions_root / os.path.basename(gru_kernels.build_directory())
    (folder / gru_kernels.OWNER_FILE).write_text(f"{socket.gethostname()} {os.getpid()}\n")  # alive: this process
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(extensions_root))
    monkeypatch.setattr(gru_kernels, "BUILD_WAIT_SECONDS", 1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert gru_kernels.recurrence_ops.__wrapped__() is None
    assert any(f"pid {os.getpid()} on {socket.gethostname()}" in str(w.message) for w in caught)


def test_a_build_folder_with_another_source_is_emptied_first(tmp_path):
    folder = tmp_path / "build"
    folder.mkdir()
    (folder / gru_kernels.SOURCE_FILE).write_text(gru_kernels.CPP_SOURCE + "\n// planted\n")
    (folder / "gru_seq2seq_planted.so").write_bytes(b"\x7fELF planted")
    gru_kernels._write_source(str(folder))
    assert os.listdir(folder) == [gru_kernels.SOURCE_FILE]
    assert (folder / gru_kernels.SOURCE_FILE).read_text() == gru_kernels.CPP_SOURCE


# ---------------------------------------------------------------- the output directory


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
    assert error.startswith("error: [Errno 28] No space left on device")
    assert f"the last complete checkpoint is {tmp_path / 'out' / 'checkpoint-3'}: make room" in error


def test_a_second_launch_on_one_output_dir_stops_and_a_dead_owners_lock_is_taken_over(tmp_path, capsys):
    output_dir = tmp_path / "out"
    output_dir.mkdir()
    lock = output_dir / run_translation.RUN_LOCK_FILE
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        lock.write_text(f"{socket.gethostname()} {sleeper.pid}\n")
        args = ["--train_file", str(tmp_path / "missing.txt"), "--output_dir", str(output_dir)]
        assert run_translation.main(args) == 2
        assert f"is in use by pid {sleeper.pid} on {socket.gethostname()}" in capsys.readouterr().err
    finally:
        sleeper.kill()
        sleeper.wait()
    assert run_translation.main(args) == 2  # the owner is gone: taken over, then the missing file is the error
    assert "missing.txt: no such file" in capsys.readouterr().err
    assert not lock.exists()
