"""Checks of a saved model's files where they are read: the weights, the generation settings and the vocabularies.

They travel with the model (`MODEL_CODE_FILES`), so that a damaged folder loaded through the Auto classes with
`trust_remote_code` (`AutoModelForSeq2SeqLM`, `AutoTokenizer`) says in one line which file is wrong, as
`gru-translate` does (its `loading.py` makes the same checks, and more, before anything loads). transformers reads
`config.json` before any of this code runs, so that file stays transformers' business.
"""

import json
import os

WEIGHTS_FILE = "model.safetensors"
GENERATION_CONFIG_FILE = "generation_config.json"


class SavedFileError(OSError):
    """A saved model's file that is missing or damaged; the message is `path: problem` (one line)."""


def check_weights(directory: str) -> None:
    """`directory` holds weights (safetensors, or a `pytorch_model.bin`), each safetensors file whole."""
    weights = sorted(name for name in os.listdir(directory) if name.endswith(".safetensors"))
    if not weights and not os.path.isfile(os.path.join(directory, "pytorch_model.bin")):
        raise SavedFileError(f"{os.path.join(directory, WEIGHTS_FILE)}: missing (the directory holds no weights)")
    for name in weights:
        check_safetensors_file(os.path.join(directory, name))


def check_safetensors_file(path: str) -> None:
    """The file is exactly as long as its header says: 8 bytes of header length, the JSON header, then
    the tensors up to the largest end offset. A save killed mid-write leaves it shorter."""
    if not os.path.isfile(path):
        raise SavedFileError(f"{path}: not a file (a weights file is expected there)")
    size = os.path.getsize(path)
    with open(path, "rb") as handle:
        header_length = int.from_bytes(handle.read(8), "little") if size >= 8 else None
        header_bytes = handle.read(header_length) if header_length is not None and 8 + header_length <= size else None
    if header_bytes is None:
        raise SavedFileError(f"{path}: truncated ({size} bytes, shorter than its own header; an interrupted save?)")
    try:
        header = json.loads(header_bytes)
        data_length = max(
            (entry["data_offsets"][1] for name, entry in header.items() if name != "__metadata__"), default=0
        )
    except (ValueError, TypeError, KeyError, IndexError, AttributeError):
        raise SavedFileError(f"{path}: not a safetensors file (its header is unreadable)") from None
    expected = 8 + header_length + data_length
    if size != expected:
        state = "truncated" if size < expected else "longer than its header says"
        raise SavedFileError(f"{path}: {state} ({size} bytes, its header describes {expected}; an interrupted save?)")


def read_json(path: str) -> dict:
    """The JSON object in `path`; `SavedFileError` for anything else (a truncated file, an empty one)."""
    try:
        with open(path, encoding="utf-8") as handle:
            content = json.load(handle)
    except (ValueError, UnicodeDecodeError) as error:
        raise SavedFileError(f"{path}: not valid JSON ({error}; truncated by an interrupted save?)") from None
    if not isinstance(content, dict):
        raise SavedFileError(f"{path}: not a JSON object")
    return content


def check_model_files(directory) -> None:
    """A local model folder's weights and generation settings, before `from_pretrained` reads them."""
    if isinstance(directory, (str, os.PathLike)) and os.path.isdir(directory):
        check_weights(os.fspath(directory))
        if os.path.isfile(os.path.join(directory, GENERATION_CONFIG_FILE)):
            read_json(os.path.join(directory, GENERATION_CONFIG_FILE))
