"""Word-level tokenizer holding one vocabulary per language, as the tutorial's two `Lang` objects.

The source vocabulary encodes inputs; the target vocabulary encodes `text_target` (labels) and decodes
generated ids, as Marian's tokenizer does. Both are `tokenizers` WordLevel models trained with a minimum
word count (the tutorial's `Lang.trim`), share one normalizer (the tutorial's `normalize_string`) and
append `<eos>` to every sequence. Ids: `<pad>`=0, `<sos>`=1, `<eos>`=2 as the tutorial, plus `<unk>`=3 so
unseen words map to a known id instead of crashing.
"""

import json
import os
import re
import unicodedata
from collections.abc import Iterable, Iterator

from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast
from transformers.tokenization_utils_base import VERY_LARGE_INTEGER
from transformers.utils import logging

from .saved_files import SavedFileError, read_json

logger = logging.get_logger(__name__)

PAD_TOKEN, SOS_TOKEN, EOS_TOKEN, UNK_TOKEN = "<pad>", "<sos>", "<eos>", "<unk>"
SPECIAL_TOKENS = [PAD_TOKEN, SOS_TOKEN, EOS_TOKEN, UNK_TOKEN]  # list position = id
EOS_ID = SPECIAL_TOKENS.index(EOS_TOKEN)
# `model_max_length`: what `truncation=True` cuts to (tokens, `<eos>` included). The GRU has no limit, but the
# tutorial's sentences are short; `gru-translate --max_source_length` defaults to it as well.
DEFAULT_MAX_SOURCE_LENGTH = 100
BLANK_CATEGORIES = {"Zs", "Zl", "Zp", "Cc", "Cf"}  # spaces, separators, control and format (zero-width) characters

# The tutorial's normalize_string: lowercase, strip, NFD and drop combining marks, split `,.!?` off
# with a space on each side, every other run of non-letters to one space, no space at either end.
# `Replace` has no back-references, so punctuation is split off with zero-width matches on both sides.
NORMALIZER = normalizers.Sequence(
    [
        normalizers.Lowercase(),
        normalizers.Strip(),
        normalizers.NFD(),
        normalizers.StripAccents(),
        normalizers.Replace(Regex(r"(?=[,.!?])"), " "),
        normalizers.Replace(Regex(r"(?<=[,.!?])"), " "),
        normalizers.Replace(Regex(r"[^a-zA-Z,.!?]+"), " "),
        normalizers.Replace(Regex(r"^ +| +$"), ""),
    ]
)
# For any script: NFKC (which also turns full-width ，！？ into ,!?), lowercase, split off the punctuation of
# `UNICODE_PUNCTUATION` (`,.!?`, the CJK full stop and comma `。、`, the Arabic question mark, comma and semicolon
# `؟،؛`, the Spanish `¿¡`, the Devanagari danda `।`) and every Han, Hiragana and Katakana character (no spaces in
# those scripts: each character is a word), keep letters and marks of every script and the zero-width (non-)joiners
# inside words (ZWNJ sits inside ordinary Persian and Hindi words), every other run to one space.
UNICODE_PUNCTUATION = ",.!?。、؟،؛¿¡।"
UNICODE_SPLIT = f"[{UNICODE_PUNCTUATION}\\p{{Han}}\\p{{Hiragana}}\\p{{Katakana}}]"
JOINERS = "\u200c\u200d"  # zero-width non-joiner, zero-width joiner
UNICODE_NORMALIZER = normalizers.Sequence(
    [
        normalizers.NFKC(),
        normalizers.Lowercase(),
        normalizers.Replace(Regex(f"(?={UNICODE_SPLIT})"), " "),
        normalizers.Replace(Regex(f"(?<={UNICODE_SPLIT})"), " "),
        normalizers.Replace(Regex(f"[^\\p{{L}}\\p{{M}}{JOINERS}{UNICODE_PUNCTUATION}]+"), " "),
        normalizers.Replace(Regex(f"(?<![\\p{{L}}\\p{{M}}])[{JOINERS}]+|[{JOINERS}]+(?![\\p{{L}}\\p{{M}}])"), " "),
        normalizers.Replace(Regex(r" {2,}"), " "),
        normalizers.Replace(Regex(r"^ +| +$"), ""),
    ]
)
# `unicode` before version 2: joiners split words, and `؟¿¡،؛।` were dropped. Models saved with it keep it.
UNICODE_SPLIT_V1 = r"[,.!?。、\p{Han}\p{Hiragana}\p{Katakana}]"
UNICODE_NORMALIZER_V1 = normalizers.Sequence(
    [
        normalizers.NFKC(),
        normalizers.Lowercase(),
        normalizers.Replace(Regex(f"(?={UNICODE_SPLIT_V1})"), " "),
        normalizers.Replace(Regex(f"(?<={UNICODE_SPLIT_V1})"), " "),
        normalizers.Replace(Regex(r"[^\p{L}\p{M},.!?。、]+"), " "),
        normalizers.Replace(Regex(r"^ +| +$"), ""),
    ]
)
# The text as written (case, digits, accents, apostrophes, punctuation): NFKC, whitespace runs to one space, no
# space at either end. For subword vocabularies only (a word vocabulary would hold every spelling of every word).
NONE_NORMALIZER = normalizers.Sequence(
    [normalizers.NFKC(), normalizers.Replace(Regex(r"\s+"), " "), normalizers.Replace(Regex(r"^ +| +$"), "")]
)
NORMALIZERS = {"ascii": NORMALIZER, "unicode": UNICODE_NORMALIZER, "none": NONE_NORMALIZER}  # `ascii`: the tutorial's
NORMALIZATION_VERSIONS = {"ascii": 1, "unicode": 2, "none": 1}  # of `NORMALIZERS`, saved with every tokenizer
EARLIER_NORMALIZERS = {("unicode", 1): UNICODE_NORMALIZER_V1}  # (name, version): what older models were saved with

SUBWORD_VOCABULARIES = ("bpe", "unigram")
VOCABULARIES = ("word", *SUBWORD_VOCABULARIES)  # `word`: the tutorial's
MODEL_VOCABULARIES = {"WordLevel": "word", "BPE": "bpe", "Unigram": "unigram"}  # `tokenizers` model -> vocabulary
BYTE_TOKENS = [f"<0x{byte:02X}>" for byte in range(256)]  # byte fallback's tokens, ids 4..259
MIN_SUBWORD_VOCAB_SIZE = len(SPECIAL_TOKENS) + len(BYTE_TOKENS) + 1  # and at least one learned piece
DEFAULT_SUBWORD_VOCAB_SIZE = 8000
WORD_BOUNDARY = "\u2581"  # `▁`, the mark a subword piece carries where a space was before it (sentencepiece's)


def normalizer_of(normalization: str, version: int | None = None) -> normalizers.Normalizer:
    """The normalizer `normalization` names, at `version` (default: the current one, `NORMALIZERS`)."""
    if version is None or version == NORMALIZATION_VERSIONS[normalization]:
        return NORMALIZERS[normalization]
    return EARLIER_NORMALIZERS[(normalization, version)]


def normalize_string(text: str, normalization: str = "ascii", version: int | None = None) -> str:
    """The tutorial's `normalize_string` (`"ascii"`): `"Ça va, Marie-Ève ?"` -> `"ca va , marie eve ?"`; or
    `"unicode"`, for every script: `"Привет, мир!"` -> `"привет , мир !"`, `"私は学生です。"` ->
    `"私 は 学 生 で す 。"`; or `"none"`, the text as written: `" J'ai  3 chats. "` -> `"J'ai 3 chats."`. `version`:
    the rules of an earlier version (`EARLIER_NORMALIZERS`), as a model saved with them reads its inputs."""
    return normalizer_of(normalization, version).normalize_str(text)


def normalization_of(tokenizer: Tokenizer) -> tuple[str, int]:
    """`(name, version)` of `tokenizer`'s normalizer among the current and earlier ones (`("ascii", 1)` for any
    other). For tokenizers saved before the name and version were saved in `tokenizer_config.json`."""
    state = tokenizer.normalizer.__getstate__() if tokenizer.normalizer is not None else None
    known = {(name, NORMALIZATION_VERSIONS[name]): normalizer for name, normalizer in NORMALIZERS.items()}
    known.update(EARLIER_NORMALIZERS)
    return next((key for key, normalizer in known.items() if normalizer.__getstate__() == state), ("ascii", 1))


def train_word_level(
    texts: Iterable[str] | Iterator[list[str]], min_count: int = 1, normalization: str = "ascii"
) -> Tokenizer:
    """Build a word-level `tokenizers.Tokenizer` over `texts` keeping words seen at least `min_count` times.

    `texts` may be strings or batches (lists) of strings, already normalized or not (the normalizer,
    `NORMALIZERS[normalization]`, runs on them either way and is saved with the tokenizer). Words are split on
    spaces, as `Lang.index_words`; the special tokens take ids 0-3.
    """
    tokenizer = Tokenizer(models.WordLevel(unk_token=UNK_TOKEN))
    tokenizer.normalizer = NORMALIZERS[normalization]
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"$A {EOS_TOKEN}", special_tokens=[(EOS_TOKEN, EOS_ID)]
    )
    trainer = trainers.WordLevelTrainer(min_frequency=min_count, special_tokens=SPECIAL_TOKENS, show_progress=False)
    tokenizer.train_from_iterator(texts, trainer=trainer)
    return tokenizer


def vocabulary_of(tokenizer: Tokenizer) -> str:
    """`"word"`, `"bpe"` or `"unigram"`: the kind of `tokenizer`'s vocabulary."""
    return MODEL_VOCABULARIES[type(tokenizer.model).__name__]


def train_subword(
    texts: Iterable[str] | Iterator[list[str]],
    vocabulary: str = "bpe",
    vocab_size: int = DEFAULT_SUBWORD_VOCAB_SIZE,
    normalization: str = "none",
) -> Tokenizer:
    """Build a `bpe` or `unigram` `tokenizers.Tokenizer` of `vocab_size` tokens over `texts` (strings or batches),
    with `tokenizers`' own trainer, then byte fallback: the 4 special tokens, the 256 byte tokens, then the learned
    pieces (`vocab_size` counts all three). Pieces never cross a space; the space before a piece is its `▁`
    (`Metaspace`), and decoding joins the pieces back into text, bytes included, so that
    `decode(encode(text)) == normalize(text)` for any text."""
    if vocabulary not in SUBWORD_VOCABULARIES:
        raise ValueError(f"vocabulary: got {vocabulary!r}, want one of {', '.join(SUBWORD_VOCABULARIES)}")
    if vocab_size < MIN_SUBWORD_VOCAB_SIZE:
        raise ValueError(
            f"--vocab_size: got {vocab_size}, want >= {MIN_SUBWORD_VOCAB_SIZE} (the {len(SPECIAL_TOKENS)} special "
            f"tokens, the {len(BYTE_TOKENS)} byte tokens and at least one piece)"
        )
    learned = vocab_size - len(BYTE_TOKENS)  # the trainers' size counts the special tokens
    if vocabulary == "bpe":
        tokenizer = Tokenizer(models.BPE(unk_token=UNK_TOKEN))
        trainer = trainers.BpeTrainer(
            vocab_size=learned,
            special_tokens=SPECIAL_TOKENS,
            limit_alphabet=learned - len(SPECIAL_TOKENS),  # rarer characters are read as bytes
            show_progress=False,
        )
    else:
        tokenizer = Tokenizer(models.Unigram())
        trainer = trainers.UnigramTrainer(
            vocab_size=learned, special_tokens=SPECIAL_TOKENS, unk_token=UNK_TOKEN, show_progress=False
        )
    tokenizer.normalizer = NORMALIZERS[normalization]
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement=WORD_BOUNDARY, prepend_scheme="always")
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"$A {EOS_TOKEN}", special_tokens=[(EOS_TOKEN, EOS_ID)]
    )
    tokenizer.decoder = decoders.Sequence(  # as Llama's: `▁` to a space, bytes to text, no space in front
        [decoders.Replace(WORD_BOUNDARY, " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)]
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    return _with_byte_fallback(tokenizer)


def _with_byte_fallback(tokenizer: Tokenizer) -> Tokenizer:
    """`tokenizer` (a trained BPE or Unigram model) with the byte tokens after the special tokens and
    `byte_fallback` on: a character no piece covers becomes its UTF-8 bytes instead of `<unk>`."""
    state = json.loads(tokenizer.to_str())
    model = state["model"]
    model["byte_fallback"] = True
    special = len(SPECIAL_TOKENS)
    if model["type"] == "BPE":
        pieces = sorted(model["vocab"], key=model["vocab"].get)
        tokens = pieces[:special] + BYTE_TOKENS + [piece for piece in pieces[special:] if piece not in BYTE_TOKENS]
        model["vocab"] = {token: index for index, token in enumerate(tokens)}
    else:  # Unigram: byte tokens only ever stand in for an unknown character, so they score below every piece
        lowest = min((score for _, score in model["vocab"]), default=0.0)
        pieces = [entry for entry in model["vocab"][special:] if entry[0] not in BYTE_TOKENS]
        model["vocab"] = model["vocab"][:special] + [[token, lowest - 10.0] for token in BYTE_TOKENS] + pieces
        model["unk_id"] = SPECIAL_TOKENS.index(UNK_TOKEN)
    return Tokenizer.from_str(json.dumps(state))


def train_vocabulary(
    texts, vocabulary: str = "word", min_count: int = 1, vocab_size: int | None = None, normalization: str = "ascii"
) -> Tokenizer:
    """One vocabulary of any kind over `texts`: `word` (`train_word_level`, words seen `min_count` times) or a
    subword one (`train_subword`, `vocab_size` tokens, default 8000)."""
    if vocabulary == "word":
        return train_word_level(texts, min_count, normalization)
    return train_subword(texts, vocabulary, vocab_size or DEFAULT_SUBWORD_VOCAB_SIZE, normalization)


class GruSeq2SeqTokenizer(PreTrainedTokenizerFast):
    """Tokenizer with a source and a target vocabulary, of words or subwords (files `tokenizer.json` and
    `target_tokenizer.json`).

    `tokenizer(src_texts, text_target=tgt_texts)` gives `input_ids` and `attention_mask` from the source
    vocabulary and `labels` from the target vocabulary, each ending in `<eos>`. `decode`, `batch_decode` and
    `convert_ids_to_tokens` read target ids (generated ones, `labels`); with `use_source_tokenizer=True` (as
    Marian's tokenizer) source ids (`input_ids`). An id outside the vocabulary read raises `ValueError`.
    `decode(..., skip_special_tokens=True)` drops `<pad>`, `<sos>` and `<eos>` but keeps `<unk>`, so a
    translation never silently loses a word it could not name. Target-side ids (for `generate`'s
    `bad_words_ids`, `suppress_tokens`, ...) come from `tokenizer(text_target=...)`; `tokenizer(...)` gives
    source ids. `model_max_length` is 100 (`DEFAULT_MAX_SOURCE_LENGTH`), so `truncation=True` without
    `max_length` cuts there; every cut is logged as a warning naming the sequences and their lengths.

    Args:
        tokenizer_file (`str`, *optional*): path of the source `tokenizers` JSON file.
        target_tokenizer_file (`str`, *optional*): path of the target `tokenizers` JSON file.
        tokenizer_object, target_tokenizer_object (`tokenizers.Tokenizer`, *optional*): in-memory
            tokenizers, used instead of the files (see `from_vocabularies`).
        source_lang (`str`, defaults to `"fr"`), target_lang (`str`, defaults to `"en"`): language codes.
        normalization (`str`, *optional*): the name of the vocabularies' normalizer, a key of `NORMALIZERS`, saved
            in `tokenizer_config.json` (tokenizers saved before it was are recognised by their normalizer).
    """

    vocab_files_names = {"tokenizer_file": "tokenizer.json", "target_tokenizer_file": "target_tokenizer.json"}
    model_input_names = ["input_ids", "attention_mask"]

    def __init__(
        self,
        tokenizer_file: str | None = None,
        target_tokenizer_file: str | None = None,
        tokenizer_object: Tokenizer | None = None,
        target_tokenizer_object: Tokenizer | None = None,
        source_lang: str = "fr",
        target_lang: str = "en",
        normalization: str | None = None,
        normalization_version: int | None = None,
        pad_token: str = PAD_TOKEN,
        bos_token: str = SOS_TOKEN,
        eos_token: str = EOS_TOKEN,
        unk_token: str = UNK_TOKEN,
        **kwargs,
    ):
        source = tokenizer_object or _load_tokenizer_file(tokenizer_file, "tokenizer_file")
        target = target_tokenizer_object or _load_tokenizer_file(target_tokenizer_file, "target_tokenizer_file")
        self.source_lang, self.target_lang = source_lang, target_lang
        if normalization is not None and normalization not in NORMALIZERS:
            raise ValueError(f"normalization: got {normalization!r}, want one of {', '.join(NORMALIZERS)}")
        if normalization is None or normalization_version is None:  # saved before they were: its normalizer says
            found = normalization_of(source)
            if normalization is None:
                normalization, normalization_version = found
            else:
                normalization_version = (
                    found[1] if found[0] == normalization else NORMALIZATION_VERSIONS[normalization]
                )
        self._normalization, self._normalization_version = normalization, normalization_version
        kwargs.setdefault("clean_up_tokenization_spaces", False)
        if kwargs.get("model_max_length", VERY_LARGE_INTEGER) >= VERY_LARGE_INTEGER:  # unset, or saved unset
            kwargs["model_max_length"] = DEFAULT_MAX_SOURCE_LENGTH
        kwargs.setdefault("split_special_tokens", True)  # a typed "<pad>" is a word, not the padding id
        super().__init__(
            tokenizer_object=source,
            source_lang=source_lang,
            target_lang=target_lang,
            normalization=normalization,
            normalization_version=normalization_version,
            pad_token=pad_token,
            bos_token=bos_token,
            eos_token=eos_token,
            unk_token=unk_token,
            **kwargs,
        )
        self._source_tokenizer = self._tokenizer
        self._target_tokenizer = target

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, **kwargs):
        """`PreTrainedTokenizerFast.from_pretrained`, a local folder's vocabulary files checked first (one
        `SavedFileError` line for a damaged one: transformers reads `tokenizer.json` itself before `__init__`)."""
        if isinstance(pretrained_model_name_or_path, (str, os.PathLike)) and os.path.isdir(
            pretrained_model_name_or_path
        ):
            for name in cls.vocab_files_names.values():
                path = os.path.join(pretrained_model_name_or_path, name)
                if os.path.isfile(path):
                    read_json(path)
        return super().from_pretrained(pretrained_model_name_or_path, *args, **kwargs)

    @classmethod
    def convert_to_native_format(cls, trust_remote_code=False, **kwargs):
        # Both vocabularies are read in `__init__`; the default would rebuild the source one as BPE.
        return kwargs

    @classmethod
    def from_vocabularies(
        cls,
        source: Tokenizer,
        target: Tokenizer,
        source_lang: str = "fr",
        target_lang: str = "en",
        normalization: str | None = None,
    ) -> "GruSeq2SeqTokenizer":
        """Wrap two trained tokenizers (see `train_vocabulary`); `normalization`: the name of their normalizer
        (default: recognised from it)."""
        return cls(
            tokenizer_object=source,
            target_tokenizer_object=target,
            source_lang=source_lang,
            target_lang=target_lang,
            normalization=normalization,
        )

    def with_subword_dropout(self, dropout: float) -> "GruSeq2SeqTokenizer":
        """A copy whose BPE vocabularies sample a segmentation at each call (BPE-dropout, Provilkov et al. 2020:
        each merge is skipped with probability `dropout`), for building training batches only. The `tokenizers`
        Unigram model has no sampling: `unigram` is refused."""
        if self.vocabulary != "bpe":
            raise ValueError(
                f"--subword_dropout samples BPE segmentations (BPE-dropout); a {self.vocabulary} vocabulary has no "
                "sampling in `tokenizers`: use --vocabulary bpe, or leave --subword_dropout out"
            )
        sampled = [Tokenizer.from_str(side.to_str()) for side in (self._source_tokenizer, self._target_tokenizer)]
        for side in sampled:
            side.model.dropout = dropout
        return type(self)(
            tokenizer_object=sampled[0],
            target_tokenizer_object=sampled[1],
            source_lang=self.source_lang,
            target_lang=self.target_lang,
            normalization=self.normalization,
            normalization_version=self.normalization_version,
            model_max_length=self.model_max_length,
        )

    @property
    def source_vocab_size(self) -> int:
        return self._source_tokenizer.get_vocab_size()

    @property
    def target_vocab_size(self) -> int:
        return self._target_tokenizer.get_vocab_size()

    def target_vocab(self) -> dict[str, int]:
        return self._target_tokenizer.get_vocab()

    @property
    def normalization(self) -> str:
        """The normalizer the vocabularies were built with, a key of `NORMALIZERS` (`"ascii"`: the tutorial's)."""
        return self._normalization

    @property
    def normalization_version(self) -> int:
        """The version of `normalization`'s rules the vocabularies were built with (`NORMALIZATION_VERSIONS`)."""
        return self._normalization_version

    @property
    def vocabulary(self) -> str:
        """The kind of vocabulary: `"word"` (the tutorial's), `"bpe"` or `"unigram"` (subwords)."""
        return vocabulary_of(self._source_tokenizer)

    def normalize(self, text: str) -> str:
        """`text` as the tokenizer normalizes it before splitting it into words or pieces."""
        return self._source_tokenizer.normalizer.normalize_str(text)

    def target_token_texts(self) -> dict[int, str | bytes]:
        """Each target id's text as it shows in a decoded translation: `" word"` for a word (words are joined with
        spaces), a piece with its `▁` as a space, a byte token as its byte (`bytes`), a special token as itself."""
        texts = {}
        for token, index in self._target_tokenizer.get_vocab().items():
            if token in SPECIAL_TOKENS:
                texts[index] = token
            elif self.vocabulary == "word":
                texts[index] = " " + token
            elif token in BYTE_TOKENS:
                texts[index] = bytes([int(token[3:5], 16)])  # `<0xNN>`
            else:
                texts[index] = token.replace(WORD_BOUNDARY, " ")
        return texts

    def __call__(self, text=None, text_pair=None, text_target=None, *args, **kwargs):
        """`PreTrainedTokenizerFast.__call__`; sources and targets given together must pair up one to one (a list
        of 3 sources with 2 targets would otherwise pair the first two silently)."""
        if (
            isinstance(text, (list, tuple))
            and isinstance(text_target, (list, tuple))
            and len(text) != len(text_target)
        ):
            raise ValueError(
                f"text and text_target: got {len(text)} sources and {len(text_target)} targets, want one target "
                "per source"
            )
        return super().__call__(text, text_pair, text_target, *args, **kwargs)

    def is_blank(self, text: str) -> bool:
        """Whether `text` holds nothing to translate: no character after normalization but spaces and invisible
        ones (zero-width spaces and joiners, other format and control characters)."""
        return all(unicodedata.category(char) in BLANK_CATEGORIES for char in self.normalize(text))

    def _switch_to_input_mode(self):
        self._tokenizer = self._source_tokenizer

    def _switch_to_target_mode(self):
        self._tokenizer = self._target_tokenizer

    def _encode_plus(self, *args, verbose: bool = True, **kwargs):
        """Encode as `PreTrainedTokenizerFast`; with `verbose`, a warning for the sequences truncation cut
        (unless `return_overflowing_tokens` asked for the cut parts)."""
        encoding = super()._encode_plus(*args, verbose=verbose, **kwargs)
        if not verbose or kwargs.get("return_overflowing_tokens"):
            return encoding
        cut = [(i, e) for i, e in enumerate(encoding.encodings or []) if e.overflowing]
        if cut:
            side = "target" if self._tokenizer is self._target_tokenizer else "source"
            lengths = ", ".join(
                f"#{i}: {len(e.ids) + sum(len(o.ids) - sum(o.special_tokens_mask) for o in e.overflowing)}"
                for i, e in cut[:5]
            )
            more = f" and {len(cut) - 5} more" if len(cut) > 5 else ""
            logger.warning(
                f"truncation cut {len(cut)} of {len(encoding.encodings)} {side} sequences to "
                f"{len(cut[0][1].ids)} tokens (tokens before the cut: {lengths}{more})"
            )
        return encoding

    def convert_ids_to_tokens(self, ids, skip_special_tokens: bool = False, use_source_tokenizer: bool = False):
        """Tokens of `ids` (an int or a list of ints): target-vocabulary ones, or with `use_source_tokenizer=True`
        source-vocabulary ones (as Marian's tokenizer). An id outside that vocabulary raises `ValueError`."""
        vocabulary = self._vocabulary_of(use_source_tokenizer)
        if isinstance(ids, int):
            return vocabulary.id_to_token(self._checked_ids([ids], use_source_tokenizer)[0])
        ids = self._checked_ids(ids, use_source_tokenizer)
        hidden = self._skipped_ids() if skip_special_tokens else set()
        return [vocabulary.id_to_token(i) for i in ids if i not in hidden]

    def _decode(
        self,
        token_ids,
        skip_special_tokens: bool = False,
        clean_up_tokenization_spaces: bool | None = None,
        use_source_tokenizer: bool = False,
        **kwargs,
    ) -> str:
        """Text of target ids, or with `use_source_tokenizer=True` of source ids (`decode`, `batch_decode`)."""
        if isinstance(token_ids, int):
            token_ids = [token_ids]
        token_ids = self._checked_ids(token_ids, use_source_tokenizer)
        if skip_special_tokens:
            hidden = self._skipped_ids()
            token_ids = [i for i in token_ids if i not in hidden]
        text = self._vocabulary_of(use_source_tokenizer).decode(token_ids, skip_special_tokens=False)
        if self.vocabulary != "word":  # a lone `▁` piece generated at either end or twice: text as normalized
            text = re.sub(" {2,}", " ", text).strip(" ")
        if clean_up_tokenization_spaces is None:
            clean_up_tokenization_spaces = self.clean_up_tokenization_spaces
        return self.clean_up_tokenization(text) if clean_up_tokenization_spaces else text

    def _vocabulary_of(self, use_source_tokenizer: bool) -> Tokenizer:
        return self._source_tokenizer if use_source_tokenizer else self._target_tokenizer

    def _checked_ids(self, ids, use_source_tokenizer: bool) -> list[int]:
        """`ids` as ints, each in the chosen vocabulary, else one `ValueError` line (the `tokenizers` library
        decodes an unknown id to nothing, and a source id read as a target one gives some other word)."""
        ids = [int(i) for i in ids]
        size = self._vocabulary_of(use_source_tokenizer).get_vocab_size(with_added_tokens=True)
        if ids and (min(ids) < 0 or max(ids) >= size):
            bad = next(i for i in ids if not 0 <= i < size)
            side = "source" if use_source_tokenizer else "target"
            hint = "" if use_source_tokenizer else " (source ids, as tokenizer(...) gives: use_source_tokenizer=True)"
            raise ValueError(f"token id {bad} is outside the {side} vocabulary (ids 0..{size - 1}){hint}")
        return ids

    def _skipped_ids(self) -> set[int]:
        """Ids that `skip_special_tokens` drops: `<pad>`, `<sos>`, `<eos>` (not `<unk>`)."""
        return {self.pad_token_id, self.bos_token_id, self.eos_token_id}

    def _save_pretrained(self, save_directory, file_names, legacy_format=None, filename_prefix=None):
        prefix = filename_prefix + "-" if filename_prefix else ""
        source_file = f"{save_directory}/{prefix}{self.vocab_files_names['tokenizer_file']}"
        target_file = f"{save_directory}/{prefix}{self.vocab_files_names['target_tokenizer_file']}"
        self._source_tokenizer.save(source_file)
        self._target_tokenizer.save(target_file)
        return file_names + (source_file, target_file)


def _load_tokenizer_file(path: str | None, argument: str) -> Tokenizer:
    """The `tokenizers` file at `path`, after `saved_files.read_json` (one line for a missing or damaged file)."""
    if path is None:
        raise ValueError(f"GruSeq2SeqTokenizer needs `{argument}` (a tokenizers JSON file) or the matching object.")
    read_json(path)
    try:
        return Tokenizer.from_file(path)
    except Exception as error:  # tokenizers raises its own Exception type for a file it cannot read
        raise SavedFileError(f"{path}: not a tokenizers file ({str(error).strip().splitlines()[0]})") from None


GruSeq2SeqTokenizer.register_for_auto_class("AutoTokenizer")
