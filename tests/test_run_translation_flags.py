"""run_translation.py as a drop-in for transformers' translation example: its flags, `--config_overrides`,
given splits used as given, `--val_max_target_length` on loaded models, `training_args.bin`, the model
card's metadata and TensorBoard logs; every flag's valid values, checked right after parsing (one line, before
any data is read) and shown in `--help`."""

import glob
import json
import os
import re
import subprocess
import sys

import pytest
import torch
from datasets import Dataset
from huggingface_hub import ModelCard
from runs import TINY, one_line_error
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import run_translation
from data_scripts.prepare_tatoeba import (
    PREPARE_RANGES,
    PrepareArguments,
    prepare_tatoeba,
    read_pairs,
    tokenize_translation,
)
from modeling_gru_seq2seq import GruSeq2SeqConfig, GruSeq2SeqForConditionalGeneration, GruSeq2SeqTokenizer
from modeling_gru_seq2seq.configuration_gru_seq2seq import FIELD_CHOICES

QUICK = [
    "--min_count",
    "1",
    "--disable_tqdm",
    "true",
    "--dataloader_pin_memory",
    "false",
    "--num_attention_plots",
    "0",
    "--max_eval_samples",
    "20",
    "--max_predict_samples",
    "20",
]
HF_FLAGS = [
    "--model_revision",
    "main",
    "--token",
    "unused-for-local-files",
    "--use_fast_tokenizer",
    "false",
    "--forced_bos_token",
    "en_XX",
    "--ignore_pad_token_for_loss",
    "true",
    "--preprocessing_num_workers",
    "1",
    "--overwrite_cache",
]


@pytest.fixture(scope="module")
def held_out(pairs_file, tmp_path_factory):
    """Validation and test files: two pairs each, one with a word the training pairs never had."""
    directory = tmp_path_factory.mktemp("held_out")
    (directory / "validation.txt").write_text("I am cold.\tJe suis froid.\nHe is a zorg.\tC'est un zorg.\n")
    (directory / "test.txt").write_text("She is here.\tElle est là.\nWe are late.\tNous sommes en retard.\n")
    return directory


@pytest.fixture(scope="module")
def trained(pairs_file, held_out, tmp_path_factory):
    """One short run with transformers' flags, `--config_overrides`, given split files and TensorBoard."""
    output_dir = tmp_path_factory.mktemp("flags") / "fr-en-tiny"
    args = [
        "--train_file",
        pairs_file,
        "--validation_file",
        str(held_out / "validation.txt"),
        "--test_file",
        str(held_out / "test.txt"),
        "--output_dir",
        str(output_dir),
        *QUICK,
        *HF_FLAGS,
        "--config_overrides",
        "hidden_size=24,num_layers=1,attention=concat,dropout=0.0",
        "--max_steps",
        "4",
        "--eval_strategy",
        "steps",
        "--eval_steps",
        "2",
        "--logging_steps",
        "1",
        "--report_to",
        "tensorboard",
    ]
    result = subprocess.run(
        [sys.executable, run_translation.__file__, *args], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return output_dir, result


def test_transformers_flags_are_accepted_and_the_overrides_build_the_model(trained, pairs_file):
    output_dir, result = trained
    config = json.loads((output_dir / "config.json").read_text())
    assert (config["hidden_size"], config["num_layers"], config["attention"], config["dropout"]) == (
        24,
        1,
        "concat",
        0,
    )
    assert config["decoder_type"] == GruSeq2SeqConfig.decoder_type  # the rest: the config's defaults
    assert "--forced_bos_token has no effect" in result.stdout + result.stderr
    help_text = subprocess.run(
        [sys.executable, run_translation.__file__, "--help"], capture_output=True, text=True
    ).stdout
    for flag in (
        "--config_name",
        "--tokenizer_name",
        "--model_revision",
        "--token",
        "--use_fast_tokenizer",
        "--source_prefix",
        "--forced_bos_token",
        "--pad_to_max_length",
        "--ignore_pad_token_for_loss",
        "--preprocessing_num_workers",
        "--overwrite_cache",
        "--config_overrides",
    ):
        assert flag in help_text, flag
    assert help_text.count("No effect, accepted for transformers' scripts") >= 3  # the no-op flags say so


def test_given_split_files_are_used_as_given(trained, pairs_file):
    output_dir, _ = trained
    kept = prepare_tatoeba(pairs_file, PrepareArguments(min_count=1)).stats["pairs_kept"]
    assert json.loads((output_dir / "train_results.json").read_text())["train_samples"] == kept  # nothing carved
    assert json.loads((output_dir / "eval_results.json").read_text())["eval_samples"] == 2
    assert json.loads((output_dir / "predict_results.json").read_text())["predict_samples"] == 2


def test_finished_run_says_where_the_model_is_and_how_to_translate(trained):
    output_dir, result = trained
    assert f"Model saved in {output_dir}" in result.stdout
    assert f'gru-translate {output_dir} "Je suis content."' in result.stdout


def test_training_args_bin_loads_in_another_process(trained, tmp_path):
    output_dir, _ = trained
    code = (
        "import torch, sys; args = torch.load(sys.argv[1], weights_only=False); "
        "print(type(args).__module__, type(args).__name__, args.max_steps)"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code, str(output_dir / "training_args.bin")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )  # not the repository
    assert loaded.returncode == 0, loaded.stderr[-2000:]
    assert loaded.stdout.split() == ["modeling_gru_seq2seq.training", "GruSeq2SeqTrainingArguments", "4"]


def test_model_card_metadata(trained):
    output_dir, _ = trained
    text = (output_dir / "README.md").read_text()
    card = ModelCard.load(output_dir / "README.md")
    assert card.data.license == "mit" and card.data.datasets == ["tatoeba"]
    results = json.loads((output_dir / "all_results.json").read_text())
    scores = {(r.dataset_split, r.metric_type): r.metric_value for r in card.data.eval_results}
    assert scores == {
        (split, name): pytest.approx(results[f"{prefix}_{name}"], abs=0.01)
        for prefix, split in (("eval", "validation"), ("predict", "test"))
        for name in ("bleu", "chrf")
    }
    assert all(r.task_type == "translation" and r.dataset_name == "Tatoeba fr-en" for r in card.data.eval_results)
    assert all(r.metric_args.startswith("nrefs:1|") for r in card.data.eval_results)
    assert "CC-BY 2.0" in text and str(output_dir.parent) not in text  # no local paths
    assert 'model="fr-en-tiny"' in text  # the folder's name without --hub_model_id


def test_tensorboard_logs(trained):
    output_dir, _ = trained
    (run,) = glob.glob(str(output_dir / "runs" / "*"))
    events = EventAccumulator(run)
    events.Reload()
    assert {"train/loss", "eval/bleu", "eval/chrf"} <= set(events.Tags()["scalars"])


def test_val_max_target_length_caps_a_loaded_model(trained, held_out, tmp_path):
    output_dir, _ = trained
    results = {}
    for cap in ("3", None):
        eval_dir = tmp_path / f"eval-{cap}"
        args = [
            "--model_name_or_path",
            str(output_dir),
            "--do_eval",
            "--validation_file",
            str(held_out / "validation.txt"),
            "--output_dir",
            str(eval_dir),
            "--report_to",
            "none",
            "--disable_tqdm",
            "true",
            *(["--val_max_target_length", cap] if cap else []),
        ]
        assert run_translation.main(args) == 0
        results[cap] = json.loads((eval_dir / "eval_results.json").read_text())["eval_gen_len"]
    assert results["3"] <= 3 < results[None]  # an untrained model runs to its limit (50)


def test_config_name_and_tokenizer_name_shape_a_new_model(trained, pairs_file, tmp_path):
    output_dir, _ = trained
    new_dir = tmp_path / "new"
    args = [
        "--train_file",
        pairs_file,
        "--config_name",
        str(output_dir),
        "--tokenizer_name",
        str(output_dir),
        "--num_layers",
        "2",
        "--output_dir",
        str(new_dir),
        *QUICK,
        "--max_steps",
        "1",
        "--eval_strategy",
        "no",
        "--report_to",
        "none",
    ]
    assert run_translation.main(args) == 0
    saved, config = (
        json.loads((output_dir / "config.json").read_text()),
        json.loads((new_dir / "config.json").read_text()),
    )
    assert (config["hidden_size"], config["attention"], config["num_layers"]) == (24, "concat", 2)
    assert config["source_vocab_size"] == saved["source_vocab_size"]  # the given tokenizer's vocabularies
    assert (new_dir / "tokenizer.json").read_text() == (output_dir / "tokenizer.json").read_text()


@pytest.mark.parametrize(
    "flags, message",
    [
        (
            ["--config_overrides", "hidden_size=64", "--hidden_size", "32"],
            "--config_overrides sets hidden_size and so does --hidden_size: pass one",
        ),
        (
            ["--config_overrides", "hidden_size=64", "--model_name_or_path", "somewhere", "--do_eval"],
            "--config_overrides sets a new model's fields, --model_name_or_path loads a model",
        ),
        (["--config_overrides", "width=64"], "'width=64' is not NAME=VALUE with NAME one of"),
        (["--config_overrides", "hidden_size=wide"], "hidden_size='wide' is not a int"),
        (
            ["--config_overrides", "attention=cosine"],
            "--config_overrides attention: got 'cosine', want one of dot, general, concat",
        ),
        (["--config_overrides", "source_vocab_size=9"], "is not NAME=VALUE"),
    ],
)
def test_config_override_errors_are_one_line_before_any_data_is_read(tmp_path, capsys, flags, message):
    args = ["--train_file", str(tmp_path / "never-read.txt"), "--output_dir", str(tmp_path / "out"), *flags]
    assert run_translation.main(args) == 2
    error = capsys.readouterr().err.strip()
    assert message in error and len(error.splitlines()) == 1 and "never-read" not in error


def test_shape_flags_that_differ_from_a_loaded_model_are_an_error(trained, tmp_path, capsys):
    output_dir, _ = trained
    args = [
        "--model_name_or_path",
        str(output_dir),
        "--do_eval",
        "--hidden_size",
        "64",
        "--output_dir",
        str(tmp_path / "out"),
    ]
    assert run_translation.main(args) == 2
    assert "--hidden_size 64 shapes a new model, but" in capsys.readouterr().err


def test_a_loaded_tokenizer_of_another_normalization_is_an_error(trained, pairs_file, tmp_path, capsys):
    output_dir, _ = trained  # its tokenizer normalizes as the tutorial (ascii)
    args = ["--model_name_or_path", str(output_dir), "--train_file", pairs_file, "--do_eval"]
    args += ["--normalization", "unicode", "--output_dir", str(tmp_path / "out")]
    assert run_translation.main(args) == 2
    assert "--normalization unicode, but the tokenizer given normalizes ascii" in capsys.readouterr().err


def test_flags_default_to_the_config_and_take_its_choices():
    parser = run_translation.HfArgumentParser(run_translation.ModelArguments)
    (defaults,) = parser.parse_args_into_dataclasses([])
    config = run_translation.new_model_config(defaults, {})
    for name in run_translation.NEW_MODEL_FIELDS:
        assert getattr(defaults, name) is None  # unset: the config decides
        assert getattr(config, name) == getattr(GruSeq2SeqConfig(), name)
    actions = {action.dest: action for action in parser._actions}
    for name, choices in FIELD_CHOICES.items():
        assert actions[name].choices == list(choices)
    assert "GruSeq2SeqConfig's default, 500" in actions["hidden_size"].help


def test_dataset_name_uses_its_own_splits(pairs_file, tmp_path):
    """A local dataset folder in the wmt14 layout (train/validation/test files of translation records)."""
    pairs = read_pairs(pairs_file, PrepareArguments())
    records = [{"translation": {"fr": fr, "en": en}} for fr, en in zip(pairs["fr"], pairs["en"], strict=False)]
    folder = tmp_path / "wmt14-like"
    folder.mkdir()
    for split, part in (("train", records[:1500]), ("validation", records[1500:1600]), ("test", records[1600:1680])):
        Dataset.from_list(part).to_json(folder / f"{split}.jsonl")
    data_args = run_translation.DataTrainingArguments(dataset_name=str(folder), min_count=1)
    prepare_args = PrepareArguments(min_count=1)
    corpus, _ = run_translation.load_corpus(data_args, prepare_args, None, need_train=True)
    train_pairs = Dataset.from_list([record["translation"] for record in records[:1500]])
    kept = prepare_tatoeba(train_pairs, PrepareArguments(min_count=1, validation_fraction=0, test_fraction=0))
    assert len(corpus["train"]) == kept.stats["pairs_kept"]  # nothing carved from it
    lengths = PrepareArguments()
    for split, part in (("validation", records[1500:1600]), ("test", records[1600:1680])):
        kept = [
            r
            for r in part
            if all(lengths.min_length <= len(text) <= lengths.max_length for text in r["translation"].values())
        ]
        assert len(corpus[split]) == len(kept)  # length-filtered only, never trimmed


def test_tokenize_translation_prefix_and_max_length_padding(pairs_file):
    corpus = prepare_tatoeba(pairs_file, PrepareArguments(min_count=1))
    split = corpus.dataset["validation"].select(range(8))
    tokenizer = corpus.tokenizer
    padded = tokenize_translation(split, tokenizer, 16, 12, pad_to_max_length=True)
    assert {len(ids) for ids in padded["input_ids"]} == {16} and {len(ids) for ids in padded["labels"]} == {12}
    assert all(-100 in labels and tokenizer.pad_token_id not in labels for labels in padded["labels"])
    counted = tokenize_translation(
        split, tokenizer, 16, 12, pad_to_max_length=True, label_pad_token_id=tokenizer.pad_token_id
    )
    assert all(-100 not in labels for labels in counted["labels"])
    prefix_word = split["translation"][0]["fr"].split()[0]
    prefixed = tokenize_translation(split, tokenizer, source_prefix=prefix_word + " ", num_proc=2)
    plain = tokenize_translation(split, tokenizer)
    prefix_id = tokenizer.convert_tokens_to_ids(prefix_word)
    assert all(p == [prefix_id, *q] for p, q in zip(prefixed["input_ids"], plain["input_ids"], strict=False))


# ---------------------------------------------------------------- valid values


BAD_VALUES = {  # one bad value per flag of run_translation.FLAG_RANGES and of PREPARE_RANGES
    "per_device_train_batch_size": "0",
    "per_device_eval_batch_size": "0",
    "learning_rate": "nan",
    "decoder_learning_ratio": "-5",
    "max_train_minutes": "-1",
    "early_stopping_patience": "0",
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
    "vocab_size": "260",
    "subword_dropout": "1",
}


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


def test_a_warmup_in_steps_with_a_schedule_over_a_time_limit_is_refused(tmp_path, capsys):
    flags = ("--max_train_minutes", "5", "--lr_scheduler_type", "linear")
    assert run_translation.main(run_with(tmp_path, *flags, "--warmup_steps", "100")) == 2
    error = one_line_error(capsys)
    assert "--warmup_steps 100 counts steps" in error and "below 1" in error, error
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
        (
            ["--open_test", "--test_fraction", "0"],
            "error: --open_test holds out the test split: give a --test_fraction",
        ),
        (
            ["--open_test", "--test_file", "test.txt"],
            "error: --open_test holds a test split out of the training pairs,",
        ),
        (
            ["--gradient_checkpointing"],
            "error: --gradient_checkpointing/--activation_checkpointing: gradient checkpointing is not supported",
        ),
        (
            ["--activation_checkpointing", "true"],
            "error: --gradient_checkpointing/--activation_checkpointing: gradient checkpointing is not supported",
        ),
    ],
)
def test_model_fields_and_combinations_are_one_line(tmp_path, capsys, flags, message):
    assert run_translation.main(run_with(tmp_path, *flags)) == 2
    error = one_line_error(capsys)
    assert error.startswith(message), error
    if "fits in memory" in message:
        assert "million parameters need about" in error and "GB are available" in error


@pytest.mark.slow
def test_a_new_model_starts_from_an_autoencoders_encoder_and_keeps_it(pairs_file, tmp_path, capsys):
    """The tutorial's exercise: train as an autoencoder, keep its encoder, train a new decoder from there."""
    run = [
        "--train_file",
        pairs_file,
        "--do_train",
        "--max_steps",
        "4",
        "--learning_rate",
        "1e-2",
        "--use_cpu",
        "true",
    ]
    run += ["--eval_strategy", "no", "--save_strategy", "no", "--num_attention_plots", "0", "--disable_tqdm", "true"]
    run += ["--report_to", "none"]
    autoencoder, translator = tmp_path / "autoencoder", tmp_path / "translator"
    shape = ["--hidden_size", "32", "--num_layers", "2", "--min_count", "1"]
    assert run_translation.main([*run, *shape, "--autoencode", "--output_dir", str(autoencoder)]) == 0
    start = ["--init_encoder_from", str(autoencoder)]
    # the shape comes from the autoencoder: another --hidden_size is refused
    refused = [*run, *start, "--min_count", "1", "--hidden_size", "16", "--output_dir", str(translator)]
    assert run_translation.main(refused) == 2
    assert "--hidden_size 16, but --init_encoder_from" in capsys.readouterr().err
    args = [*run, *start, "--min_count", "1", "--freeze_encoder", "--output_dir", str(translator)]
    assert run_translation.main(args) == 0
    started = GruSeq2SeqForConditionalGeneration.from_pretrained(autoencoder).encoder.state_dict()
    trained = GruSeq2SeqForConditionalGeneration.from_pretrained(translator)
    assert all(torch.equal(trained.encoder.state_dict()[name], tensor) for name, tensor in started.items())
    assert trained.config.hidden_size == 32 and trained.config.num_layers == 2
    # another source vocabulary (accents kept: "pret" against "prêt") is refused, saying how many words differ
    other = [*run, *start, "--min_count", "1", "--normalization", "unicode", "--output_dir", str(tmp_path / "x")]
    assert run_translation.main(other) == 2
    assert re.search(r"its source vocabulary differs from this run's in \d+ words", capsys.readouterr().err)


def test_replace_unknown_in_evaluation_and_generated_predictions(names_run, names_file, tmp_path):
    """`--unknown_pairs keep --replace_unknown --open_test` (`names_run`): the open test's rare names come out in
    `generated_predictions.txt` in place of <unk>, and `predict_bleu` counts them; the same model predicting
    without `--replace_unknown` writes <unk> there and scores lower."""
    split = prepare_tatoeba(
        names_file,
        PrepareArguments(
            min_count=2, unknown_pairs="keep", open_test=True, validation_fraction=0.1, test_fraction=0.1
        ),
    ).dataset["test"]
    vocabulary = set(GruSeq2SeqTokenizer.from_pretrained(names_run).get_vocab())
    rare = [[word for word in pair["fr"].split() if word not in vocabulary] for pair in split["translation"]]
    assert sum(map(bool, rare)) > 10  # the open test holds names never seen in training (and only there)
    replaced = (names_run / "generated_predictions.txt").read_text(encoding="utf-8").splitlines()
    assert "<unk>" not in " ".join(replaced)
    named = [set(names) <= set(line.split()) for names, line in zip(rare, replaced, strict=True) if names]
    assert sum(named) >= 0.9 * len(named)
    with open(names_run / "predict_results.json") as handle:
        replaced_metrics = json.load(handle)
    assert {"predict_bleu", "predict_bleu_in_vocab"} <= set(replaced_metrics)

    again = tmp_path / "without"
    flags = ["--model_name_or_path", str(names_run), "--do_predict", "--train_file", names_file, "--min_count", "2"]
    flags += ["--unknown_pairs", "keep", "--open_test", "--validation_fraction", "0.1", "--test_fraction", "0.1"]
    flags += ["--output_dir", str(again), "--report_to", "none", "--disable_tqdm", "true"]
    assert run_translation.main(flags) == 0
    plain = (again / "generated_predictions.txt").read_text(encoding="utf-8").splitlines()
    assert len(plain) == len(replaced) and sum("<unk>" in line for line in plain) >= 0.9 * sum(map(bool, rare))
    with open(again / "predict_results.json") as handle:
        plain_metrics = json.load(handle)
    assert plain_metrics["predict_bleu"] < replaced_metrics["predict_bleu"] - 20
    assert plain_metrics["predict_bleu_in_vocab"] == replaced_metrics["predict_bleu_in_vocab"]
    record = json.loads((names_run / "run_arguments.json").read_text())
    assert (record["--unknown_pairs"], record["--open_test"]) == ("keep", True)


def test_overwrite_output_dir_starts_a_finished_run_over_and_keeps_the_users_files(pairs_file, tmp_path, capsys):
    """A folder holding a finished run: `--overwrite_output_dir` trains again from step 0, with the same arguments
    or another model shape, removing what a run writes and keeping the user's own files."""
    output_dir = tmp_path / "run"
    flags = ["--train_file", pairs_file, "--output_dir", str(output_dir), *TINY, "--max_steps", "3"]
    flags += ["--eval_strategy", "no", "--save_strategy", "steps", "--save_steps", "2", "--num_attention_plots", "1"]
    flags += ["--max_eval_samples", "8", "--max_predict_samples", "8"]
    assert run_translation.main(flags) == 0
    (output_dir / "notes.txt").write_text("mine", encoding="utf-8")
    (output_dir / "mine").mkdir()
    capsys.readouterr()
    assert run_translation.main([*flags, "--overwrite_output_dir"]) == 0
    out = capsys.readouterr().out
    assert "already finished" not in out and "Resuming" not in out
    state = json.loads((output_dir / "trainer_state.json").read_text(encoding="utf-8"))
    assert state["global_step"] == 3 and state["log_history"][0]["step"] <= 3
    hidden = [flag if flag != "32" else "16" for flag in flags]  # another --hidden_size
    assert run_translation.main([*hidden, "--overwrite_output_dir"]) == 0
    assert json.loads((output_dir / "config.json").read_text(encoding="utf-8"))["hidden_size"] == 16
    assert (output_dir / "notes.txt").read_text(encoding="utf-8") == "mine" and (output_dir / "mine").is_dir()
    assert sorted(path.name for path in output_dir.glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-3"]
    in_place = ["--overwrite_output_dir", "--model_name_or_path", str(output_dir), "--do_train"]
    assert run_translation.main([*flags, *in_place]) == 2
    assert "--overwrite_output_dir would delete the model --model_name_or_path" in capsys.readouterr().err
