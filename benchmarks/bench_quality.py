"""BLEU at equal training time: the project's model against the tutorial's code (the peer), on the same pairs.

    python benchmarks/bench_quality.py --minutes 24                      # the issue's comparison (~1 hour)
    python benchmarks/bench_quality.py --minutes 6 --variant_minutes 3   # a quicker look

Exports the project's train and test splits (the shared file, default preparation) as pair files, trains
the vectorized peer on the train file (`--data train.tsv --eval-pairs test.tsv --max-train-seconds S`) and
the project (`run_translation.py --max_train_minutes`, all of the train file, no evaluation or checkpoint
during training) for the same wall time, and prints both BLEU on the same test pairs: those whose words
are all in the peer's vocabulary (its own `min_count` trimming over the train file), which is the set the
peer scores. `--variant_minutes M` adds a table of our `decoder_init` and attention variants at M minutes
each. One job at a time, or `--side_by_side`: two trainings at once with one thread each (the peer beside
ours, then the variants in pairs), half the wall time under equal conditions. Each result is printed and
saved to `bench_quality.json` beside this file as it comes.
"""

import argparse
import collections
import contextlib
import functools
import io
import json
import os
import subprocess
import sys
import tempfile
import time

from datasets import Dataset, DatasetDict

from data_scripts.prepare_tatoeba import PrepareArguments, export_pairs, prepare_tatoeba

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PEER = os.path.join(ROOT, "..", "shared", "peers", "seed_tutorial.py")
DATA = os.path.join(ROOT, "..", "shared", "data", "eng-fra.txt")
VARIANTS = {
    "dot, sum (default)": [],
    "dot, tutorial init": ["--decoder_init", "tutorial"],
    "general": ["--attention", "general"],
    "concat": ["--attention", "concat"],
    "bahdanau": ["--decoder_type", "bahdanau"],
}


def export_splits(folder: str) -> tuple[str, str, int]:
    """train.tsv, and test_in_vocab.tsv: test pairs whose words the peer's trimmed vocabulary holds."""
    with contextlib.redirect_stdout(io.StringIO()):
        dataset = prepare_tatoeba(DATA).dataset
    counts = {lang: collections.Counter() for lang in ("fr", "en")}
    for pair in dataset["train"]["translation"]:
        for lang in counts:
            counts[lang].update(pair[lang].split(" "))
    known = [
        pair
        for pair in dataset["test"]["translation"]
        if all(counts[lang][word] >= 5 for lang in counts for word in pair[lang].split(" "))
    ]
    splits = DatasetDict({"train": dataset["train"], "test_in_vocab": Dataset.from_dict({"translation": known})})
    export_pairs(splits, folder, "tsv", PrepareArguments())
    return os.path.join(folder, "train.tsv"), os.path.join(folder, "test_in_vocab.tsv"), len(known)


def start_peer(train: str, test: str, seconds: float, threads: int) -> subprocess.Popen:
    command = [
        sys.executable,
        PEER,
        "--data",
        train,
        "--eval-pairs",
        test,
        "--vectorized-attn",
        "--steps",
        "100000000",
        "--warmup",
        "0",
        "--max-train-seconds",
        str(seconds),
        "--threads",
        str(threads),
        "--print-every",
        "1000000",
        "--evaluate-every",
        "0",
    ]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def peer_result(process: subprocess.Popen) -> dict:
    result = json.loads(finished_stdout(process).splitlines()[-1])
    return {"bleu": result["bleu"], "test_pairs": result["eval_pairs_used"], "steps": result.get("steps")}


def start_ours(train: str, test: str, minutes: float, output_dir: str, extra: list[str], threads: int):
    command = [
        sys.executable,
        os.path.join(ROOT, "run_translation.py"),
        "--train_file",
        train,
        "--validation_file",
        test,
        "--test_file",
        test,
        "--validation_fraction",
        "0",
        "--test_fraction",
        "0",
        "--output_dir",
        output_dir,
        "--max_train_minutes",
        str(minutes),
        "--num_train_epochs",
        "1000",
        "--eval_strategy",
        "no",
        "--save_strategy",
        "no",
        "--num_attention_plots",
        "0",
        "--disable_tqdm",
        "true",
        *extra,
    ]
    environment = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment)


def ours_result(process: subprocess.Popen, output_dir: str) -> dict:
    finished_stdout(process)
    with open(os.path.join(output_dir, "all_results.json")) as handle:
        results = json.load(handle)
    return {
        "bleu": results["predict_bleu"],
        "test_pairs": results["predict_samples"],
        "steps": round(results["epoch"] * results["train_samples"] / 50),
    }


def finished_stdout(process: subprocess.Popen) -> str:
    stdout, stderr = process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(process.args)} exited with {process.returncode}:\n{stderr[-3000:]}")
    return stdout


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=24.0)
    parser.add_argument("--variant_minutes", type=float, default=0.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--side_by_side",
        action="store_true",
        help="two trainings at once (the peer beside ours, then variants in pairs), one thread each",
    )
    args = parser.parse_args()
    threads, jobs_at_once = (1, 2) if args.side_by_side else (args.threads, 1)
    rows = []

    def record(row: dict):  # each result is printed and saved as it comes: a crash later loses nothing
        rows.append(row)
        print(
            f"{row['who']:<28} {row['minutes']:7.1f} {row['steps'] or 0:7d} {row['test_pairs']:10d} "
            f"{row['bleu']:7.2f}",
            flush=True,
        )
        with open(os.path.join(HERE, "bench_quality.json"), "w") as handle:
            json.dump(
                {
                    "date": time.strftime("%Y-%m-%d"),
                    "threads": threads,
                    "side_by_side": args.side_by_side,
                    "rows": rows,
                },
                handle,
                indent=2,
            )

    with tempfile.TemporaryDirectory() as folder:
        train, test, num_test = export_splits(folder)
        print(
            f"train {train}, {num_test} in-vocabulary test pairs; {args.minutes} minutes each, "
            f"{threads} thread(s), {jobs_at_once} training(s) at a time",
            flush=True,
        )
        jobs = [
            ("peer vectorized", args.minutes, lambda: start_peer(train, test, args.minutes * 60, threads), peer_result)
        ]
        runs = [("ours (defaults)", args.minutes, [])]
        if args.variant_minutes:
            runs += [(f"ours, {name}", args.variant_minutes, extra) for name, extra in VARIANTS.items()]
        for number, (who, minutes, extra) in enumerate(runs):
            output_dir = os.path.join(folder, f"ours-{number}")
            jobs.append(
                (
                    who,
                    minutes,
                    functools.partial(start_ours, train, test, minutes, output_dir, extra, threads),
                    functools.partial(ours_result, output_dir=output_dir),
                )
            )
        print(f"\n{'who':<28} {'minutes':>7} {'steps':>7} {'test pairs':>10} {'BLEU':>7}")
        for first in range(0, len(jobs), jobs_at_once):
            batch = jobs[first : first + jobs_at_once]
            processes = [start() for _, _, start, _ in batch]
            for (who, minutes, _, result), process in zip(batch, processes, strict=True):
                record({"who": who, "minutes": minutes, **result(process)})
    print(f"ours - peer: {rows[1]['bleu'] - rows[0]['bleu']:+.2f} BLEU at {args.minutes} minutes each")


if __name__ == "__main__":
    main()
