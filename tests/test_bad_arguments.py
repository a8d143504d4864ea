"""Every bad argument and input gets one line before any long work: the script's flag table, the model's
fields, the output folder, data and model files, generate() and the pipeline, and gru-translate's output."""

import errno
import json
import os
import subprocess
import sys

import pytest
import torch
from datasets import DatasetDict

import run_translation
from data_scripts import prepare_tatoeba
from data_scripts.prepare_tatoeba import PREPARE_RANGES, DataFileError, PrepareArguments, read_pairs
from modeling_gru_seq2seq import (
    GruSeq2SeqConfig,
    GruSeq2SeqForConditionalGeneration,
    GruSeq2SeqTokenizer,
    TranslationPipeline,
    train_word_level,
)
from modeling_gru_seq2seq.loading import ModelLoadError, load_model_and_tokenizer
from modeling_gru_seq2seq.pipeline_gru_seq2seq import save_translation_pipeline

BAD_VALUES = {  # one bad value per flag of run_translation.FLAG_RANGES and of PREPARE_RANGES
    "per_device_train_batch_size": "0",
    "per_device_eval_batch_size": "0",
    "learning_rate": "nan",
    "decoder_learning_ratio": "-5",
    "max_train_minutes": "-1",
    "num_beams": "0",
    "max_train_samples": "0",
    "max_eval_samples": "0",
    "max_predict_samples": "0",
    "max_source_length": "0",
    "max_target_length": "1",
    "val_max_target_length": "0",
    "num_attention_plots": "-1",
    "preprocessing_num_workers": "0",
    "validation_fraction": "1.5",
    "test_fraction": "-0.1",
    "split_seed": "-1",
    "min_count": "0",
    "min_length": "0",
    "max_length": "0",
}


def one_line_error(capsys) -> str:
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1, error
    return error


def run_with(tmp_path, *flags) -> list[str]:
    """Arguments whose training file does not exist: an error about anything else came before reading data."""
    return ["--train_file", str(tmp_path / "never-read.txt"), "--output_dir", str(tmp_path / "out"), *flags]


def test_every_flag_of_the_table_is_checked_right_after_parsing(tmp_path, capsys):
    wants = {flag: want for flag, (_, want, _) in run_translation.FLAG_RANGES.items()}
    wants.update({flag: want for flag, (want, _) in PREPARE_RANGES.items()})
    assert set(BAD_VALUES) == set(wants)
    for flag, value in BAD_VALUES.items():
        assert run_translation.main(run_with(tmp_path, f"--{flag}", value)) == 2, flag
        error = one_line_error(capsys)
        assert error.startswith(f"error: --{flag}: got ") and wants[flag] in error, error
    assert not (tmp_path / "out").exists()


def test_the_table_shows_in_help():
    help_text = subprocess.run(
        [sys.executable, run_translation.__file__, "--help"],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "1000"},
    ).stdout
    entries = {}  # flag -> its help, however argparse wrapped it
    for block in help_text.split("\n  --")[1:]:
        entries[block.split()[0]] = " ".join(block.split())
    for flag, (_, want, _) in run_translation.FLAG_RANGES.items():
        assert f"Valid: {want}." in entries[flag], flag
    for flag, (want, _) in PREPARE_RANGES.items():
        assert f"Valid: {want}." in entries[flag], flag
    for field in ("hidden_size", "num_layers", "dropout", "teacher_forcing_ratio"):
        assert "Valid: " in entries[field], field


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--hidden_size", "0"], "error: --hidden_size: got 0, want an integer >= 1"),
        (["--num_layers", "0"], "error: --num_layers: got 0, want an integer >= 1"),
        (["--dropout", "1"], "error: --dropout: got 1.0, want a number in [0, 1)"),
        (["--teacher_forcing_ratio", "1.5"], "error: --teacher_forcing_ratio: got 1.5, want a number in [0, 1]"),
        (["--hidden_size", "100000"], "error: --hidden_size: got 100000, want a model that fits in memory: its"),
        (
            ["--validation_fraction", "0.6", "--test_fraction", "0.5"],
            "error: --validation_fraction + --test_fraction: got",
        ),
        (["--min_length", "10", "--max_length", "5"], "error: --max_length: got 5, want >= --min_length (10)"),
    ],
)
def test_model_fields_and_combinations_are_one_line(tmp_path, capsys, flags, message):
    assert run_translation.main(run_with(tmp_path, *flags)) == 2
    error = one_line_error(capsys)
    assert error.startswith(message), error
    if "fits in memory" in message:
        assert "million parameters need about" in error and "GB are available" in error


def test_output_dir_that_is_a_file_or_under_one(tmp_path, capsys):
    a_file = tmp_path / "notes.txt"
    a_file.write_text("mine")
    for output_dir, reason in ((a_file, "it is a file"), (a_file / "run", "Not a directory")):
        args = ["--train_file", str(tmp_path / "never-read.txt"), "--output_dir", str(output_dir)]
        assert run_translation.main(args) == 2
        error = one_line_error(capsys)
        assert error.startswith(f"error: --output_dir: got '{output_dir}', want a directory") and reason in error
    assert a_file.read_text() == "mine"


def test_config_json_fields_are_checked(tmp_path):
    for field, value, want in (
        ("hidden_size", "abc", "an integer >= 1"),
        ("source_vocab_size", "1907", "an integer"),
        ("dropout", 2, "a number in [0, 1)"),
    ):
        with pytest.raises(
            ValueError,
            match=rf"{field}: got {value!r}, want {want}".replace("[", r"\[").replace("(", r"\(").replace(")", r"\)"),
        ):
            GruSeq2SeqConfig(**{field: value})


@pytest.fixture
def model_dir(tmp_path):
    torch.manual_seed(0)
    tokenizer = GruSeq2SeqTokenizer.from_vocabularies(
        train_word_level(["je suis la"]), train_word_level(["i am here"])
    )
    config = GruSeq2SeqConfig(
        source_vocab_size=tokenizer.source_vocab_size,
        target_vocab_size=tokenizer.target_vocab_size,
        hidden_size=8,
        num_layers=1,
    )
    save_translation_pipeline(GruSeq2SeqForConditionalGeneration(config), tokenizer, tmp_path / "model")
    return tmp_path / "model"


@pytest.mark.parametrize(
    "damage, file_name, message",
    [
        ("weights_dir", "model.safetensors", "not a file"),
        ("max_length_abc", "generation_config.json", "max_length: got 'abc', want an integer >= 2"),
        ("max_length_1", "generation_config.json", "max_length: got 1, want an integer >= 2"),
        ("hidden_abc", "config.json", "hidden_size: got 'abc', want an integer >= 1"),
        ("vocab_string", "config.json", "source_vocab_size: got '"),
    ],
)
def test_damaged_model_folders_name_the_file(model_dir, damage, file_name, message):
    def edit_json(name, **changes):
        path = model_dir / name
        path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))

    if damage == "weights_dir":
        (model_dir / "model.safetensors").unlink()
        (model_dir / "model.safetensors").mkdir()
    elif damage.startswith("max_length"):
        edit_json("generation_config.json", max_length="abc" if damage.endswith("abc") else 1)
    elif damage == "hidden_abc":
        edit_json("config.json", hidden_size="abc")
    else:
        size = json.loads((model_dir / "config.json").read_text())["source_vocab_size"]
        edit_json("config.json", source_vocab_size=str(size))
    with pytest.raises(ModelLoadError) as error:
        load_model_and_tokenizer(str(model_dir))
    assert str(error.value).startswith(f"{model_dir / file_name}: ") and message in str(error.value)
    assert "\n" not in str(error.value)


def test_generate_and_the_pipeline_check_their_inputs(model_dir):
    model = GruSeq2SeqForConditionalGeneration.from_pretrained(model_dir)
    sentence = torch.tensor([[4, 5, 2]])
    cases = [
        (dict(input_ids=sentence, num_beams=0), "num_beams: got 0, want an integer >= 1"),
        (
            dict(input_ids=torch.tensor([[4, 5, 2], [0, 0, 0]]), attention_mask=torch.tensor([[1, 1, 1], [0, 0, 0]])),
            "attention_mask: row 1 is all padding",
        ),
        (dict(input_ids=torch.zeros(0, 3, dtype=torch.long)), "input_ids: got shape (0, 3)"),
        (dict(input_ids=torch.tensor([[4, 57, 2]])), "input_ids: got 57, want ids in 0.."),
    ]
    for kwargs, message in cases:
        with pytest.raises(ValueError) as error:
            model.generate(**kwargs, max_new_tokens=3)
        assert str(error.value).startswith(message) and "\n" not in str(error.value)
    translator = TranslationPipeline(model=model, tokenizer=GruSeq2SeqTokenizer.from_pretrained(model_dir))
    with pytest.raises(ValueError, match="num_beams: got 0"):
        translator("je suis la", num_beams=0)


def test_broken_json_lines_name_their_line(tmp_path):
    path = tmp_path / "pairs.jsonl"
    path.write_text('{"translation": {"en": "Go.", "fr": "Va !"}}\n{"translation": {"en": "Hi.", "fr": \n')
    with pytest.raises(DataFileError, match=rf"^{path}:2: not valid JSON \(") as error:
        read_pairs(str(path), PrepareArguments())
    assert "\n" not in str(error.value)


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


def test_gru_translate_output_errors_and_option_order(model_dir):
    command = [sys.executable, "-m", "modeling_gru_seq2seq.translate", str(model_dir)]
    with open("/dev/full", "w") as full:
        result = subprocess.run([*command, "je suis la"], stdout=full, stderr=subprocess.PIPE, text=True, timeout=120)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == "error: cannot write the translations: No space left on device"
    assert "Traceback" not in result.stderr
    ordered = subprocess.run(
        [*command, "--num_beams", "3", "je suis la", "je suis"], capture_output=True, text=True, timeout=120
    )
    assert ordered.returncode == 0, ordered.stderr[-2000:]
    assert len(ordered.stdout.splitlines()) == 2


def test_prepare_tatoeba_onto_a_file_or_a_full_disk(pairs_file, tmp_path, monkeypatch, capsys):
    a_file = tmp_path / "corpus"
    a_file.write_text("mine")
    args = ["--train_file", str(tmp_path / "never-read.txt"), "--output_dir", str(a_file), "--overwrite_output_dir"]
    assert prepare_tatoeba.main(args) == 2
    assert "it is a file" in one_line_error(capsys) and a_file.read_text() == "mine"

    def full_disk(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(DatasetDict, "save_to_disk", full_disk)
    output_dir = tmp_path / "new"
    assert prepare_tatoeba.main(["--train_file", pairs_file, "--output_dir", str(output_dir)]) == 1
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error == f"error: --output_dir {output_dir}: cannot save there (No space left on device)"
    assert not output_dir.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".new")]
