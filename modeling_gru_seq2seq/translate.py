"""Translate sentences with a trained model, batched, with the attention each output word paid; and the
`gru-translate` command around it (the tutorial's `evaluate`, `evaluate_randomly` and `show_attention`).

    gru-translate runs/fr-en "Je suis content." "Il fait froid."     # one translation per line
    gru-translate runs/fr-en --input_file sentences.txt > translations.txt
    gru-translate runs/fr-en                       # stdin a terminal: the tutorial's `> ` prompt, `< ` answers
    gru-translate runs/fr-en "elle a cinq ans ." --show_attention attention.png
    gru-translate runs/fr-en --samples pairs.tsv -n 10     # `> source`, `= reference`, `< output`, BLEU
    gru-translate runs/fr-en --replace_unknown "Je m'appelle Zorglub."  # <unk> -> the source word it attended
    gru-translate runs/fr-en --num_beams 5 --num_return_sequences 3 "Il fait froid."  # the 3 best beams, 3 lines
    gru-translate runs/fr-en --num_beams 5 --length_penalty 0 --print_scores "Il fait froid."  # `-0.4213<TAB>...`
    gru-translate runs/fr-en --do_sample --top_p 0.9 --temperature 0.8 --seed 1 "Il fait froid."  # a sample
    gru-translate runs/fr-en --do_sample --top_k 10 --num_return_sequences 4 --print_scores "Il fait froid."
    gru-translate runs/fr-en --device cuda:1 --input_file sentences.txt   # default: cuda when there is one, else cpu

MODEL is a directory written by `run_translation.py` (or `save_pretrained`) or a Hub id. With a word vocabulary,
words outside it are read as `<unk>` and named on stderr (a subword vocabulary has no unknown words). The GRU
has no length limit of its own, but a model knows the lengths it was trained on (25 characters in the
tutorial's setting): a source longer than `--max_source_length` tokens (100, `<eos>` included) is cut there,
with a warning. A line with no words
translates to an empty line, so output line `i` always answers input line `i`.

More than one output per input: `--num_return_sequences N` writes N consecutive lines for each input, best
first: beam search's N best beams in order (N <= `--num_beams`), or N samples (`--do_sample`) ordered by their
score; an input with no words gives N empty lines. `--print_scores` starts each line with its score and a TAB
(`f"{score:.4f}\t{text}"`): with beam search (`--num_beams` > 1) the beam's `sequences_scores` (the summed
log-probabilities of its tokens divided by its length to the power `--length_penalty`, default 1.0), else
(greedy search, sampling) the sum of the model's log-probabilities of the chosen tokens, `<eos>` included
(from the model's own distribution, before `--temperature`, `--top_k` and `--top_p` reshape it, so that scores
of different settings compare; `--top_k 1` sampling gives greedy search's lines and scores). An input with no
words scores 0.0 (the log-probability of an output that is certain). `--do_sample` draws each token from the
model's distribution as `--temperature`, `--top_k` (0: no cut) and `--top_p` reshape it (unset: the model's
generation config, else transformers' defaults, top_k 50, top_p 1.0, temperature 1.0); `--seed` seeds the draw
(`transformers.set_seed`; without it, a new draw each run). The samples of a sentence depend on the seed and on
the batch it is decoded in (the sentences and `--batch_size`). With N > 1, `--samples` shows N `< ` lines per
pair (BLEU and chrF score the first, best, of each), the prompt answers with N `< ` lines, and
`--show_attention` draws one heatmap per returned sequence (a folder's `attention_<i>_<rank>.png`, rank 0 the
best).

The generation flags (`add_generation_arguments`: `--batch_size`, `--num_beams`, `--max_new_tokens`,
`--max_source_length`, `--num_return_sequences`, `--do_sample`, `--top_k`, `--top_p`, `--temperature`,
`--length_penalty`, `--device`) are one set that another command can add to its parser; `check_generation_arguments`
checks them and `generation_kwargs` turns them into `translate` keywords. `--device` (`cpu`, `cuda`, `cuda:1`,
`mps`, ...) is checked before the model loads: one that torch does not know or that this machine lacks is a
one-line error (`error: --device cuda: ...`, exit code 2).
"""

import argparse
import contextlib
import dataclasses
import errno
import itertools
import logging
import math
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
from .int8_weights import INT8_NEEDS_KERNELS
from .loading import ModelLoadError, load_model_and_tokenizer
from .metrics import corpus_scores
from .modeling_gru_seq2seq import INFERENCE_DTYPES
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
    """One translated sentence (or, with `num_return_sequences` > 1, one of its outputs).

    `text`: the output words (with `replace_unknown`, each `<unk>` as the source word it attended most);
    `source_tokens`: source words as the model read them (`<unk>` for unknown ones) plus `<eos>`;
    `output_tokens`: generated words up to and with `<eos>` (when reached); `attention`:
    `(len(output_tokens), len(source_tokens))` weights, each row summing to 1; `score` (with `output_scores`,
    else `None`): beam search's `sequences_scores`, or greedy search's and sampling's summed log-probabilities
    of the chosen tokens (see `translate`), 0.0 for a sentence with nothing to translate.
    """

    text: str
    source_tokens: list[str]
    output_tokens: list[str]
    attention: np.ndarray | None = None
    score: float | None = None


SAMPLING_OPTIONS = ("top_k", "top_p", "temperature")  # what only `do_sample` uses


def generation_option_error(
    num_beams: int = 1,
    num_return_sequences: int = 1,
    do_sample: bool = False,
    top_k: int | None = None,
    top_p: float | None = None,
    temperature: float | None = None,
    length_penalty: float | None = None,
    prefix: str = "",
) -> str | None:
    """What is wrong with these `translate` options, in one line, or `None`: a value out of range, sampling
    options without `do_sample` (transformers would ignore them), more sequences than the search returns, a
    length penalty without beam search. Options are named with `prefix` before them (`"--"`: as flags)."""
    for name, value in (("num_beams", num_beams), ("num_return_sequences", num_return_sequences)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            return f"{prefix}{name}: got {value!r}, want an integer >= 1"
    if top_k is not None and (not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 0):
        return f"{prefix}top_k: got {top_k!r}, want an integer >= 0 (0: no cut)"
    if top_p is not None and not 0 < top_p <= 1:
        return f"{prefix}top_p: got {top_p!r}, want a number in (0, 1]"
    if temperature is not None and not (0 < temperature < math.inf):
        return f"{prefix}temperature: got {temperature!r}, want a number > 0"
    if length_penalty is not None and not math.isfinite(length_penalty):
        return f"{prefix}length_penalty: got {length_penalty!r}, want a finite number"
    values = (top_k, top_p, temperature)
    given = [prefix + name for name, value in zip(SAMPLING_OPTIONS, values, strict=True) if value is not None]
    if given and not do_sample:
        return f"{', '.join(given)}: only sampling uses {'them' if len(given) > 1 else 'it'}; give {prefix}do_sample"
    if num_beams == 1 and num_return_sequences > 1 and not do_sample:
        return (
            f"{prefix}num_return_sequences {num_return_sequences}: greedy search returns one sequence; "
            f"give {prefix}num_beams >= {num_return_sequences} or {prefix}do_sample"
        )
    if num_beams > 1 and num_return_sequences > num_beams:
        return (
            f"{prefix}num_return_sequences {num_return_sequences}: beam search returns at most its "
            f"{prefix}num_beams {num_beams} beams"
        )
    if length_penalty is not None and num_beams == 1:
        return f"{prefix}length_penalty: weighs beam search's scores; give {prefix}num_beams > 1"
    return None


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
    num_return_sequences: int = 1,
    do_sample: bool = False,
    top_k: int | None = None,
    top_p: float | None = None,
    temperature: float | None = None,
    length_penalty: float | None = None,
    output_scores: bool = False,
) -> list[Translation]:
    """Translate `sentences`, `batch_size` at a time, returned in input order.

    Batches hold sentences of similar length (less padding, and a batch stops decoding sooner). A sentence
    with no words after normalization (or only invisible characters) translates to `""`. `max_source_length`
    cuts longer sources (in tokens, `<eos>` included); `None` keeps them whole. `output_attentions` adds the
    attention of each output word, from a teacher-forced pass over the chosen words, so it works with beam
    search too (and for each returned sequence).
    `replace_unknown` writes each output `<unk>` as the source word (as normalized) that received the most
    attention at that step, from the same pass.

    Search: greedy (`num_beams=1`), beam search (`num_beams` > 1, with `length_penalty` when given), or
    sampling (`do_sample`, shaped by `top_k`, `top_p` and `temperature`; `None` leaves the model's generation
    config in charge; with `num_beams` > 1, beam sampling). Sampling draws from torch's random generator: seed
    it (`transformers.set_seed`) for repeatable outputs; a sentence's samples also depend on the batch it is
    decoded in. Inconsistent options raise a one-line `ValueError` (`generation_option_error`).

    Returns `len(sentences) * num_return_sequences` translations, flat: those of sentence `i` are entries
    `i * num_return_sequences` to `(i + 1) * num_return_sequences - 1`, best first (beam search: its beams
    in order; sampling: the samples ordered by score, highest first). With `num_return_sequences=1` (the
    default), one translation per sentence, as before. A sentence with nothing to translate gives
    `num_return_sequences` empty translations.

    `output_scores` fills each translation's `score`: with beam search, `generate`'s `sequences_scores` (the
    summed log-probabilities of the beam's tokens over its length to the power `length_penalty`); with greedy
    search and sampling, the sum of the log-probabilities of the chosen tokens, `<eos>` included, under the
    model's own distribution (before temperature, top-k and top-p, so that `top_k=1` sampling scores as greedy
    search does). A sentence with nothing to translate scores 0.0.
    """
    if replace_unknown and tokenizer.vocabulary != "word":
        raise ValueError(REPLACE_UNKNOWN_WORDS_ONLY)
    error = generation_option_error(
        num_beams, num_return_sequences, do_sample, top_k, top_p, temperature, length_penalty
    )
    if error:
        raise ValueError(error)
    if not sentences:
        return []
    model.eval()
    encodings = tokenizer(sentences, truncation=max_source_length is not None, max_length=max_source_length).encodings
    source_lengths = np.array([len(encoding.ids) for encoding in encodings])
    order = np.argsort(source_lengths, kind="stable")
    blank = np.array([tokenizer.is_blank(sentence) for sentence in sentences])
    order = order[(source_lengths[order] > 1) & ~blank[order]]  # only `<eos>`, or invisible: nothing to translate
    count = num_return_sequences
    empty_score = 0.0 if output_scores else None
    translations = [
        _empty_translation(tokenizer, output_attentions, empty_score) for _ in range(len(sentences) * count)
    ]
    # max_new_tokens replaces the model's max_length (passing both would log a warning). Only what differs from
    # plain greedy or beam search is passed: plain searches keep the model's lean loops.
    options = {"num_beams": num_beams}
    options.update({} if max_new_tokens is None else {"max_new_tokens": max_new_tokens, "max_length": None})
    options.update({"num_return_sequences": count} if count > 1 else {})
    options.update({"length_penalty": length_penalty} if length_penalty is not None else {})
    if do_sample:
        shaping = {"top_k": top_k, "top_p": top_p, "temperature": temperature}
        options.update(do_sample=True, **{name: value for name, value in shaping.items() if value is not None})
    sorted_samples = do_sample and num_beams == 1 and count > 1  # ordered by score, best first
    with_scores = output_scores or sorted_samples
    if with_scores:  # beam search scores its beams; other searches give the logits of each step
        options.update(return_dict_in_generate=True, **{"output_scores" if num_beams > 1 else "output_logits": True})
    for start in range(0, len(order), batch_size):
        indices = order[start : start + batch_size].tolist()
        inputs = tokenizer.pad({"input_ids": [encodings[i].ids for i in indices]}, return_tensors="pt")
        inputs = inputs.to(model.device)
        generated = model.generate(**inputs, **options)
        sequences, scores = generated, None
        if with_scores:
            sequences = generated.sequences
            scores = generated.sequences_scores if num_beams > 1 else _summed_log_probs(model, generated, tokenizer)
        if sorted_samples:
            ranks = scores.view(-1, count).argsort(dim=1, descending=True, stable=True)
            rows = (ranks + count * torch.arange(len(indices), device=ranks.device)[:, None]).flatten()
            sequences, scores = sequences[rows], scores[rows]
        if count > 1:  # one row per returned sequence
            inputs = {name: tensor.repeat_interleave(count, dim=0) for name, tensor in inputs.items()}
        row_sources = [index for index in indices for _ in range(count)]
        texts = tokenizer.batch_decode(sequences, skip_special_tokens=True)
        output_lengths = _lengths_with_eos(sequences[:, 1:], tokenizer.eos_token_id).tolist()
        attention = None
        if output_attentions or replace_unknown:
            attention = cross_attention(model, inputs["input_ids"], inputs["attention_mask"], sequences)
        if replace_unknown:
            words = most_attended_words(model, inputs["input_ids"], inputs["attention_mask"], sequences, attention)
            texts = _with_source_words(texts, sequences, words, [sentences[i] for i in row_sources], tokenizer)
        attention = attention.cpu().numpy() if output_attentions else None
        row_scores = scores.float().tolist() if output_scores else [None] * len(row_sources)
        for row, index in enumerate(row_sources):
            output_length, source_length = output_lengths[row], len(encodings[index].ids)
            translations[index * count + row % count] = Translation(
                text=texts[row],
                source_tokens=encodings[index].tokens,
                output_tokens=tokenizer.convert_ids_to_tokens(sequences[row, 1 : 1 + output_length].tolist()),
                attention=None if attention is None else attention[row, :output_length, :source_length],
                score=row_scores[row],
            )
    return translations


def _summed_log_probs(model, generated, tokenizer) -> torch.Tensor:
    """`(rows,)`: for each generated sequence (greedy search, sampling: `generate(..., output_logits=True,
    return_dict_in_generate=True)`), the sum of the model's log-probabilities of its tokens up to and with its
    first `<eos>` (the padding after it left out), from the raw logits of each step (as
    `model.compute_transition_scores(sequences, logits, normalize_logits=True)`, without its second copy of the
    logits)."""
    logits = torch.stack(generated.logits, dim=1).float()  # (rows, steps, vocab)
    chosen = generated.sequences[:, -logits.shape[1] :]  # the start token left out
    steps = logits.gather(-1, chosen[..., None]).squeeze(-1) - logits.logsumexp(dim=-1)  # log-softmax, chosen
    lengths = _lengths_with_eos(chosen, tokenizer.eos_token_id)
    kept = torch.arange(steps.shape[1], device=steps.device)[None, :] < lengths[:, None]
    return torch.where(kept, steps, 0.0).sum(dim=1)


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


def _empty_translation(tokenizer, output_attentions: bool, score: float | None = None) -> Translation:
    attention = np.zeros((0, 1), dtype=np.float32) if output_attentions else None
    return Translation("", [tokenizer.eos_token], [], attention, score)


def _lengths_with_eos(output_ids: torch.Tensor, eos_token_id: int) -> torch.Tensor:
    """`(batch,)` number of tokens up to and with the first `<eos>` of each `(batch, steps)` row (all
    `steps` where none); the padding `generate` puts after `<eos>` is not counted."""
    is_eos = output_ids == eos_token_id
    first_eos = is_eos.int().argmax(dim=1)
    return torch.where(is_eos.any(dim=1), first_eos + 1, output_ids.shape[1])


# The command line.


def add_generation_arguments(parser: argparse.ArgumentParser):
    """Add the generation flags to `parser`, in a group of their own (returned, for a command to add its own
    generation flags to): `--batch_size`, `--num_beams`, `--max_new_tokens`, `--max_source_length`,
    `--num_return_sequences`, `--do_sample`, `--top_k`, `--top_p`, `--temperature`, `--length_penalty` and
    `--device`. Check them with `check_generation_arguments`; `generation_kwargs` makes `translate` keywords of
    them, and `resolve_device` the device of `--device`."""
    group = parser.add_argument_group("generation")
    group.add_argument("--batch_size", type=int, default=64, help="sentences per generate() call")
    group.add_argument("--num_beams", type=int, default=1, help="beam width (1: greedy)")
    group.add_argument("--max_new_tokens", type=int, help="output limit (default: the model's)")
    group.add_argument(
        "--max_source_length",
        type=int,
        default=DEFAULT_MAX_SOURCE_LENGTH,
        help="cut longer sources to this many tokens, <eos> included, with a warning",
    )
    group.add_argument(
        "--num_return_sequences",
        metavar="N",
        type=int,
        default=1,
        help="N outputs per input, best first, on N consecutive lines (beam search: N <= --num_beams; "
        "or --do_sample: N samples ordered by score)",
    )
    group.add_argument(
        "--do_sample",
        action="store_true",
        help="draw each token from the model's distribution instead of taking the most likely one "
        "(with --num_beams > 1: beam sampling); --seed seeds the draw",
    )
    group.add_argument("--top_k", metavar="K", type=int, help="--do_sample: from the K most likely tokens (0: all)")
    group.add_argument(
        "--top_p", metavar="P", type=float, help="--do_sample: from the most likely tokens making up P, in (0, 1]"
    )
    group.add_argument("--temperature", metavar="T", type=float, help="--do_sample: divide the logits by T > 0")
    group.add_argument(
        "--length_penalty",
        metavar="L",
        type=float,
        help="beam search: a beam's score is its summed log-probabilities / its length ** this (default 1.0)",
    )
    group.add_argument(
        "--device",
        help="where the model runs: cpu, cuda, cuda:1, mps, ... (default: cuda when there is one, else cpu)",
    )
    group.add_argument(
        "--dtype",
        choices=INFERENCE_DTYPES,
        default="float32",
        help="the number format it translates in: float32 (as trained), bfloat16 (half the bytes per step; "
        "faster on CPUs with bfloat16 units) or int8 (the CPU only: int8 weight matrices, a quarter of the bytes; "
        "the fastest where the CPU has AVX512-VNNI); each within a few tokens in a hundred of float32",
    )
    return group


def check_generation_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """`parser.error` (one line, exit code 2) for the first generation flag out of range or inconsistent with
    the others (see `generation_option_error`). `--device` is checked later, by `resolve_device`."""
    counts = {
        "--batch_size": args.batch_size,
        "--num_beams": args.num_beams,
        "--max_new_tokens": args.max_new_tokens,
        "--num_return_sequences": args.num_return_sequences,
    }
    for flag, value in counts.items():
        if value is not None and value < 1:
            parser.error(f"{flag} must be at least 1")
    if args.max_source_length < 2:
        parser.error("--max_source_length must be at least 2 (a word and <eos>)")
    error = generation_option_error(
        args.num_beams,
        args.num_return_sequences,
        args.do_sample,
        args.top_k,
        args.top_p,
        args.temperature,
        args.length_penalty,
        prefix="--",
    )
    if error:
        parser.error(error)


def generation_kwargs(args: argparse.Namespace) -> dict:
    """`translate` keywords from the generation flags (`add_generation_arguments`)."""
    return {
        "batch_size": args.batch_size,
        "num_beams": args.num_beams,
        "max_new_tokens": args.max_new_tokens,
        "max_source_length": args.max_source_length,
        "num_return_sequences": args.num_return_sequences,
        "do_sample": args.do_sample,
        "top_k": args.top_k,
        "top_p": args.top_p,
        "temperature": args.temperature,
        "length_penalty": args.length_penalty,
    }


def translate_kwargs(args: argparse.Namespace) -> dict:
    """`translate` keywords from `gru-translate`'s flags: the generation flags, and what its output shows."""
    return {
        **generation_kwargs(args),
        "output_attentions": args.show_attention is not None,
        "replace_unknown": args.replace_unknown,
        "output_scores": args.print_scores,
    }


def inference_device(name: str | None, dtype: str) -> torch.device:
    """`resolve_device` for translating in `dtype`: int8 runs on the CPU only, so it is its default device, and
    another one is a `UsageError`."""
    device = resolve_device("cpu" if name is None and dtype == "int8" else name)
    if dtype == "int8" and device.type != "cpu":
        raise UsageError(f"--dtype int8 translates on the CPU only: give --device cpu (or no --device), not {name}")
    return device


def resolve_device(name: str | None) -> torch.device:
    """The device `--device name` names, checked before anything loads: `UsageError` (one line) for a name torch
    does not know or a device this machine lacks. `None`: CUDA's current GPU when there is one, else the CPU."""
    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise UsageError(f"--device {name}: not a device name (want cpu, cuda, cuda:<index>, mps, ...)") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UsageError(f"--device {name}: CUDA is not available here (torch {torch.__version__})")
        visible = torch.cuda.device_count()
        if device.index is not None and device.index >= visible:
            raise UsageError(f"--device {name}: no such GPU ({visible} visible: cuda:0 to cuda:{visible - 1})")
    elif device.type == "mps":
        if not torch.backends.mps.is_available():
            raise UsageError(f"--device {name}: MPS (Apple GPU) is not available here")
    elif device.type == "meta":
        raise UsageError(f"--device {name}: holds no data; want cpu, cuda, ...")
    elif device.type != "cpu":
        try:
            torch.empty(0, device=device)
        except Exception as error:  # each backend fails its own way
            reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
            raise UsageError(f"--device {name}: not available here ({reason})") from None
    return device


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="gru-translate",
        description="Translate sentences with a trained gru-seq2seq model (arguments, --input_file, stdin, "
        "or a prompt when stdin is a terminal), or show random samples of a pair file with BLEU/chrF.",
    )
    parser.add_argument("model", metavar="MODEL", help="a saved model directory or a Hub id")
    parser.add_argument("sentences", metavar="SENTENCE", nargs="*", help="sentences to translate")
    parser.add_argument("--input_file", metavar="F", help="one sentence per line ('-' for stdin)")
    add_generation_arguments(parser)
    parser.add_argument(
        "--print_scores",
        action="store_true",
        help="start each output line with its score and a TAB: beam search's sequences_scores, else the summed "
        "log-probabilities of the chosen tokens (0.0 for an input with no words)",
    )
    parser.add_argument(
        "--show_attention",
        metavar="PATH",
        help="heatmap(s): a .png file for one sentence, else a folder of attention_<i>.png "
        "(attention_<i>_<rank>.png with --num_return_sequences > 1)",
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
    parser.add_argument(
        "--seed",
        type=int,
        help="seed of the --samples draw and of --do_sample (transformers.set_seed; default: a new draw each run)",
    )
    args = parser.parse_intermixed_args(argv)  # options before, between or after the sentences
    check_generation_arguments(parser, args)
    if args.num_samples < 1:
        parser.error("-n must be at least 1")
    if args.samples and (args.sentences or args.input_file):
        parser.error("--samples translates its own file: give no SENTENCE and no --input_file")
    if args.sentences and args.input_file:
        parser.error("give sentences as arguments or --input_file, not both")
    return args


def load_model(name: str, device: str | torch.device | None = None, dtype: str = "float32"):
    """Model and tokenizer from a directory or a Hub id (checked, see `loading`), on `device` (default: the
    GPU when there is one, else the CPU; the CPU for int8, which runs there only), in `dtype`
    (`to_inference_dtype`)."""
    model, tokenizer = load_model_and_tokenizer(name)
    if device is None:
        device = "cpu" if dtype == "int8" else resolve_device(None)
    model = model.to(device)
    try:
        return model.to_inference_dtype(dtype), tokenizer
    except RuntimeError as error:  # (a machine where the compiled kernels cannot be built)
        if str(error) == INT8_NEEDS_KERNELS:
            raise UsageError(f"--dtype int8: {error}") from None
        raise


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


def heatmap_path(target: str, index: int | str) -> str:
    """`target` itself when it names a `.png` file, else `target/attention_<index>.png`."""
    if target.lower().endswith(".png"):
        return target
    os.makedirs(target, exist_ok=True)
    return os.path.join(target, f"attention_{index}.png")


def save_heatmaps(translations: list[Translation], target: str, first_index: int = 0, per_sentence: int = 1) -> None:
    """The tutorial's `show_attention` for each translation with an output, numbered from `first_index`;
    `per_sentence` > 1: `translations` holds that many per sentence (`translate`'s `num_return_sequences`), each
    numbered `<sentence>_<rank>`."""
    for position, translation in enumerate(translations):
        if not translation.output_tokens:
            continue
        sentence, rank = divmod(position, per_sentence)
        index = first_index + sentence if per_sentence == 1 else f"{first_index + sentence}_{rank}"
        try:
            plot_attention(
                translation.source_tokens,
                translation.output_tokens,
                translation.attention,
                heatmap_path(target, index),
            )
        except OSError as error:
            raise UsageError(f"--show_attention {target}: {error.strerror or error}") from None


def output_line(translation: Translation, print_scores: bool) -> str:
    """What the command prints for `translation` (no line end): its text, after its score and a TAB with
    `--print_scores`."""
    return f"{translation.score:.4f}\t{translation.text}" if print_scores else translation.text


def translate_lines(model, tokenizer, sentences: list[str], args: argparse.Namespace) -> None:
    """Print `--num_return_sequences` translations per sentence (one line each), in order, best first; notes
    on stderr name the sentence (line) number."""
    check_heatmap_target(args.show_attention, len(sentences) * args.num_return_sequences)
    vocabulary = tokenizer.get_vocab()
    for number, sentence in enumerate(sentences, start=1):
        for note in input_notes(sentence, tokenizer, vocabulary, args.max_source_length):
            print(f"sentence {number}: {note}", file=sys.stderr)
    translations = translate(model, tokenizer, sentences, **translate_kwargs(args))
    sys.stdout.write("".join(f"{output_line(translation, args.print_scores)}\n" for translation in translations))
    if args.show_attention:
        save_heatmaps(translations, args.show_attention, per_sentence=args.num_return_sequences)


def interactive(model, tokenizer, args: argparse.Namespace) -> None:
    """The tutorial's `evaluate` at a prompt: `> ` reads a sentence, `< ` answers (one line per returned
    sequence), until end of input (Ctrl-D). With `--show_attention`, each answer's heatmap (a `.png` path is
    rewritten each time; with more than one sequence per answer, give a folder)."""
    check_heatmap_target(args.show_attention, args.num_return_sequences)
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
        translations = translate(model, tokenizer, [sentence], **translate_kwargs(args))
        print("".join(f"< {output_line(translation, args.print_scores)}\n" for translation in translations), end="")
        sys.stdout.flush()
        if args.show_attention:
            save_heatmaps(translations, args.show_attention, index, args.num_return_sequences)


def show_samples(model, tokenizer, args: argparse.Namespace) -> None:
    """The tutorial's `evaluate_randomly` for `-n` random pairs of `--samples` (`--num_return_sequences` `< `
    lines each), then corpus BLEU and chrF of the whole file, of the best output of each source (sources and
    references normalized as in training)."""
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
    count = args.num_return_sequences
    check_heatmap_target(args.show_attention, len(shown) * count)
    vocabulary = tokenizer.get_vocab()
    noted = sum(bool(input_notes(source, tokenizer, vocabulary, args.max_source_length)) for source in sources)
    if noted:
        print(f"{noted} of {len(sources)} sources hold unknown words (read as <unk>) or are cut", file=sys.stderr)
    translations = translate(model, tokenizer, sources, **translate_kwargs(args))
    for index in shown:
        outputs = translations[index * count : (index + 1) * count]
        answers = "".join(f"< {output_line(output, args.print_scores)}\n" for output in outputs)
        print(f"> {sources[index]}\n= {references[index]}\n{answers}")
    if args.show_attention:
        shown_outputs = [translations[index * count + rank] for index in shown for rank in range(count)]
        save_heatmaps(shown_outputs, args.show_attention, per_sentence=count)
    scores = corpus_scores([translation.text for translation in translations[::count]], references)  # the best
    print(f"BLEU {scores['bleu']:.2f}  chrF {scores['chrf']:.2f}  ({len(sources)} pairs of {args.samples})")
    print(f"BLEU signature: {scores['bleu_signature']}\nchrF signature: {scores['chrf_signature']}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    transformers.utils.logging.disable_progress_bar()  # stderr holds only notes and errors
    datasets.disable_progress_bars()
    try:
        if args.show_attention and not matplotlib_available():
            raise UsageError("--show_attention needs matplotlib (pip install matplotlib)")
        device = inference_device(args.device, args.dtype)
        sentences = None
        if not args.samples and not args.sentences and (args.input_file or not sys.stdin.isatty()):
            sentences = read_lines(args.input_file or "-")
        model, tokenizer = load_model(args.model, device, args.dtype)
        if args.replace_unknown and tokenizer.vocabulary != "word":
            raise UsageError(f"--replace_unknown: {REPLACE_UNKNOWN_WORDS_ONLY}")
        if args.do_sample:  # after loading, which may draw random numbers of its own
            if args.seed is None:
                torch.seed()  # torch starts from the same seed in each process: a new draw each run
            else:
                transformers.set_seed(args.seed)
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
