"""Pretrained word vectors (word2vec, GloVe, fastText) into a model's embeddings: the tutorial's exercise "replace
the embedding with pre-trained word embeddings".

The text format: one word and its numbers per line, separated by spaces, optionally after a `count dim` first
line (word2vec, fastText `.vec`), plain or gzipped (`.gz`). Files run to gigabytes, so they are streamed. Each
word is normalized as the tokenizer normalizes text; where it is a word of the vocabulary, its vector replaces
that row of the embedding (the first vector wins when several words normalize alike: the files list frequent
words first). Rows of words the file does not hold keep their initialisation.
"""

import gzip
import io
import zlib

import torch
from transformers.utils import logging

from .commands import UsageError
from .tokenization_gru_seq2seq import SPECIAL_TOKENS

logger = logging.get_logger(__name__)


def open_vectors(path: str):
    try:
        handle = gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb")  # noqa: SIM115
        return io.TextIOWrapper(handle, encoding="utf-8", errors="replace")
    except OSError as error:
        raise UsageError(f"{path}: {error.strerror or error}") from None


def vector_width(path: str, flag: str) -> int:
    """The width of the vectors in `path`, read from its first lines (a one-line error where there are none)."""
    with open_vectors(path) as lines:
        for number, line in enumerate(lines, start=1):
            fields = line.split()
            if number == 1 and len(fields) == 2 and all(field.isdigit() for field in fields):
                return int(fields[1])  # the `count dim` header
            if len(fields) > 1:
                return len(fields) - 1
    raise UsageError(f"{flag} {path}: no word vectors in it (want lines of a word and its numbers)")


def check_gzip(path: str, flag: str) -> None:
    """A `.gz` file is gzip data that decompresses to its end (one pass, in blocks): a one-line error for plain
    text named `.gz` or a truncated or damaged file, before any long work rather than after data preparation."""
    if not path.endswith(".gz"):
        return
    try:
        with open(path, "rb") as raw:
            if raw.read(2) != b"\x1f\x8b":
                raise UsageError(f"{flag} {path}: named .gz, but not gzip data (plain text? name it .vec or .txt)")
        with gzip.open(path, "rb") as handle:
            while handle.read(1 << 22):
                pass
    except (EOFError, gzip.BadGzipFile, zlib.error) as error:
        raise UsageError(f"{flag} {path}: the gzip data is truncated or damaged ({error})") from None
    except OSError as error:
        raise UsageError(f"{flag} {path}: {error.strerror or error}") from None


def check_widths(source: str | None, target: str | None, hidden_size: int) -> None:
    """A one-line error, before any long work, where `--source_embeddings`/`--target_embeddings` are damaged gzip
    files or hold vectors of another width than the model's embeddings."""
    for flag, path in (("--source_embeddings", source), ("--target_embeddings", target)):
        if path is not None:
            check_gzip(path, flag)
        width = None if path is None else vector_width(path, flag)
        if width is not None and width != hidden_size:
            raise UsageError(
                f"{flag} {path}: vectors {width} wide, but --hidden_size is {hidden_size} (the embedding width is "
                "the GRU width in this model)"
            )


def load_word_vectors(
    embedding: torch.nn.Embedding, path: str, vocabulary: dict[str, int], normalize, flag: str
) -> tuple[int, int]:
    """Copy the vectors of `path` into the rows of `embedding` of the words of `vocabulary` (`normalize`: the
    tokenizer's normalizer). Returns (vocabulary words found, vocabulary size without the special tokens)."""
    width = embedding.embedding_dim
    found = torch.zeros(embedding.num_embeddings, dtype=torch.bool)
    with open_vectors(path) as lines, torch.no_grad():
        for number, line in enumerate(lines, start=1):
            word, *numbers = line.rstrip("\n").split(" ")
            numbers = [value for value in numbers if value]
            if number == 1 and not numbers[1:] and word.isdigit():
                continue  # the `count dim` header
            if len(numbers) != width:
                raise UsageError(
                    f"{flag} {path}, line {number}: a vector of {len(numbers)} numbers, but the model's embeddings "
                    f"are {width} wide (--hidden_size: the embedding width is the GRU width in this model)"
                )
            index = vocabulary.get(normalize(word))
            if index is None or found[index]:
                continue
            try:
                vector = torch.tensor([float(value) for value in numbers])
            except ValueError:
                raise UsageError(f"{flag} {path}, line {number}: not a word and {width} numbers") from None
            if not torch.isfinite(vector).all():
                raise UsageError(f"{flag} {path}, line {number}: the vector of {word!r} holds non-finite values")
            embedding.weight[index] = vector
            found[index] = True
    return int(found.sum()), len(vocabulary) - len(SPECIAL_TOKENS)


def load_pretrained_embeddings(model, tokenizer, source: str | None, target: str | None, freeze: bool) -> None:
    """`--source_embeddings`, `--target_embeddings` and `--freeze_embeddings`: load the files into the source and
    target embeddings, log how many of each vocabulary's words they held, and freeze the matrices loaded."""
    for flag, path, embedding, vocabulary in (
        ("--source_embeddings", source, model.get_input_embeddings(), tokenizer.get_vocab()),
        ("--target_embeddings", target, model.get_decoder().embedding, tokenizer.target_vocab()),
    ):
        if path is None:
            continue
        found, words = load_word_vectors(embedding, path, vocabulary, tokenizer.normalize, flag)
        logger.warning(f"{flag} {path}: vectors for {found} of the vocabulary's {words} words")
        if freeze:
            embedding.weight.requires_grad_(False)
