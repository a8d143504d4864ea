#!/usr/bin/env python
"""Time `translate()` on 1,000 French sentences: batched (what `gru-translate` does) against one sentence at
a time, greedy, on this machine's CPU (or GPU).

    python benchmarks/bench_translate.py runs/fr-en [--pairs_file ../shared/data/eng-fra.txt]

The sentences are drawn (seed 0) from the pair file's French side after the tutorial's length filter
(3..25 characters), the inputs the model was trained for, or from all of it with `--any_length` (lengths
vary more, so batching by length matters more). Rows: one sentence per `generate()` call; the command's
length-sorted batches at several sizes; and batches of 64 taken in input order (each call given 64
consecutive sentences), to show what sorting by length adds. Every row's outputs are compared with the
one-at-a-time outputs. Prints a table and writes `bench_translate.json` (or `..._any_length.json`) here.
"""

import argparse
import json
import os
import random
import sys
import time

import datasets
import torch
import transformers
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

from data_scripts.prepare_tatoeba import PrepareArguments, filter_length, read_pairs
from modeling_gru_seq2seq.translate import translate

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_PAIRS_FILE = os.path.join(HERE, "..", "..", "shared", "data", "eng-fra.txt")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="a trained model directory (run_translation.py's --output_dir)")
    parser.add_argument("--pairs_file", default=DEFAULT_PAIRS_FILE, help="English<TAB>French pairs")
    parser.add_argument("--num_sentences", type=int, default=1000)
    parser.add_argument("--any_length", action="store_true", help="draw from all sentences, not 3..25 chars")
    parser.add_argument("--batch_sizes", type=int, nargs="+", default=[16, 64, 256])
    parser.add_argument("--output", help="default: bench_translate[_any_length].json beside this file")
    args = parser.parse_args(argv)
    name = "bench_translate_any_length.json" if args.any_length else "bench_translate.json"
    args.output = args.output or os.path.join(HERE, name)
    return args


def draw_sentences(pairs_file: str, count: int, any_length: bool) -> list[str]:
    """`count` distinct French sentences (of 3..25 characters unless `any_length`), drawn with seed 0."""
    args = PrepareArguments()
    pairs = read_pairs(pairs_file, args)
    sources = sorted(set((pairs if any_length else filter_length(pairs, args))[args.source_lang]))
    return random.Random(0).sample(sources, count)


def run_modes(model, tokenizer, sentences: list[str], batch_sizes: list[int]) -> list[dict]:
    """Time each mode; its outputs are compared with the first mode's (one at a time)."""

    def in_input_order():  # 64 consecutive sentences per call: sorted within a call, not across the input
        return [
            translation
            for start in range(0, len(sentences), 64)
            for translation in translate(model, tokenizer, sentences[start : start + 64])
        ]

    def batched(size):
        return lambda: translate(model, tokenizer, sentences, batch_size=size)

    modes = [("one at a time", 1, batched(1))]
    modes += [(f"sorted batches of {size}", size, batched(size)) for size in batch_sizes]
    modes.append(("input-order batches of 64", 64, in_input_order))
    rows, reference = [], None
    for name, batch_size, function in modes:
        start = time.perf_counter()
        texts = [translation.text for translation in function()]
        seconds = time.perf_counter() - start
        reference = texts if reference is None else reference
        rows.append(
            {
                "mode": name,
                "batch_size": batch_size,
                "seconds": round(seconds, 3),
                "sentences_per_second": round(len(sentences) / seconds, 1),
                "same_outputs_as_one_at_a_time": texts == reference,
            }
        )
    return rows


def main(argv=None) -> int:
    args = parse_args(argv)
    datasets.disable_progress_bars()
    transformers.utils.logging.disable_progress_bar()
    model = AutoModelForSeq2SeqLM.from_pretrained(args.model).to("cuda" if torch.cuda.is_available() else "cpu")
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    sentences = draw_sentences(args.pairs_file, args.num_sentences, args.any_length)
    translate(model, tokenizer, sentences[:64])  # warm-up
    rows = run_modes(model, tokenizer, sentences, args.batch_sizes)

    words = sum(len(sentence.split()) for sentence in sentences) / len(sentences)
    setting = (
        f"{len(sentences)} sentences ({words:.1f} words on average), greedy, {model.device}, "
        f"{torch.get_num_threads()} torch threads, hidden {model.config.hidden_size} x "
        f"{model.config.num_layers} layers"
    )
    print(setting)
    print(f"{'mode':<28}{'seconds':>9}{'sent/s':>9}{'speed-up':>10}  same outputs")
    for row in rows:
        speed_up = rows[0]["seconds"] / row["seconds"]
        print(
            f"{row['mode']:<28}{row['seconds']:>9.2f}{row['sentences_per_second']:>9.1f}{speed_up:>9.1f}x  "
            f"{'yes' if row['same_outputs_as_one_at_a_time'] else 'NO'}"
        )
    with open(args.output, "w", encoding="utf-8") as handle:
        json.dump(
            {"setting": setting, "model": args.model, "cpu_count": os.cpu_count(), "rows": rows}, handle, indent=2
        )
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
