"""Tatoeba sentence pairs -> `datasets.DatasetDict` in the translation layout, as the tutorial prepares them.

The pipeline, in the tutorial's order, each step configurable with its values as defaults:
(1) normalize every sentence (`normalize_string`); (2) orient the pairs from `source_lang` to
`target_lang` (the files hold English, then French); (3) keep pairs whose sides both have 3..25
characters (or words); (4) build one vocabulary per language over the kept pairs, keeping words seen
at least `min_count` times (`Lang.trim`); (5) drop pairs holding a trimmed word (`unknown_pairs="keep"`
keeps them, those words read as `<unk>`); (6) split the pairs into train / validation / test grouped by
source sentence (all translations of one French sentence go to one split, so nothing leaks), seeded.
With `open_test`, the test split is held out right after (3) instead, so it keeps the sentences whose
words training never saw; with `open_test_all_lengths` too, before (3), so it keeps sentences of every length (a
uniform sample of the whole file), while training still reads only the pairs the length filter keeps. With a
subword vocabulary (`vocabulary="bpe"` or `"unigram"`) there are no unknown words: (4) and (5) are skipped,
and the vocabularies are trained after (6), on the training split only.

A separately given validation or test split (a file, or a dataset's own split) is used as given: only
normalized and length-filtered, its unknown words becoming `<unk>` when tokenized, as real inputs would;
nothing is carved from the training pairs for it.

Input files: the tutorial's `English<TAB>French` (2 columns), manythings' `fra.txt` (3 columns, the third
an attribution), or jsonl in the `{"translation": {"en": ..., "fr": ...}}` layout. Local paths or URLs;
a URL to a zip names its member the fsspec way, e.g. `TUTORIAL_DATA_URL`.

    python -m data_scripts.prepare_tatoeba --train_file ../shared/data/eng-fra.txt --output_dir data/tatoeba
"""

import dataclasses
import hashlib
import json
import os
import shutil
import sys
from dataclasses import field

import numpy as np
import pyarrow.compute as pc
from datasets import Dataset, DatasetDict, load_dataset
from transformers import HfArgumentParser

from modeling_gru_seq2seq.tokenization_gru_seq2seq import (
    DEFAULT_SUBWORD_VOCAB_SIZE,
    MIN_SUBWORD_VOCAB_SIZE,
    NORMALIZERS,
    SPECIAL_TOKENS,
    VOCABULARIES,
    GruSeq2SeqTokenizer,
    normalize_string,
    train_vocabulary,
    train_word_level,
)

# The PyTorch tutorial's archive holds data/eng-fra.txt; manythings' holds fra.txt (3 columns).
TUTORIAL_DATA_URL = "zip://data/eng-fra.txt::https://download.pytorch.org/tutorial/data.zip"
NORMALIZATIONS = tuple(NORMALIZERS)  # "ascii": the tutorial's
ENGLISH = "en"  # the first column of manythings' pair files (and the tutorial's eng-fra.txt)
LENGTH_UNITS = ("chars", "words")  # "chars": the tutorial's
UNKNOWN_PAIRS = ("drop", "keep")  # "drop": the tutorial's
DEFAULT_MIN_COUNT = 5  # the tutorial's trimming
PREPARE_RANGES = {  # field: (what it must be, the check)
    "min_length": (">= 1", lambda v: v >= 1),
    "max_length": (">= --min_length", lambda v: v >= 1),
    "min_count": (">= 1", lambda v: v >= 1),
    "validation_fraction": ("0 <= f < 1", lambda v: 0 <= v < 1),
    "test_fraction": ("0 <= f < 1", lambda v: 0 <= v < 1),
    "split_seed": (">= 0", lambda v: v >= 0),
    "vocab_size": (
        f">= {MIN_SUBWORD_VOCAB_SIZE} (the special and byte tokens, a piece)",
        lambda v: v is None or v >= MIN_SUBWORD_VOCAB_SIZE,
    ),
    "subword_dropout": ("0 <= p < 1", lambda v: 0 <= v < 1),
}


class DataFileError(ValueError):
    """A data file that cannot be read as sentence pairs; the message names the file and line."""


@dataclasses.dataclass
class PrepareArguments:
    """Knobs of the pipeline, with the tutorial's values as defaults: the flags of this module's command and of
    `run_translation.py` (both parse this dataclass with `HfArgumentParser`). Values outside `PREPARE_RANGES`
    raise `--flag: got V, want RANGE` when it is built."""

    source_lang: str = field(default="fr", metadata={"help": "Source language: a column of the pair file."})
    target_lang: str = field(default="en", metadata={"help": "Target language: a column of the pair file."})
    file_languages: list[str] | None = field(
        default=None,
        metadata={
            "help": "The pair file's two columns, in order (`en de` or `en,de`). Default: en, then whichever of "
            "--source_lang/--target_lang is not en (manythings files put English first). Two columns of one "
            "language (question -> answer, chat -> response) are labelled by role: --file_languages q,a "
            "--source_lang q --target_lang a."
        },
    )
    normalization: str = field(
        default="ascii",
        metadata={
            "help": "How sentences are normalized: ascii, the tutorial's (a-z and ,.!? only); unicode, for any "
            "script (NFKC, lowercase, letters and marks of every script and the zero-width joiners inside words "
            "kept, ,.!? and the CJK, Arabic, Spanish and Devanagari punctuation split off, Han and kana split "
            "into single characters); none, the text as written (NFKC only, "
            "whitespace collapsed: case, digits, accents and punctuation kept; subword vocabularies only). Saved "
            "with the tokenizer.",
            "choices": list(NORMALIZATIONS),
        },
    )
    min_length: int = field(default=3, metadata={"help": "Shortest side kept (the tutorial's filter)."})
    max_length: int = field(default=25, metadata={"help": "Longest side kept (the tutorial's filter)."})
    length_unit: str = field(
        default="chars", metadata={"help": "What the lengths count.", "choices": list(LENGTH_UNITS)}
    )
    min_count: int = field(
        default=DEFAULT_MIN_COUNT,
        metadata={"help": "Keep words seen at least this often (Lang.trim). Word vocabularies only."},
    )
    vocabulary: str = field(
        default="word",
        metadata={
            "help": "The vocabularies: word, the tutorial's (words seen --min_count times, others <unk>); bpe or "
            "unigram, subwords trained by tokenizers on the training split only, with byte fallback (no <unk>).",
            "choices": list(VOCABULARIES),
        },
    )
    vocab_size: int | None = field(
        default=None,
        metadata={
            "help": f"Each subword vocabulary's size, special and byte tokens included (default "
            f"{DEFAULT_SUBWORD_VOCAB_SIZE})."
        },
    )
    joint_vocabulary: bool = field(
        default=False,
        metadata={
            "help": "One subword vocabulary trained on both sides and used for both (the embeddings stay separate)."
        },
    )
    subword_dropout: float = field(
        default=0.0,
        metadata={
            "help": "BPE-dropout in training: each merge skipped with this probability, a new segmentation each "
            "time a training batch is built (never in evaluation or generation). bpe only."
        },
    )
    validation_fraction: float = field(
        default=0.05, metadata={"help": "Share of source sentences held out for validation (none with a given split)."}
    )
    test_fraction: float = field(
        default=0.05, metadata={"help": "Share of source sentences held out for test (none with a given split)."}
    )
    split_seed: int = field(default=42, metadata={"help": "Seed of the train/validation/test split."})
    skip_bad_lines: bool = field(default=False, metadata={"help": "Skip (and count) malformed lines."})
    autoencode: bool = field(
        default=False,
        metadata={
            "help": "Train an autoencoder: (source, source) pairs, the source side of the length-filtered pairs in "
            "both columns, trimmed as usual (the saved model is an ordinary model; its source vocabulary is a "
            "translation run's on the same file, see run_translation.py --init_encoder_from)."
        },
    )

    unknown_pairs: str = field(
        default="drop",
        metadata={
            "help": "Training pairs holding a trimmed word: drop them (the tutorial's), or keep them with those words "
            "read as <unk>, so that the model learns to write <unk> where it has no word (see --replace_unknown).",
            "choices": list(UNKNOWN_PAIRS),
        },
    )
    open_test: bool = field(
        default=False,
        metadata={
            "help": "Hold the test split's source sentences out right after the length filter, before the "
            "vocabularies are built and pairs with trimmed words dropped: the test then holds sentences with words "
            "never seen in training, as real inputs do (predict_bleu), and predict_bleu_in_vocab scores the pairs "
            "whose words are all in the vocabularies (the tutorial's case)."
        },
    )
    open_test_all_lengths: bool = field(
        default=False,
        metadata={
            "help": "With --open_test: hold the test split out before the length filter too, so it keeps source "
            "sentences of every length, a uniform sample of the whole file (training pairs are still length-"
            "filtered); predict_bleu_len_1_5 .. predict_bleu_len_21_plus score it by source length."
        },
    )

    # The version of --normalization's rules (`NORMALIZATION_VERSIONS`): not a flag; None, the current one, for new
    # vocabularies; a loaded tokenizer's own (`run_translation.py`, `gru-translate --samples` set it).
    normalization_version: int | None = field(default=None, init=False)

    def __post_init__(self):
        if self.length_unit not in LENGTH_UNITS:
            raise ValueError(f"--length_unit: got {self.length_unit!r}, want one of {', '.join(LENGTH_UNITS)}")
        for name, (want, check) in PREPARE_RANGES.items():
            if not check(getattr(self, name)):
                raise ValueError(f"--{name}: got {getattr(self, name)!r}, want {want}")
        if self.max_length < self.min_length:
            raise ValueError(f"--max_length: got {self.max_length}, want >= --min_length ({self.min_length})")
        if self.validation_fraction + self.test_fraction >= 1:
            raise ValueError(
                f"--validation_fraction + --test_fraction: got {self.validation_fraction} + {self.test_fraction}, "
                "want < 1 (something left to train on)"
            )
        if self.unknown_pairs not in UNKNOWN_PAIRS:
            raise ValueError(f"--unknown_pairs: got {self.unknown_pairs!r}, want one of {', '.join(UNKNOWN_PAIRS)}")
        if self.open_test and self.test_fraction == 0:
            raise ValueError("--open_test holds out the test split: give a --test_fraction above 0")
        if self.open_test_all_lengths and not self.open_test:
            raise ValueError("--open_test_all_lengths is how --open_test holds its split out: add --open_test")
        if self.normalization not in NORMALIZATIONS:
            raise ValueError(f"--normalization: got {self.normalization!r}, want one of {', '.join(NORMALIZATIONS)}")
        self._check_vocabulary()
        if self.source_lang == self.target_lang:
            raise ValueError(
                f"--source_lang and --target_lang are both {self.source_lang!r}: for two columns of one language "
                "(question -> answer, chat -> response), label the columns by role, e.g. --file_languages q,a "
                "--source_lang q --target_lang a"
            )
        if self.file_languages is None:
            if ENGLISH not in (self.source_lang, self.target_lang):
                raise ValueError(
                    f"--file_languages: give the pair file's two columns in order (the default, {ENGLISH} then the "
                    f"other language, needs --source_lang or --target_lang to be {ENGLISH})"
                )
            other = self.target_lang if self.source_lang == ENGLISH else self.source_lang
            self.file_languages = [ENGLISH, other]
        elif len(self.file_languages) == 1:  # `en,de`
            self.file_languages = [lang.strip() for lang in self.file_languages[0].split(",")]
        if len(self.file_languages) != 2 or len(set(self.file_languages)) != 2:
            raise ValueError(f"--file_languages: got {self.file_languages}, want two different column names")
        for lang in (self.source_lang, self.target_lang):
            if lang not in self.file_languages:
                raise ValueError(f"language {lang!r} is not one of the file's columns {self.file_languages}")

    def _check_vocabulary(self) -> None:
        """The vocabulary flags agree with each other (one line naming both, before any file is opened)."""
        if self.vocabulary not in VOCABULARIES:
            raise ValueError(f"--vocabulary: got {self.vocabulary!r}, want one of {', '.join(VOCABULARIES)}")
        if self.vocabulary == "word":
            for flag, given in (
                ("--vocab_size", self.vocab_size is not None),
                ("--joint_vocabulary", self.joint_vocabulary),
                ("--subword_dropout", self.subword_dropout > 0),
                ("--normalization none", self.normalization == "none"),
            ):
                if given:
                    raise ValueError(f"{flag} is for subword vocabularies: add --vocabulary bpe (or unigram)")
            return
        if self.unknown_pairs == "keep":
            raise ValueError(
                f"--unknown_pairs keep is for word vocabularies: a {self.vocabulary} vocabulary has no unknown words "
                "(leave --unknown_pairs out)"
            )
        if self.subword_dropout > 0 and self.vocabulary != "bpe":
            raise ValueError(
                f"--subword_dropout samples BPE segmentations (BPE-dropout): --vocabulary {self.vocabulary} has no "
                "sampling in tokenizers; use --vocabulary bpe, or leave --subword_dropout out"
            )


@dataclasses.dataclass
class PreparedCorpus:
    """`dataset`: splits with a `translation` column; `tokenizer`: both vocabularies; `stats`: the figures."""

    dataset: DatasetDict
    tokenizer: GruSeq2SeqTokenizer
    stats: dict


def read_pairs(path: str, args: PrepareArguments) -> Dataset:
    """Read a pair file (TSV or jsonl, path or URL) into normalized columns named after the languages.

    The TSV layout (2 or 3 tab-separated columns) is taken from the first line that is not blank; a later
    line with another column count is a bad line: a `DataFileError` naming file and line, or skipped and
    counted when `args.skip_bad_lines`. Blank lines are ignored and counted. The counts go to stderr, so
    that they never mix with a command's output.
    """
    if path.endswith((".json", ".jsonl")):
        return _read_jsonl(path, args)
    lines = load_dataset("text", data_files=path, split="train", encoding="utf-8-sig", **_cache_key(path))
    is_blank = pc.equal(pc.utf8_trim_whitespace(lines.data.column("text")), "")
    layout_index = pc.index(is_blank, False).as_py()  # the first line that is not blank, -1 if none
    if layout_index < 0:
        raise DataFileError(f"{path}: no sentence pairs (the file is empty or blank)")
    layout_line = layout_index + 1
    num_columns = lines[layout_index]["text"].count("\t") + 1
    if num_columns not in (2, 3):
        raise DataFileError(
            f"{path}:{layout_line}: expected 2 tab-separated columns (English<TAB>French) or 3 (with "
            f"attribution), found {num_columns}"
        )
    first_lang, second_lang = args.file_languages
    header = layout_index == 0 and is_header(lines[0]["text"], args)

    def parse(batch, indices):
        columns = {first_lang: [], second_lang: [], "line": []}
        for text, index in zip(batch["text"], indices, strict=True):
            if not text.strip() or (header and index == 0):
                continue
            fields = text.split("\t")
            if len(fields) != num_columns:
                if args.skip_bad_lines:
                    continue
                raise DataFileError(
                    f"{path}:{index + 1}: expected {num_columns} tab-separated columns like line {layout_line}, "
                    f"found {len(fields)}: {text[:80]!r} (pass --skip_bad_lines to skip such lines)"
                )
            columns[first_lang].append(normalize_string(fields[0], args.normalization, args.normalization_version))
            columns[second_lang].append(normalize_string(fields[1], args.normalization, args.normalization_version))
            columns["line"].append(index + 1)
        return columns

    pairs = lines.map(
        parse,
        batched=True,
        with_indices=True,
        remove_columns=["text"],
        keep_in_memory=True,
        desc="Normalizing pairs",
    )
    blank = pc.sum(is_blank).as_py() or 0
    bad = len(lines) - blank - header - len(pairs)
    if header:
        print(f"Skipped line 1, a header: {lines[0]['text'][:80]!r}", file=sys.stderr)
    if blank:
        print(f"Ignored {blank} blank lines", file=sys.stderr)
    if bad:
        print(f"Skipped {bad} bad lines (column count differs from line {layout_line})", file=sys.stderr)
    return pairs


LANGUAGE_NAMES = {"english", "french", "en", "fr", "eng", "fra"}


def is_header(line: str, args: PrepareArguments) -> bool:
    """Whether a pair file's first line is a header: its first two cells both name languages (`English<TAB>French`,
    `en<TAB>fr`, the `--source_lang`/`--target_lang` codes), case-insensitively."""
    names = LANGUAGE_NAMES | {lang.lower() for lang in (*args.file_languages, args.source_lang, args.target_lang)}
    cells = [cell.strip().lower() for cell in line.split("\t")[:2]]
    return len(cells) == 2 and all(cell in names for cell in cells)


def _read_jsonl(path: str, args: PrepareArguments) -> Dataset:
    cache_key = _cache_key(path)
    if "://" not in path:
        _check_json_lines(path)
    records = load_dataset("json", data_files=path, split="train", **cache_key)
    return normalize_translation_records(records, args, path)


def normalize_translation_records(records: Dataset, args: PrepareArguments, name: str) -> Dataset:
    """Records in the `{"translation": {lang: text}}` layout (a jsonl file, a Hub dataset) -> normalized
    language columns, as `read_pairs` gives."""
    if "translation" not in records.column_names:
        raise DataFileError(f'{name}: expected records like {{"translation": {{"fr": ..., "en": ...}}}}')
    langs = (args.source_lang, args.target_lang)

    def parse(batch, indices):
        columns = {lang: [] for lang in langs}
        for pair, index in zip(batch["translation"], indices, strict=True):
            if not pair or any(not isinstance(pair.get(lang), str) for lang in langs):
                raise DataFileError(f"{name}:{index + 1}: `translation` lacks a {langs[0]!r} or {langs[1]!r} string")
            for lang in langs:
                columns[lang].append(normalize_string(pair[lang], args.normalization, args.normalization_version))
        columns["line"] = [index + 1 for index in indices]
        return columns

    return records.map(
        parse,
        batched=True,
        with_indices=True,
        remove_columns=records.column_names,
        keep_in_memory=True,
        desc="Normalizing pairs",
    )


def _check_json_lines(path: str) -> None:
    """Each non-blank line of a local jsonl file is a JSON object, else `file:line: not valid JSON (...)`
    (`datasets` would stop with a long traceback that names no line)."""
    with open(path, encoding="utf-8-sig") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError as error:
                raise DataFileError(f"{path}:{number}: not valid JSON ({error})") from None
            if not isinstance(record, dict):
                raise DataFileError(f'{path}:{number}: not a JSON object, want {{"translation": {{...}}}}')


def _cache_key(path: str) -> dict:
    """`load_dataset` keyword arguments that key its cache on a local file's content: by default it keys on the
    path and modification time, so a file rewritten with its old mtime (`cp -p`, `rsync -a`, untar) would be
    read from the cache as it was. Checks the file first (see `_check_local_file`); URLs are left to `datasets`."""
    digest = _check_local_file(path)
    return {} if digest is None else {"name": f"sha256-{digest}"}


def file_digest(path: str) -> str:
    """The SHA-256 of a local file's bytes (hex), as `_cache_key` and a run's recorded arguments use it."""
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def _check_local_file(path: str) -> str | None:
    """Fail early, naming the line, on a missing file or invalid UTF-8; the content's SHA-256 (first 16 hex
    digits). URLs are left to `datasets` (None)."""
    if "://" in path:
        return None
    if not os.path.isfile(path):
        raise DataFileError(f"{path}: no such file")
    if os.path.getsize(path) == 0:
        raise DataFileError(f"{path}: no sentence pairs (the file is empty)")
    with open(path, "rb") as handle:
        data = handle.read()
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = _line_number(data, error.start)
        raise DataFileError(f"{path}:{line}: invalid UTF-8 ({error.reason} at byte {error.start})") from None
    return hashlib.sha256(data).hexdigest()[:16]


def _line_number(data: bytes, offset: int) -> int:
    """1-based line of byte `offset`, counting LF, CRLF and a lone CR as line ends, as the text reader does
    (universal newlines)."""
    before = data[:offset]
    return before.count(b"\n") + before.count(b"\r") - before.count(b"\r\n") + 1


def filter_length(pairs: Dataset, args: PrepareArguments) -> Dataset:
    """Keep pairs whose every side has `min_length`..`max_length` characters or words."""
    langs = (args.source_lang, args.target_lang)
    measure = len if args.length_unit == "chars" else (lambda text: len(text.split(" ")))

    def keep(batch):
        return [
            all(args.min_length <= measure(text) <= args.max_length for text in texts)
            for texts in zip(*(batch[lang] for lang in langs), strict=True)
        ]

    return pairs.filter(keep, batched=True, keep_in_memory=True, desc="Length filter")


def autoencoded(pairs: Dataset, args: PrepareArguments) -> Dataset:
    """Under `--autoencode`, the pairs with their source sentences in the target column too. Applied after the
    length filter, so that an autoencoder's source sentences, and so its source vocabulary, are a translation
    run's on the same file (`run_translation.py --init_encoder_from` needs them equal)."""
    if not args.autoencode:
        return pairs
    source, target = args.source_lang, args.target_lang
    return pairs.map(lambda batch: {target: batch[source]}, batched=True, keep_in_memory=True, desc="Autoencoding")


def drop_unknown_words(pairs: Dataset, tokenizer: GruSeq2SeqTokenizer, args: PrepareArguments) -> Dataset:
    """Keep pairs whose every word is in its language's vocabulary (the tutorial's `keep_pairs` loop)."""
    vocabularies = {
        args.source_lang: set(tokenizer.get_vocab()) - set(SPECIAL_TOKENS),
        args.target_lang: set(tokenizer.target_vocab()) - set(SPECIAL_TOKENS),
    }

    def keep(batch):
        known = [[set(text.split(" ")) <= vocabularies[lang] for text in batch[lang]] for lang in vocabularies]
        return [all(flags) for flags in zip(*known, strict=True)]

    return pairs.filter(keep, batched=True, keep_in_memory=True, desc="Dropping pairs with trimmed words")


def split_by_source(pairs: Dataset, args: PrepareArguments) -> DatasetDict:
    """Split into train / validation / test by source sentence, seeded: a source's pairs share one split."""
    sources = sorted(set(pairs[args.source_lang]))
    order = np.random.default_rng(args.split_seed).permutation(len(sources))
    num_test = round(len(sources) * args.test_fraction)
    num_validation = round(len(sources) * args.validation_fraction)
    split_of = {}
    for rank, index in enumerate(order):
        split_of[sources[index]] = (
            "test" if rank < num_test else "validation" if rank < num_test + num_validation else "train"
        )
    splits = {}
    for split in ("train", "validation", "test"):
        splits[split] = pairs.filter(
            lambda batch, split=split: [split_of[text] == split for text in batch[args.source_lang]],
            batched=True,
            keep_in_memory=True,
            desc=f"Selecting {split}",
        )
    return DatasetDict(splits)


def to_translation_layout(pairs: Dataset, args: PrepareArguments) -> Dataset:
    """Flat language columns -> the Hugging Face layout `{"translation": {source: ..., target: ...}}`."""
    langs = (args.source_lang, args.target_lang)

    def nest(batch):
        return {
            "translation": [
                dict(zip(langs, texts, strict=True)) for texts in zip(*(batch[lang] for lang in langs), strict=True)
            ]
        }

    return pairs.map(nest, batched=True, remove_columns=pairs.column_names, keep_in_memory=True)


def prepare_evaluation_files(args: PrepareArguments, **files: str | Dataset | None) -> dict[str, Dataset]:
    """Splits given as files or as records already read (`validation=path`, `test=dataset`, see
    `normalize_translation_records`): normalized and length-filtered only."""
    return {
        split: _nonempty(
            autoencoded(filter_length(read_pairs(data, args) if isinstance(data, str) else data, args), args),
            data if isinstance(data, str) else f"the {split} split",
            f"the length filter ({_length_rule(args)})",
        )
        for split, data in files.items()
        if data is not None
    }


def prepare_tatoeba(
    train_file: str | Dataset,
    args: PrepareArguments | None = None,
    validation_file: str | Dataset | None = None,
    test_file: str | Dataset | None = None,
    tokenizer: GruSeq2SeqTokenizer | None = None,
) -> PreparedCorpus:
    """Run the tutorial's data preparation on `train_file`, printing its figures as it goes.

    `train_file` may also be a `Dataset` already read (e.g. by `normalize_translation_records`).
    With `tokenizer` given (e.g. a saved model's), its vocabularies are used instead of building new ones.
    `validation_file` / `test_file` (paths or records already read) are the validation / test splits as
    given: only normalized and length-filtered, and nothing is carved from the training pairs for them.
    """
    args = args or PrepareArguments()
    source = args.source_lang
    pairs = read_pairs(train_file, args) if isinstance(train_file, str) else train_file
    train_file = train_file if isinstance(train_file, str) else "the training data"
    stats = {"pairs_read": len(pairs)}
    print(f"Read {len(pairs)} sentence pairs")
    if args.open_test and test_file is not None:
        raise ValueError("--open_test holds a test split out of the training pairs, but a test split is given")
    open_test = None
    if args.open_test_all_lengths:  # before the length filter: a test of every length
        pairs, open_test = hold_out_open_test(pairs, args, train_file)
        open_test = autoencoded(open_test, args)
        print(f"Held out {len(open_test)} pairs of every length for the open test, before the length filter")
    pairs = _nonempty(filter_length(pairs, args), train_file, f"the length filter ({_length_rule(args)})")
    pairs = autoencoded(pairs, args)
    stats["pairs_after_length_filter"] = len(pairs)
    print(f"Filtered to {len(pairs)} pairs ({_length_rule(args)})")
    if args.open_test and open_test is None:  # held out before the vocabularies are built: words new to the model
        pairs, open_test = hold_out_open_test(pairs, args, train_file)
        print(f"Held out {len(open_test)} pairs for the open test, before the vocabularies are built")

    vocabulary = args.vocabulary if tokenizer is None else tokenizer.vocabulary
    if vocabulary == "word":
        tokenizer, trimmed = _word_vocabularies(pairs, args, tokenizer, stats, train_file)
    else:  # no unknown words: every pair is kept, the vocabularies come from the training split below
        if args.min_count != DEFAULT_MIN_COUNT:
            print(f"Note: --min_count {args.min_count} is ignored: a {vocabulary} vocabulary has no unknown words")
        trimmed = pairs
        print(f"Kept all {len(pairs)} pairs (a {vocabulary} vocabulary has no unknown words)")
    stats["pairs_kept"] = len(trimmed)

    carve = dataclasses.replace(  # the fractions held out of the training pairs: none for a given split
        args,
        validation_fraction=0.0 if validation_file is not None else args.validation_fraction,
        test_fraction=0.0 if test_file is not None or open_test is not None else args.test_fraction,
        open_test=False,
        open_test_all_lengths=False,
    )
    splits = split_by_source(trimmed, carve)
    _check_split_sizes(splits, carve, train_file, num_sources=len(set(trimmed[source])))
    if open_test is not None:
        splits["test"] = open_test
    if tokenizer is None:
        tokenizer = train_subword_vocabularies(splits["train"], args)
        stats.update({f"vocab_size_{lang}": size for lang, size in _vocab_sizes(tokenizer).items()})
    splits.update(prepare_evaluation_files(args, validation=validation_file, test=test_file))
    dataset = DatasetDict({name: to_translation_layout(split, args) for name, split in splits.items()})
    stats.update({f"{name}_pairs": len(split) for name, split in dataset.items()})
    print("Split: " + ", ".join(f"{name} {len(split)}" for name, split in dataset.items()))
    return PreparedCorpus(dataset, tokenizer, stats)


def hold_out_open_test(pairs: Dataset, args: PrepareArguments, path: str) -> tuple[Dataset, Dataset]:
    """`(rest, test)`: `--open_test`'s split of `pairs` by source sentence (`test_fraction` of the sources)."""
    held_out = dataclasses.replace(args, validation_fraction=0.0)
    parts = split_by_source(pairs, held_out)
    _check_split_sizes(parts, held_out, path, num_sources=len(set(pairs[args.source_lang])))
    return parts["train"], parts["test"]


def _word_vocabularies(pairs: Dataset, args: PrepareArguments, tokenizer, stats: dict, train_file: str):
    """The tutorial's steps (4) and (5): `(tokenizer, pairs)`, the word vocabularies built over `pairs` (unless
    `tokenizer` is given) and the pairs without trimmed words (all of them with `unknown_pairs="keep"`)."""
    source, target = args.source_lang, args.target_lang
    if tokenizer is None:
        batches = {
            lang: lambda lang=lang: (pairs[i : i + 10_000][lang] for i in range(0, len(pairs), 10_000))
            for lang in (source, target)
        }
        # The tutorial's counts include PAD, SOS and EOS but not our extra <unk>.
        normalization = args.normalization
        indexed = {
            lang: train_word_level(batches[lang](), normalization=normalization).get_vocab_size() - 1
            for lang in (source, target)
        }
        kept = {
            lang: train_vocabulary(batches[lang](), "word", args.min_count, normalization=normalization)
            for lang in (source, target)
        }
        tokenizer = GruSeq2SeqTokenizer.from_vocabularies(kept[source], kept[target], source, target, normalization)
        print(
            f"Indexed {indexed[source]} words in input language ({source}), "
            f"{indexed[target]} words in output ({target})"
        )
        for lang in (source, target):
            kept_words = kept[lang].get_vocab_size() - len(SPECIAL_TOKENS)
            all_words = indexed[lang] - 3
            print(
                f"keep_words {kept_words} / {all_words} = {kept_words / all_words:.4f} ({lang}, min_count "
                f"{args.min_count})"
            )
            stats[f"words_indexed_{lang}"] = indexed[lang]
            stats[f"words_kept_{lang}"] = kept_words

    if args.unknown_pairs == "keep":
        print(f"Kept all {len(pairs)} pairs, trimmed words read as <unk> (--unknown_pairs keep)")
        return tokenizer, pairs
    trimmed = _nonempty(drop_unknown_words(pairs, tokenizer, args), train_file, "dropping pairs with trimmed words")
    print(f"Trimmed from {len(pairs)} pairs to {len(trimmed)}, {len(trimmed) / len(pairs):.4f} of total")
    return tokenizer, trimmed


def train_subword_vocabularies(train: Dataset, args: PrepareArguments) -> GruSeq2SeqTokenizer:
    """The source and target subword vocabularies (`args.vocabulary`, `args.vocab_size` tokens each), trained on
    the training split `train` only (flat language columns), or one trained on both sides with
    `args.joint_vocabulary`."""
    source, target = args.source_lang, args.target_lang
    size = args.vocab_size or DEFAULT_SUBWORD_VOCAB_SIZE

    def batches(*langs):
        return (train[i : i + 10_000][lang] for lang in langs for i in range(0, len(train), 10_000))

    def train_one(*langs):
        return train_vocabulary(batches(*langs), args.vocabulary, vocab_size=size, normalization=args.normalization)

    if args.joint_vocabulary:
        joint = train_one(source, target)
        vocabularies = (joint, joint)
    else:
        vocabularies = (train_one(source), train_one(target))
    tokenizer = GruSeq2SeqTokenizer.from_vocabularies(*vocabularies, source, target, args.normalization)
    sizes = _vocab_sizes(tokenizer)
    sides = f"one on both sides, {sizes[source]}" if args.joint_vocabulary else f"{sizes[source]} {source}, "
    sides += "" if args.joint_vocabulary else f"{sizes[target]} {target}"
    print(f"Trained {args.vocabulary} vocabularies on the training split ({len(train)} pairs): {sides} tokens")
    return tokenizer


def _vocab_sizes(tokenizer: GruSeq2SeqTokenizer) -> dict[str, int]:
    return {tokenizer.source_lang: tokenizer.source_vocab_size, tokenizer.target_lang: tokenizer.target_vocab_size}


def tokenize_translation(
    dataset: Dataset | DatasetDict,
    tokenizer: GruSeq2SeqTokenizer,
    max_source_length: int | None = None,
    max_target_length: int | None = None,
    source_prefix: str = "",
    pad_to_max_length: bool = False,
    label_pad_token_id: int = -100,
    num_proc: int | None = None,
) -> Dataset | DatasetDict:
    """Add `input_ids`, `attention_mask` and `labels` (each ending in `<eos>`, truncated when asked).

    As transformers' translation example: `source_prefix` goes before every source; `pad_to_max_length`
    pads to the maximum lengths (`model_max_length` where none is given), the labels with
    `label_pad_token_id` (-100: no loss there).
    """
    settings = TokenizeSettings(
        max_source_length, max_target_length, source_prefix, pad_to_max_length, label_pad_token_id
    )
    return dataset.map(
        lambda batch: encode_pairs(batch["translation"], tokenizer, settings),
        batched=True,
        keep_in_memory=True,
        num_proc=num_proc,
        desc="Tokenizing",
    )


@dataclasses.dataclass(frozen=True)
class TokenizeSettings:
    """How pairs become model inputs (`tokenize_translation`'s arguments)."""

    max_source_length: int | None = None
    max_target_length: int | None = None
    source_prefix: str = ""
    pad_to_max_length: bool = False
    label_pad_token_id: int = -100


def encode_pairs(pairs: list[dict], tokenizer: GruSeq2SeqTokenizer, settings: TokenizeSettings) -> dict:
    """`{"input_ids", "attention_mask", "labels"}` of `pairs` (translation-layout dicts)."""
    source, target = tokenizer.source_lang, tokenizer.target_lang
    padding = "max_length" if settings.pad_to_max_length else False
    sources = [settings.source_prefix + pair[source] for pair in pairs]
    inputs = tokenizer(
        sources,
        max_length=settings.max_source_length,
        padding=padding,
        truncation=settings.max_source_length is not None,
    )
    labels = tokenizer(
        text_target=[pair[target] for pair in pairs],
        max_length=settings.max_target_length,
        padding=padding,
        truncation=settings.max_target_length is not None,
    )["input_ids"]
    if settings.pad_to_max_length and settings.label_pad_token_id != tokenizer.pad_token_id:
        labels = [[settings.label_pad_token_id if i == tokenizer.pad_token_id else i for i in row] for row in labels]
    return {**inputs, "labels": labels}


MODEL_COLUMNS = ("input_ids", "attention_mask", "labels")


class SubwordDropoutCollator:
    """Training batches segmented anew each time they are built (BPE-dropout): each feature's `translation` is
    tokenized by `tokenizer.with_subword_dropout(dropout)`, then `collator` pads the batch. The training
    dataset keeps its `translation` column for it (and its fixed `input_ids` for grouping by length);
    evaluation, generation and the pipeline never see a sampled segmentation."""

    def __init__(self, tokenizer: GruSeq2SeqTokenizer, dropout: float, collator, settings: TokenizeSettings):
        self.tokenizer = tokenizer.with_subword_dropout(dropout)
        self.collator, self.settings = collator, settings

    def __call__(self, features: list[dict]) -> dict:
        encoded = encode_pairs([feature["translation"] for feature in features], self.tokenizer, self.settings)
        rows = zip(*(encoded[column] for column in MODEL_COLUMNS), strict=True)
        return self.collator([dict(zip(MODEL_COLUMNS, row, strict=True)) for row in rows])


def export_pairs(dataset: DatasetDict, output_dir: str, file_format: str, args: PrepareArguments) -> list[str]:
    """Write each split as `{split}.jsonl` (translation layout) or `{split}.tsv` (the file's column order)."""
    paths = []
    for name, split in dataset.items():
        path = os.path.join(output_dir, f"{name}.{file_format}")
        if file_format == "jsonl":
            split.select_columns(["translation"]).to_json(path, lines=True, force_ascii=False)
        else:
            with open(path, "w", encoding="utf-8") as handle:
                for pair in split["translation"]:
                    handle.write("\t".join(pair[lang] for lang in args.file_languages) + "\n")
        paths.append(path)
    return paths


def save_corpus(
    corpus: PreparedCorpus,
    output_dir: str,
    exports: tuple[str, ...] = (),
    overwrite: bool = False,
    args: PrepareArguments | None = None,
) -> None:
    """Save the dataset (`save_to_disk`), the tokenizer (`tokenizer/`) and exports into `output_dir`.

    Everything is written to `.{name}.partial` beside it and renamed into place when complete; a replaced
    `output_dir` is first renamed to `.{name}.old` and deleted last. So a run killed at any point leaves
    either no `output_dir` (the next run redoes the work) or a complete one, old or new, and the next run
    clears the hidden leftovers.
    """
    check_output_dir(output_dir, overwrite)
    staging, old = _sibling_paths(output_dir)
    for leftover in (staging, old):
        shutil.rmtree(leftover, ignore_errors=True)
    os.makedirs(staging)
    try:
        corpus.dataset.save_to_disk(staging)
        corpus.tokenizer.save_pretrained(os.path.join(staging, "tokenizer"))
        for file_format in exports:
            export_pairs(corpus.dataset, staging, file_format, args or PrepareArguments())
        if os.path.exists(output_dir):
            os.replace(output_dir, old)
        os.replace(staging, output_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # after an error; gone already after the rename
    shutil.rmtree(old, ignore_errors=True)


def check_output_dir(output_dir: str, overwrite: bool) -> None:
    """`output_dir` can take the corpus: absent, or a directory to replace with `overwrite` (never a file)."""
    if os.path.exists(output_dir) and not os.path.isdir(output_dir):
        raise FileExistsError(
            f"--output_dir: got {output_dir!r}, want a directory (or a path to create one): it is "
            "a file, which --overwrite_output_dir does not replace"
        )
    if os.path.exists(output_dir) and not overwrite:
        raise FileExistsError(f"{output_dir} already exists (pass --overwrite_output_dir to replace it)")


def _sibling_paths(output_dir: str) -> tuple[str, str]:
    """The staging folder and the folder holding a replaced output while it is deleted, beside `output_dir`."""
    parent, name = os.path.split(os.path.abspath(output_dir))
    os.makedirs(parent, exist_ok=True)
    return os.path.join(parent, f".{name}.partial"), os.path.join(parent, f".{name}.old")


def _nonempty(pairs: Dataset, path: str, step: str) -> Dataset:
    if len(pairs) == 0:
        raise DataFileError(f"{path}: no pairs left after {step}")
    return pairs


def _check_split_sizes(splits: DatasetDict, args: PrepareArguments, path: str, num_sources: int) -> None:
    """A split asked for (a fraction above 0) that got no pair is an error, not an empty split that looks
    like a result (and that `load_from_disk` cannot read back)."""
    for split, fraction in (("validation", args.validation_fraction), ("test", args.test_fraction)):
        if fraction > 0 and len(splits[split]) == 0:
            raise DataFileError(
                f"{path}: the {split} split is empty ({fraction:g} of {num_sources} source sentences rounds to "
                f"none): give more pairs, a --{split}_file, or a {split} fraction of 0"
            )


def _length_rule(args: PrepareArguments) -> str:
    return f"{args.min_length}..{args.max_length} {args.length_unit} per side"


@dataclasses.dataclass
class PrepareCommandArguments(PrepareArguments):
    """The command's files, then the pipeline's knobs (`PrepareArguments`)."""

    train_file: str | None = field(
        default=None, metadata={"help": f"Pair file, jsonl or URL (e.g. {TUTORIAL_DATA_URL})."}
    )
    validation_file: str | None = field(default=None, metadata={"help": "The validation split, used as given."})
    test_file: str | None = field(default=None, metadata={"help": "The test split, used as given."})
    output_dir: str | None = field(default=None, metadata={"help": "Where the corpus and tokenizer go."})
    overwrite_output_dir: bool = field(default=False, metadata={"help": "Replace an existing output folder."})
    export: list[str] = field(
        default_factory=list, metadata={"help": "Also write pair files.", "choices": ["jsonl", "tsv"]}
    )


def with_ranges_in_help(parser: HfArgumentParser, ranges: dict) -> HfArgumentParser:
    """Append each flag's valid range (`{flag: (want, ...)}`) to its `--help` text."""
    for action in parser._actions:
        if action.dest in ranges:
            action.help = f"{action.help or ''} Valid: {ranges[action.dest][0]}.".strip()
    return parser


def parse_args(argv=None) -> PrepareCommandArguments:
    parser = with_ranges_in_help(HfArgumentParser(PrepareCommandArguments), PREPARE_RANGES)
    parser.description = __doc__.split("\n\n")[0]
    (args,) = parser.parse_args_into_dataclasses(argv)
    for name in ("train_file", "output_dir"):
        if getattr(args, name) is None:
            parser.error(f"--{name} is required")
    return args


def main(argv=None) -> int:
    try:
        args = parse_args(argv)
        check_output_dir(args.output_dir, args.overwrite_output_dir)
        corpus = prepare_tatoeba(args.train_file, args, args.validation_file, args.test_file)
        corpus.dataset = tokenize_translation(corpus.dataset, corpus.tokenizer)
        save_corpus(corpus, args.output_dir, tuple(args.export), args.overwrite_output_dir, args)
    except (DataFileError, FileExistsError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # a full or read-only disk while saving: nothing half-written is left
        print(
            f"error: --output_dir {args.output_dir}: cannot save there ({error.strerror or error})",
            file=sys.stderr,
        )
        return 1
    print(f"Saved to {args.output_dir} (dataset: load_from_disk; tokenizer: {args.output_dir}/tokenizer)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
