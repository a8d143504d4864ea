#!/usr/bin/env python
"""Peak memory (RSS) of `generate()` on a batch of 1,024 sentences and on one 1,000-word sentence, each case
in a fresh process.

    OMP_NUM_THREADS=1 python benchmarks/bench_resources.py [--model runs/fr-en] [--max_new_tokens 50]

Without `--model`: an untrained model of the default size (hidden 500, 2 layers, `dot` attention) with the
tutorial's vocabulary sizes (1,907 French and 1,685 English ids). Untrained, it never stops early: every
output runs to the limit, the worst case for time and memory. Sources are random word ids ending in
`<eos>`: 1,024 of 10 tokens (about twice the tutorial's sentences), or one of 1,001 tokens. Each case runs
in a subprocess that builds the model, notes its peak RSS so far (`resource.getrusage` `ru_maxrss`), runs
`generate` once and notes the peak again: the difference is what `generate` added. Prints a table and
writes `bench_resources.json` beside this file.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_VOCAB, TARGET_VOCAB = 1907, 1685  # the tutorial's vocabularies (run_translation.py's defaults)
FIRST_WORD_ID, EOS_ID = 4, 2
CASES = {  # name: (sentences, tokens per sentence with <eos>, num_beams)
    "batch of 1,024 sentences, greedy": (1024, 10, 1),
    "batch of 1,024 sentences, 3 beams": (1024, 10, 3),
    "one 1,000-word sentence, greedy": (1, 1001, 1),
    "one 1,000-word sentence, 3 beams": (1, 1001, 3),
}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="a saved model directory (default: an untrained default-size model)")
    parser.add_argument("--max_new_tokens", type=int, default=50, help="output limit (run_translation.py's: 50)")
    parser.add_argument("--output", default=os.path.join(HERE, "bench_resources.json"))
    parser.add_argument("--case", choices=CASES, help=argparse.SUPPRESS)  # run one case (in the subprocess)
    return parser.parse_args(argv)


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kilobytes


def build_model(path: str | None):
    from modeling_gru_seq2seq import GruSeq2SeqConfig, GruSeq2SeqForConditionalGeneration
    from modeling_gru_seq2seq.loading import load_model_and_tokenizer

    if path:
        return load_model_and_tokenizer(path)[0].eval()
    torch.manual_seed(0)
    config = GruSeq2SeqConfig(source_vocab_size=SOURCE_VOCAB, target_vocab_size=TARGET_VOCAB)
    return GruSeq2SeqForConditionalGeneration(config).eval()


def run_case(name: str, args: argparse.Namespace) -> dict:
    """Measure one case in this process."""
    num_sentences, length, num_beams = CASES[name]
    model = build_model(args.model)
    generator = torch.Generator().manual_seed(0)
    input_ids = torch.randint(
        FIRST_WORD_ID, model.config.source_vocab_size, (num_sentences, length), generator=generator
    )
    input_ids[:, -1] = EOS_ID
    before = peak_rss_mib()
    start = time.perf_counter()
    sequences = model.generate(
        input_ids=input_ids,
        attention_mask=torch.ones_like(input_ids),
        num_beams=num_beams,
        max_new_tokens=args.max_new_tokens,
        max_length=None,
    )
    seconds = time.perf_counter() - start
    after = peak_rss_mib()
    return {
        "case": name,
        "sentences": num_sentences,
        "source_tokens": length,
        "num_beams": num_beams,
        "output_tokens": sequences.shape[1] - 1,
        "seconds": round(seconds, 2),
        "peak_rss_before_mib": round(before),
        "peak_rss_mib": round(after),
        "added_by_generate_mib": round(after - before),
        "torch_threads": torch.get_num_threads(),
    }


def run_in_subprocess(name: str, args: argparse.Namespace) -> dict:
    command = [sys.executable, os.path.abspath(__file__), "--case", name, "--max_new_tokens", str(args.max_new_tokens)]
    if args.model:
        command += ["--model", args.model]
    result = subprocess.run(command, capture_output=True, text=True, check=True, cwd=os.path.dirname(HERE))
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.case:
        print(json.dumps(run_case(args.case, args)))
        return
    results = [run_in_subprocess(name, args) for name in CASES]
    print("| case | output tokens | seconds | peak RSS before generate (MiB) | peak RSS (MiB) | added (MiB) |")
    print("|---|---:|---:|---:|---:|---:|")
    for row in results:
        print(
            f"| {row['case']} | {row['output_tokens']} | {row['seconds']} | {row['peak_rss_before_mib']} | "
            f"{row['peak_rss_mib']} | {row['added_by_generate_mib']} |"
        )
    with open(args.output, "w", encoding="utf-8") as handle:
        json.dump(
            {
                "model": args.model or "untrained, hidden 500, 2 layers, 1907/1685 ids",
                "max_new_tokens": args.max_new_tokens,
                "torch": torch.__version__,
                "results": results,
            },
            handle,
            indent=2,
        )


if __name__ == "__main__":
    main()
