"""Translate sentences with a trained model, batched, with the attention each output word paid; and the
`gru-translate` command around it (the tutorial's `evaluate`, `evaluate_randomly` and `show_attention`).

    gru-translate runs/fr-en "Je suis content." "Il fait froid."     # one translation per line
    gru-translate runs/fr-en --input_file sentences.txt > translations.txt
    gru-translate runs/fr-en                       # stdin a terminal: the tutorial's `> ` prompt, `< ` answers
    gru-translate runs/fr-en "elle a cinq ans ." --show_attention attention.png
    gru-translate runs/fr-en --samples pairs.tsv -n 10     # `> source`, `= reference`, `< output`, BLEU
    gru-translate runs/fr-en --replace_unknown "Je m'appelle Zorglub."  # <unk> -> the source word it attended

MODEL is a directory written by `run_translation.py` (or `save_pretrained`) or a Hub id. With a word vocabulary,
words outside it are read as `<unk>` and named on stderr (a subword vocabulary has no unknown words). The GRU
has no length limit of its own, but a model knows the lengths it was trained on (25 characters in the
tutorial's setting): a source longer than `--max_source_length` tokens (100, `<eos>` included) is cut there,
with a warning. A line with no words
translates to an empty line, so output line `i` always answers input line `i`.
"""

import argparse
import contextlib
import dataclasses
import errno
import itertools
import logging
import os
import random
import re
import signal
import sys

import datasets
import numpy as np
import torch
import transformers

from data_scripts.prepare_tatoeba import DataFileError, PrepareArguments, read_pairs

from .commands import UsageError
from .loading import ModelLoadError, load_model_and_tokenizer
from .metrics import corpus_scores
from .pipeline_gru_seq2seq import (
    REPLACE_UNKNOWN_WORDS_ONLY,
    cross_attention,
    most_attended_words,
    replace_unknown_words,
)
from .plotting import matplotlib_available, plot_attention
from .tokenization_gru_seq2seq import DEFAULT_MAX_SOURCE_LENGTH


@dataclasses.dataclass
class Translation:
    """One translated sentence.

    `text`: the output words (with `replace_unknown`, each `<unk>` as the source word it attended most);
    `source_tokens`: source words as the model read them (`<unk>` for unknown ones) plus `<eos>`;
    `output_tokens`: generated words up to and with `<eos>` (when reached); `attention`:
    `(len(output_tokens), len(source_tokens))` weights, each row summing to 1.
    """

    text: str
    source_tokens: list[str]
    output_tokens: list[str]
    attention: np.ndarray | None = None


@torch.no_grad()
def translate(
    model,
    tokenizer,
    sentences: list[str],
    batch_size: int = 64,
    num_beams: int = 1,
    max_new_tokens: int | None = None,
    output_attentions: bool = False,
    max_source_length: int | None = None,
    replace_unknown: bool = False,
) -> list[Translation]:
    """Translate `sentences`, `batch_size` at a time, returned in input order.

    Batches hold sentences of similar length (less padding, and a batch stops decoding sooner). A sentence
    with no words after normalization (or only invisible characters) translates to `""`. `max_source_length`
    cuts longer sources (in tokens, `<eos>` included); `None` keeps them whole. `output_attentions` adds the
    attention of each output word, from a teacher-forced pass over the chosen words, so it works with beam
    search too.
    `replace_unknown` writes each output `<unk>` as the source word (as normalized) that received the most
    attention at that step, from the same pass.
    """
    if replace_unknown and tokenizer.vocabulary != "word":
        raise ValueError(REPLACE_UNKNOWN_WORDS_ONLY)
    if not sentences:
        return []
    model.eval()
    encodings = tokenizer(sentences, truncation=max_source_length is not None, max_length=max_source_length).encodings
    source_lengths = np.array([len(encoding.ids) for encoding in encodings])
    order = np.argsort(source_lengths, kind="stable")
    blank = np.array([tokenizer.is_blank(sentence) for sentence in sentences])
    order = order[(source_lengths[order] > 1) & ~blank[order]]  # only `<eos>`, or invisible: nothing to translate
    translations = [_empty_translation(tokenizer, output_attentions) for _ in sentences]
    # max_new_tokens replaces the model's max_length (passing both would log a warning)
    length_limit = {} if max_new_tokens is None else {"max_new_tokens": max_new_tokens, "max_length": None}
    for start in range(0, len(order), batch_size):
        indices = order[start : start + batch_size].tolist()
        inputs = tokenizer.pad({"input_ids": [encodings[i].ids for i in indices]}, return_tensors="pt")
        inputs = inputs.to(model.device)
        sequences = model.generate(**inputs, num_beams=num_beams, **length_limit)
        texts = tokenizer.batch_decode(sequences, skip_special_tokens=True)
        output_lengths = _lengths_with_eos(sequences[:, 1:], tokenizer.eos_token_id).tolist()
        attention = None
        if output_attentions or replace_unknown:
            attention = cross_attention(model, inputs["input_ids"], inputs["attention_mask"], sequences)
        if replace_unknown:
            words = most_attended_words(model, inputs["input_ids"], inputs["attention_mask"], sequences, attention)
            texts = _with_source_words(texts, sequences, words, [sentences[i] for i in indices], tokenizer)
        attention = attention.cpu().numpy() if output_attentions else None
        for row, index in enumerate(indices):
            output_length, source_length = output_lengths[row], len(encodings[index].ids)
            translations[index] = Translation(
                text=texts[row],
                source_tokens=encodings[index].tokens,
                output_tokens=tokenizer.convert_ids_to_tokens(sequences[row, 1 : 1 + output_length].tolist()),
                attention=None if attention is None else attention[row, :output_length, :source_length],
            )
    return translations


@torch.no_grad()
def unknown_replaced(
    model, tokenizer, sources: list[str], sequences: np.ndarray, batch_size: int = 64, max_source_length=None
) -> list[str]:
    """Generated ids `sequences` (one row per source, the start token first, padded), decoded as `translate`
    with `replace_unknown` decodes them: each `<unk>` as the source word that received the most attention at
    its step, from a teacher-forced pass over `batch_size` rows at a time. `max_source_length` cuts the sources
    as they were cut for generation."""
    model.eval()
    texts = tokenizer.batch_decode(sequences, skip_special_tokens=True)
    truncation = {"truncation": max_source_length is not None, "max_length": max_source_length}
    for start in range(0, len(sources), batch_size):
        rows = slice(start, start + batch_size)
        inputs = tokenizer(sources[rows], padding=True, return_tensors="pt", **truncation).to(model.device)
        ids = torch.as_tensor(sequences[rows], device=model.device)
        words = most_attended_words(model, inputs["input_ids"], inputs["attention_mask"], ids)
        texts[rows] = _with_source_words(texts[rows], ids, words, sources[rows], tokenizer)
    return texts


def _with_source_words(texts, sequences, word_indices, sources, tokenizer) -> list[str]:
    """`replace_unknown_words` for each row, with the sources' words as the tokenizer normalizes them."""
    rows = zip(texts, sequences.tolist(), word_indices.tolist(), sources, strict=True)
    return [
        replace_unknown_words(text, ids, indices, tokenizer.normalize(source).split(), tokenizer)
        for text, ids, indices, source in rows
    ]


def _empty_translation(tokenizer, output_attentions: bool) -> Translation:
    attention = np.zeros((0, 1), dtype=np.float32) if output_attentions else None
    return Translation("", [tokenizer.eos_token], [], attention)


def _lengths_with_eos(output_ids: torch.Tensor, eos_token_id: int) -> torch.Tensor:
    """`(batch,)` number of tokens up to and with the first `<eos>` of each `(batch, steps)` row (all
    `steps` where none); the padding `generate` puts after `<eos>` is not counted."""
    is_eos = output_ids == eos_token_id
    first_eos = is_eos.int().argmax(dim=1)
    return torch.where(is_eos.any(dim=1), first_eos + 1, output_ids.shape[1])


# The command line.


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="gru-translate",
        description="Translate sentences with a trained gru-seq2seq model (arguments, --input_file, stdin, "
        "or a prompt when stdin is a terminal), or show random samples of a pair file with BLEU/chrF.",
    )
    parser.add_argument("model", metavar="MODEL", help="a saved model directory or a Hub id")
    parser.add_argument("sentences", metavar="SENTENCE", nargs="*", help="sentences to translate")
    parser.add_argument("--input_file", metavar="F", help="one sentence per line ('-' for stdin)")
    parser.add_argument("--batch_size", type=int, default=64, help="sentences per generate() call")
    parser.add_argument("--num_beams", type=int, default=1, help="beam width (1: greedy)")
    parser.add_argument("--max_new_tokens", type=int, help="output limit (default: the model's)")
    parser.add_argument(
        "--max_source_length",
        type=int,
        default=DEFAULT_MAX_SOURCE_LENGTH,
        help="cut longer sources to this many tokens, <eos> included, with a warning",
    )
    parser.add_argument(
        "--show_attention",
        metavar="PATH",
        help="heatmap(s): a .png file for one sentence, else a folder of attention_<i>.png",
    )
    parser.add_argument(
        "--samples",
        metavar="F",
        help="an English<TAB>French pair file: show random pairs "
        "as > source, = reference, < output, and BLEU/chrF over the whole file",
    )
    parser.add_argument(
        "--replace_unknown",
        action="store_true",
        help="write each output <unk> as the source word (as normalized) that received the most attention there",
    )
    parser.add_argument("-n", dest="num_samples", metavar="N", type=int, default=10, help="pairs shown with --samples")
    parser.add_argument("--seed", type=int, help="seed of the --samples draw (default: a new draw each run)")
    args = parser.parse_intermixed_args(argv)  # options before, between or after the sentences
    counts = {
        "--batch_size": args.batch_size,
        "--num_beams": args.num_beams,
        "--max_new_tokens": args.max_new_tokens,
        "-n": args.num_samples,
    }
    for flag, value in counts.items():
        if value is not None and value < 1:
            parser.error(f"{flag} must be at least 1")
    if args.max_source_length < 2:
        parser.error("--max_source_length must be at least 2 (a word and <eos>)")
    if args.samples and (args.sentences or args.input_file):
        parser.error("--samples translates its own file: give no SENTENCE and no --input_file")
    if args.sentences and args.input_file:
        parser.error("give sentences as arguments or --input_file, not both")
    return args


def load_model(name: str):
    """Model and tokenizer from a directory or a Hub id (checked, see `loading`), on the GPU when there is one."""
    model, tokenizer = load_model_and_tokenizer(name)
    return model.to("cuda" if torch.cuda.is_available() else "cpu"), tokenizer


@contextlib.contextmanager
def quiet_tokenizer(tokenizer):
    """The tokenizer's own truncation warnings silenced while the command runs (it notes each cut sentence
    itself), and its logger's level restored afterwards (`main` may run inside a longer process)."""
    log = logging.getLogger(type(tokenizer).__module__)
    previous = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(previous)


def read_lines(path: str) -> list[str]:
    """Lines of a UTF-8 file (`-`: stdin), blank ones kept so that outputs stay aligned with inputs. LF, CRLF
    and a lone CR (old Mac files) each end a line, as the data reader reads them."""
    try:
        if path == "-":
            data = sys.stdin.buffer.read()
        else:
            with open(path, "rb") as handle:
                data = handle.read()
        text = data.decode("utf-8-sig")
    except OSError as error:
        raise UsageError(f"{path}: {error.strerror}") from None
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise UsageError(f"{path}:{line}: invalid UTF-8") from None
    lines = re.split(r"\r\n|\r|\n", text)
    return lines[:-1] if lines[-1] == "" else lines


def input_notes(sentence: str, tokenizer, vocabulary: dict[str, int], max_source_length: int) -> list[str]:
    """What the model will not see of `sentence`: its unknown words (read as `<unk>`), words past the cut; with
    a subword vocabulary (no unknown words), the tokens past the cut. (`vocabulary`: `tokenizer.get_vocab()`,
    taken once by the caller.)"""
    if tokenizer.vocabulary != "word":
        count = len(tokenizer(sentence)["input_ids"]) - 1  # without <eos>
        if count < max_source_length:
            return []
        return [
            f"warning: {count} subword tokens, cut to the first {max_source_length - 1} "
            f"(--max_source_length {max_source_length})"
        ]
    words = tokenizer.normalize(sentence).split()
    unknown = [word for word in words if word not in vocabulary]
    notes = []
    if unknown:
        plural = "s" if len(unknown) > 1 else ""
        notes.append(f"{len(unknown)} unknown word{plural}: {', '.join(map(repr, unknown))}")
    if len(words) >= max_source_length:
        notes.append(
            f"warning: {len(words)} words, cut to the first {max_source_length - 1} "
            f"(--max_source_length {max_source_length})"
        )
    return notes


def check_heatmap_target(target: str | None, count: int) -> None:
    """A `.png` path holds one heatmap: `count` > 1 needs a folder."""
    if target and target.lower().endswith(".png") and count > 1:
        raise UsageError(
            f"--show_attention {target}: one file for {count} heatmaps; give a folder (attention_<i>.png each)"
        )


def heatmap_path(target: str, index: int) -> str:
    """`target` itself when it names a `.png` file, else `target/attention_<index>.png`."""
    if target.lower().endswith(".png"):
        return target
    os.makedirs(target, exist_ok=True)
    return os.path.join(target, f"attention_{index}.png")


def save_heatmaps(translations: list[Translation], target: str, first_index: int = 0) -> None:
    """The tutorial's `show_attention` for each translation with an output, numbered from `first_index`."""
    for index, translation in enumerate(translations, start=first_index):
        if not translation.output_tokens:
            continue
        try:
            plot_attention(
                translation.source_tokens,
                translation.output_tokens,
                translation.attention,
                heatmap_path(target, index),
            )
        except OSError as error:
            raise UsageError(f"--show_attention {target}: {error.strerror or error}") from None


def generation_kwargs(args: argparse.Namespace) -> dict:
    """`translate` keywords from the command's flags."""
    return {
        "batch_size": args.batch_size,
        "num_beams": args.num_beams,
        "max_new_tokens": args.max_new_tokens,
        "max_source_length": args.max_source_length,
        "output_attentions": args.show_attention is not None,
        "replace_unknown": args.replace_unknown,
    }


def translate_lines(model, tokenizer, sentences: list[str], args: argparse.Namespace) -> None:
    """Print one translation per sentence, in order; notes on stderr name the sentence (line) number."""
    check_heatmap_target(args.show_attention, len(sentences))
    vocabulary = tokenizer.get_vocab()
    for number, sentence in enumerate(sentences, start=1):
        for note in input_notes(sentence, tokenizer, vocabulary, args.max_source_length):
            print(f"sentence {number}: {note}", file=sys.stderr)
    translations = translate(model, tokenizer, sentences, **generation_kwargs(args))
    sys.stdout.write("".join(f"{translation.text}\n" for translation in translations))
    if args.show_attention:
        save_heatmaps(translations, args.show_attention)


def interactive(model, tokenizer, args: argparse.Namespace) -> None:
    """The tutorial's `evaluate` at a prompt: `> ` reads a sentence, `< ` answers, until end of input (Ctrl-D).
    With `--show_attention`, each answer's heatmap (a `.png` path is rewritten each time)."""
    vocabulary = tokenizer.get_vocab()
    for index in itertools.count():
        print("> ", end="", flush=True)
        line = sys.stdin.readline()
        if not line:  # end of input
            print()
            return
        sentence = line.rstrip("\n")
        for note in input_notes(sentence, tokenizer, vocabulary, args.max_source_length):
            print(note, file=sys.stderr)
        [translation] = translate(model, tokenizer, [sentence], **generation_kwargs(args))
        print(f"< {translation.text}", flush=True)
        if args.show_attention:
            save_heatmaps([translation], args.show_attention, first_index=index)


def show_samples(model, tokenizer, args: argparse.Namespace) -> None:
    """The tutorial's `evaluate_randomly` for `-n` random pairs of `--samples`, then corpus BLEU and chrF of the
    whole file (sources and references normalized as in training)."""
    try:
        source, target = tokenizer.source_lang, tokenizer.target_lang
        columns = None if "en" in (source, target) else [source, target]  # (labels by role: in this order)
        languages = PrepareArguments(
            source_lang=source,
            target_lang=target,
            file_languages=columns,
            normalization=tokenizer.normalization,
            vocabulary=tokenizer.vocabulary,
        )
        languages.normalization_version = tokenizer.normalization_version
        pairs = read_pairs(args.samples, languages)
    except DataFileError as error:
        raise UsageError(str(error)) from None
    columns = pairs.to_dict()
    sources, references = columns[tokenizer.source_lang], columns[tokenizer.target_lang]
    shown = random.Random(args.seed).sample(range(len(sources)), min(args.num_samples, len(sources)))
    check_heatmap_target(args.show_attention, len(shown))
    vocabulary = tokenizer.get_vocab()
    noted = sum(bool(input_notes(source, tokenizer, vocabulary, args.max_source_length)) for source in sources)
    if noted:
        print(f"{noted} of {len(sources)} sources hold unknown words (read as <unk>) or are cut", file=sys.stderr)
    translations = translate(model, tokenizer, sources, **generation_kwargs(args))
    for index in shown:
        print(f"> {sources[index]}\n= {references[index]}\n< {translations[index].text}\n")
    if args.show_attention:
        save_heatmaps([translations[index] for index in shown], args.show_attention)
    scores = corpus_scores([translation.text for translation in translations], references)
    print(f"BLEU {scores['bleu']:.2f}  chrF {scores['chrf']:.2f}  ({len(sources)} pairs of {args.samples})")
    print(f"BLEU signature: {scores['bleu_signature']}\nchrF signature: {scores['chrf_signature']}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    transformers.utils.logging.disable_progress_bar()  # stderr holds only notes and errors
    datasets.disable_progress_bars()
    try:
        if args.show_attention and not matplotlib_available():
            raise UsageError("--show_attention needs matplotlib (pip install gru-seq2seq[plot])")
        sentences = None
        if not args.samples and not args.sentences and (args.input_file or not sys.stdin.isatty()):
            sentences = read_lines(args.input_file or "-")
        model, tokenizer = load_model(args.model)
        if args.replace_unknown and tokenizer.vocabulary != "word":
            raise UsageError(f"--replace_unknown: {REPLACE_UNKNOWN_WORDS_ONLY}")
        with quiet_tokenizer(tokenizer):
            if args.samples:
                show_samples(model, tokenizer, args)
            elif args.sentences:
                translate_lines(model, tokenizer, args.sentences, args)
            elif sentences is not None:
                translate_lines(model, tokenizer, sentences, args)
            else:
                interactive(model, tokenizer, args)
        sys.stdout.flush()  # a closed pipe shows here, not at exit
    except (UsageError, ModelLoadError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C
        print(file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`gru-translate MODEL < file | head -1`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing left to flush at exit
        return 128 + signal.SIGPIPE
    except OSError as error:
        if error.errno not in (errno.ENOSPC, errno.EIO, errno.EROFS, errno.EDQUOT):
            raise
        # writing the translations failed (`> /dev/full`, a full disk)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        print(f"error: cannot write the translations: {error.strerror or error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
