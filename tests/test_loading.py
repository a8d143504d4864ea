"""Loading a saved model (modeling_gru_seq2seq/loading.py): a corrupt, damaged or mismatched model folder is one
error naming the file and the problem, from `load_model_and_tokenizer` and from both commands."""

import json
import shutil
import subprocess
import sys

import pytest

from modeling_gru_seq2seq import GruSeq2SeqTokenizer, train_word_level
from modeling_gru_seq2seq.loading import ModelLoadError, load_model_and_tokenizer

# ---------------------------------------------------------------- corrupt or mismatched model directories


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


@pytest.fixture
def corrupt_dirs(saved_model_dir):
    """Each corruption applied to a copy of `saved_model_dir`: {name: (directory, expected message)}."""
    full_size = (saved_model_dir / "model.safetensors").stat().st_size
    dirs = {}
    for index, (name, (damage, message)) in enumerate(CORRUPTIONS.items()):
        directory = saved_model_dir.parent / f"corrupt-{index}"
        shutil.copytree(saved_model_dir, directory)
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


# ---------------------------------------------------------------- damaged files


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
def test_damaged_model_folders_name_the_file(saved_model_dir, damage, file_name, message):
    def edit_json(name, **changes):
        path = saved_model_dir / name
        path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))

    if damage == "weights_dir":
        (saved_model_dir / "model.safetensors").unlink()
        (saved_model_dir / "model.safetensors").mkdir()
    elif damage.startswith("max_length"):
        edit_json("generation_config.json", max_length="abc" if damage.endswith("abc") else 1)
    elif damage == "hidden_abc":
        edit_json("config.json", hidden_size="abc")
    else:
        size = json.loads((saved_model_dir / "config.json").read_text())["source_vocab_size"]
        edit_json("config.json", source_vocab_size=str(size))
    with pytest.raises(ModelLoadError) as error:
        load_model_and_tokenizer(str(saved_model_dir))
    assert str(error.value).startswith(f"{saved_model_dir / file_name}: ") and message in str(error.value)
    assert "\n" not in str(error.value)


def test_loading_names_the_weights_file(saved_model_dir, tmp_path):
    output_dir = saved_model_dir
    copy = tmp_path / "model"
    shutil.copytree(output_dir, copy)
    config = json.loads((copy / "config.json").read_text())
    (copy / "config.json").write_text(json.dumps({**config, "num_layers": 3}))
    with pytest.raises(ModelLoadError, match=r"model\.safetensors: the weights do not fit the config"):
        load_model_and_tokenizer(str(copy))
