"""Load a saved model and its tokenizer, or say in one line which file is wrong and how.

A directory left by an interrupted save, copied in part or assembled from two runs would otherwise fail
deep inside transformers, safetensors or tokenizers with a long traceback, or load and then fail on the
first sentence (a tokenizer larger than the model's embeddings). `load_model_and_tokenizer` checks a local
directory file by file first: `config.json` (present, JSON, a gru-seq2seq configuration with known
choices), every `*.safetensors` file (as long as its header says), the JSON files of the generation
config and the tokenizer, then the vocabulary sizes against the model's. Every problem is a
`ModelLoadError` whose message is `path/file: problem`. A Hub id is left to transformers, which downloads
and caches it; only the vocabulary sizes are checked after loading. A name that can only be a local path
(`local_path`) and is no directory fails at once, without asking the Hub (offline, transformers would retry
for half a minute before its own error).
"""

import os

import torch
from transformers import AutoConfig, AutoModelForSeq2SeqLM, AutoTokenizer, LogitsProcessorList

from . import saved_files
from .commands import MODEL_STAGING_DIR

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
SOURCE_VOCABULARY_FILE, TARGET_VOCABULARY_FILE = "tokenizer.json", "target_tokenizer.json"
GENERATION_CONFIG_FILE = "generation_config.json"
OPTIONAL_JSON_FILES = (GENERATION_CONFIG_FILE, "tokenizer_config.json")
MODEL_TYPE = "gru_seq2seq"


class ModelLoadError(ValueError):
    """A model directory or Hub id that does not load as a complete gru-seq2seq model; the message is
    `path/file: problem` (one line)."""


def load_model_and_tokenizer(
    path: str, config_name: str | None = None, tokenizer_name: str | None = None, **from_pretrained_kwargs
):
    """`(model, tokenizer)` from a saved directory or a Hub id, checked; `from_pretrained_kwargs` (e.g.
    `cache_dir`, `trust_remote_code`, `revision`, `token`) go to every `from_pretrained`. `config_name` /
    `tokenizer_name` load the config / tokenizer from elsewhere, as transformers' scripts' flags of those
    names. Raises `ModelLoadError`."""
    path = checked_local_path(path)
    if os.path.isdir(path):
        check_model_directory(path)
    config = load_config(config_name or path, **from_pretrained_kwargs)
    tokenizer = load_tokenizer(tokenizer_name or path, **from_pretrained_kwargs)
    check_vocabulary_sizes(tokenizer_name or path, config, tokenizer)
    model = _load(AutoModelForSeq2SeqLM, path, WEIGHTS_FILE, dict(from_pretrained_kwargs, config=config))
    check_generation_settings(path, model)
    return model, tokenizer


def check_generation_settings(path: str, model) -> None:
    """The saved generation settings make a search `generate()` can run (e.g. not `do_sample` with a
    `temperature` of 0), else a `ModelLoadError` naming the file and the field, instead of an error at the first
    sentence, deep inside `generate()`."""
    try:
        generation_config, _ = model._prepare_generation_config(None)
        model._get_logits_processor(
            generation_config,
            1,
            torch.zeros((1, 1), dtype=torch.long),
            None,
            LogitsProcessorList(),
            device="cpu",
            model_kwargs={},
        )
    except ValueError as error:
        where = (
            os.path.join(path, GENERATION_CONFIG_FILE) if os.path.isdir(path) else f"{path} ({GENERATION_CONFIG_FILE})"
        )
        raise ModelLoadError(f"{where}: {str(error).splitlines()[0]}") from None


def load_config(path: str, **from_pretrained_kwargs):
    """A gru-seq2seq config from a directory or a Hub id, checked (see `load_model_and_tokenizer`)."""
    path = checked_local_path(path)
    if os.path.isdir(path):
        check_config_file(path)
    config = _load(AutoConfig, path, CONFIG_FILE, from_pretrained_kwargs)
    check_model_type(os.path.join(path, CONFIG_FILE), config.model_type)
    return config


def load_tokenizer(path: str, **from_pretrained_kwargs):
    """A gru-seq2seq tokenizer (both vocabularies) from a directory or a Hub id."""
    path = checked_local_path(path)
    for name in (SOURCE_VOCABULARY_FILE, TARGET_VOCABULARY_FILE) if os.path.isdir(path) else ():
        if not os.path.isfile(os.path.join(path, name)):
            raise ModelLoadError(f"{os.path.join(path, name)}: missing (the tokenizer needs both vocabularies)")
    tokenizer = _load(AutoTokenizer, path, SOURCE_VOCABULARY_FILE, from_pretrained_kwargs)
    if not hasattr(tokenizer, "target_vocab"):
        raise ModelLoadError(f"{path}: a {type(tokenizer).__name__}, not a gru-seq2seq tokenizer (two vocabularies)")
    return tokenizer


def local_path(name: str) -> bool:
    """Whether `name` can only be a local path, not a Hub id: it starts with `/`, `./`, `../` or `~` (or is `.`
    or `..`), or its first component is an existing local folder (`runs/fr-en` where `runs/` is here)."""
    name = os.fspath(name)
    if name in (".", "..") or name.startswith(("/", "./", "../", "~", os.sep)):
        return True
    first = name.replace(os.sep, "/").split("/", 1)[0]
    return "/" in name and os.path.isdir(first)


def checked_local_path(name: str) -> str:
    """`name` (`~` expanded); a local path (`local_path`) that is no directory is a `ModelLoadError` at once,
    naming what its nearest existing folder holds."""
    path = os.path.expanduser(os.fspath(name))
    if os.path.isdir(path) or not local_path(name):
        return path
    parent = os.path.dirname(os.path.normpath(path)) or "."
    while not os.path.isdir(parent) and parent not in ("", os.sep, "."):
        parent = os.path.dirname(parent) or "."
    folders = []
    if os.path.isdir(parent):
        folders = sorted(entry.name for entry in os.scandir(parent) if entry.is_dir() and entry.name[0] != ".")
    holds = f"; {parent} holds {', '.join(folders[:8])}{' ...' if len(folders) > 8 else ''}" if folders else ""
    what = "a file, not a model directory" if os.path.exists(path) else "no such model directory"
    raise ModelLoadError(f"{name}: {what} (a local path: the Hub is not asked){holds}")


def check_model_directory(path: str) -> None:
    """Every file a saved model needs is there and whole, before anything is loaded."""
    check_config_file(path)
    weights = sorted(name for name in os.listdir(path) if name.endswith(".safetensors"))
    if not weights and not os.path.isfile(os.path.join(path, "pytorch_model.bin")):
        raise ModelLoadError(f"{os.path.join(path, WEIGHTS_FILE)}: missing (the directory holds no weights)")
    for name in weights:
        check_safetensors_file(os.path.join(path, name))
    for name in (SOURCE_VOCABULARY_FILE, TARGET_VOCABULARY_FILE):
        if not os.path.isfile(os.path.join(path, name)):
            raise ModelLoadError(f"{os.path.join(path, name)}: missing (the tokenizer needs both vocabularies)")
        read_json(os.path.join(path, name))
    for name in OPTIONAL_JSON_FILES:
        if os.path.isfile(os.path.join(path, name)):
            read_json(os.path.join(path, name))
    if os.path.isfile(os.path.join(path, GENERATION_CONFIG_FILE)):
        check_generation_config(os.path.join(path, GENERATION_CONFIG_FILE))


# generation_config.json keys and what they must be (`generate` would fail deep inside, or produce nothing)
GENERATION_RANGES = {
    "max_length": ("an integer >= 2 (the start token and a word)", lambda v: _is_integer(v) and v >= 2),
    "max_new_tokens": ("an integer >= 1", lambda v: _is_integer(v) and v >= 1),
    "num_beams": ("an integer >= 1", lambda v: _is_integer(v) and v >= 1),
    "num_return_sequences": ("an integer >= 1", lambda v: _is_integer(v) and v >= 1),
}


def _is_integer(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_generation_config(path: str) -> None:
    """The generation settings `generate` reads have usable values."""
    content = read_json(path)
    for key, (want, check) in GENERATION_RANGES.items():
        if content.get(key) is not None and not check(content[key]):
            raise ModelLoadError(f"{path}: {key}: got {content[key]!r}, want {want}")


def check_config_file(path: str) -> None:
    """`config.json` is there, is JSON and names this model type. A directory without it is often a
    training run that has not finished saving: say so when checkpoints or the staging folder are there."""
    config_path = os.path.join(path, CONFIG_FILE)
    if not os.path.isfile(config_path):
        leftovers = sorted(
            name for name in os.listdir(path) if name.startswith("checkpoint-") or name == MODEL_STAGING_DIR
        )
        hint = (
            (
                f"; it holds {', '.join(leftovers)}: a training run that did not finish saving, rerun its "
                "command to resume"
            )
            if leftovers
            else ""
        )
        raise ModelLoadError(f"{path}: not a saved model (no {CONFIG_FILE} in it){hint}")
    check_model_type(config_path, read_json(config_path).get("model_type"))


def check_model_type(config_path: str, model_type: str | None) -> None:
    """The configuration is this package's (another model would load, then fail on its first batch)."""
    if model_type != MODEL_TYPE:
        raise ModelLoadError(f"{config_path}: model_type {model_type!r} is not a gru-seq2seq model ({MODEL_TYPE!r})")


def check_safetensors_file(path: str) -> None:
    """The file is exactly as long as its header says (`saved_files.check_safetensors_file`)."""
    try:
        saved_files.check_safetensors_file(path)
    except saved_files.SavedFileError as error:
        raise ModelLoadError(str(error)) from None


def read_json(path: str) -> dict:
    """The JSON object in `path`; `ModelLoadError` for anything else (a truncated file, an empty one)."""
    try:
        return saved_files.read_json(path)
    except saved_files.SavedFileError as error:
        raise ModelLoadError(str(error)) from None


def check_vocabulary_sizes(path: str, config, tokenizer) -> None:
    """Each tokenizer vocabulary has as many ids as the model's embedding for it has rows (`config` gives
    the shapes; `from_pretrained` then refuses weights of other shapes)."""
    for side, file_name in (("source", SOURCE_VOCABULARY_FILE), ("target", TARGET_VOCABULARY_FILE)):
        tokenizer_size = getattr(tokenizer, f"{side}_vocab_size")
        model_size = getattr(config, f"{side}_vocab_size")
        if tokenizer_size != model_size:
            raise ModelLoadError(
                f"{os.path.join(path, file_name)}: a {side} vocabulary of {tokenizer_size} ids, but the model's "
                f"{side} embedding has {model_size} rows ({CONFIG_FILE}): the tokenizer belongs to another model"
            )


def _load(auto_class, path: str, file_name: str, kwargs: dict):
    """`auto_class.from_pretrained(path, **kwargs)`, any failure as one line naming `file_name` (local) or
    saying that `path` is neither a directory nor a Hub model."""
    try:
        return auto_class.from_pretrained(path, **kwargs)
    except Exception as error:  # transformers, safetensors and tokenizers raise many types
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        if not os.path.isdir(path):
            raise ModelLoadError(f"{path}: no such model directory, nor a Hub model ({first_line})") from None
        raise ModelLoadError(f"{os.path.join(path, file_name)}: {first_line}") from None
