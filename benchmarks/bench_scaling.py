"""The tutorial's studies, as `run_translation.py` runs on the shared file, one at a time (time them on an idle
machine): scaling ("more layers, more hidden units, and more sentences"), autoencoder pretraining, unknown
words, and the best general translator for a budget ("open").

    python benchmarks/bench_scaling.py                                  # the scaling grid, 10 minutes a row
    python benchmarks/bench_scaling.py --rows "hidden 256" "1 layer" --minutes 5
    python benchmarks/bench_scaling.py --rows "hidden 256, lr 1e-3, decoder 1x" --minutes 60   # a confirmation
    python benchmarks/bench_scaling.py --study pretraining --steps 3400
    python benchmarks/bench_scaling.py --study unknown --steps 3400
    python benchmarks/bench_scaling.py --study open                     # OPEN_ROWS, 10 minutes a row
    python benchmarks/bench_scaling.py --study open --rows "bpe 8k" --minutes 60   # a confirmation

`--study scaling` trains each row of `GRID` for `--minutes` of wall time (`--max_train_minutes`, no evaluation
or checkpoint during training), then scores the test split greedy (the run's own `--do_predict`) and with 5
beams (a second `--do_predict` run). Per row: optimizer steps, training pairs per second, test BLEU and chrF
(greedy, beam 5), the training process's peak memory (its maximum resident set) and the test pairs scored.
Rows that change the length filter have more sentences, and so their own test split.

`--study pretraining`, at equal total steps (`--steps`, pretraining counted): no pretraining; an autoencoder
(`--autoencode`) for half the steps, then a translation model from its encoder (`--init_encoder_from`) for
the other half, the encoder frozen (`--freeze_encoder`) or trained on.

`--study unknown`, on the `--open_test` split (test sentences held out before the vocabularies are built) at
`--steps` each: `--unknown_pairs drop` (the tutorial's) and `keep`, each scored without and with
`--replace_unknown`: `predict_bleu` over the whole open test, `predict_bleu_in_vocab` over its pairs whose
words are all in the vocabularies.

`--study open` trains each row of `OPEN_ROWS` like a scaling row (`--minutes` of wall time), on the shared file's
pairs of up to 50 words (25 in one row), and scores them on one uniform test: `--open_test
--open_test_all_lengths` holds out 5% of the file's source sentences before the length filter, so the test has
sentences of every length that training never saw (the same 8,000-odd pairs for every row). Per row, greedy and
with 5 beams: BLEU and chrF (sacreBLEU, cased, detokenized, on the references as written; a word-level row
writes normalized text, so its `bleu_normalized`, after the tutorial's normalization of both sides, is the one to
compare with it) and BLEU by source length (`bleu_len_1_5` .. `bleu_len_21_plus`, words). The best row is the
one with the highest greedy BLEU.

Each row is printed as a Markdown table row and saved to `--output` (default `bench_<study>.json` beside this
file) as it comes; `--extra` adds flags to every run (e.g. `--extra "--hidden_size 32"` for a quick look).
"""

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DATA = os.path.join(ROOT, "..", "shared", "data", "eng-fra.txt")
GRID = {  # row name: its flags (the rest are the tutorial's defaults: hidden 500, 2 layers, lr 1e-4, decoder 5x)
    "default": [],
    "hidden 256": ["--hidden_size", "256"],
    "hidden 1000": ["--hidden_size", "1000"],
    "1 layer": ["--num_layers", "1"],
    "4 layers": ["--num_layers", "4"],
    "up to 10 words": ["--length_unit", "words", "--min_length", "1", "--max_length", "10"],
    "up to 20 words": ["--length_unit", "words", "--min_length", "1", "--max_length", "20"],
    "lr 1e-3, decoder 1x": ["--learning_rate", "1e-3", "--decoder_learning_ratio", "1"],
    "hidden 256, lr 1e-3, decoder 1x": [
        "--hidden_size",
        "256",
        "--learning_rate",
        "1e-3",
        "--decoder_learning_ratio",
        "1",
    ],
}
# --study open: each row's flags after OPEN_BASE (the shared file's pairs of 1..50 words, one layer, batches of
# similar lengths; the test: OPEN_TEST)
OPEN_BASE = ["--length_unit", "words", "--min_length", "1", "--max_length", "50", "--num_layers", "1"]
OPEN_BASE += ["--train_sampling_strategy", "group_by_length"]
OPEN_TEST = ["--open_test", "--open_test_all_lengths"]
SUBWORDS = ["--normalization", "none", "--vocabulary"]  # the text as written, in subwords
LR_1E3 = ["--learning_rate", "1e-3", "--decoder_learning_ratio", "1"]
COMBINED_FP32 = [*SUBWORDS, "bpe", "--vocab_size", "4000", *LR_1E3]
COMBINED = [*COMBINED_FP32, "--bf16"]
TF_1 = ["--teacher_forcing_ratio", "1.0"]
LINEAR_DECAY = ["--lr_scheduler_type", "linear"]  # to zero over the time limit
OPEN_ROWS = {
    "word level": ["--unknown_pairs", "keep"],  # the tutorial's vocabulary and normalization (ascii)
    "bpe 4k": [*SUBWORDS, "bpe", "--vocab_size", "4000"],
    "bpe 8k": [*SUBWORDS, "bpe", "--vocab_size", "8000"],
    "bpe 16k": [*SUBWORDS, "bpe", "--vocab_size", "16000"],
    "unigram 8k": [*SUBWORDS, "unigram", "--vocab_size", "8000"],
    "joint bpe 16k": [*SUBWORDS, "bpe", "--vocab_size", "16000", "--joint_vocabulary"],
    "bpe 8k, lr 1e-3, decoder 1x": [
        *SUBWORDS,
        "bpe",
        "--vocab_size",
        "8000",
        "--learning_rate",
        "1e-3",
        "--decoder_learning_ratio",
        "1",
    ],
    "bpe 8k, bf16": [*SUBWORDS, "bpe", "--vocab_size", "8000", "--bf16"],
    # the best of the rows above together (4k beat 8k and 16k; lr 1e-3 and bf16 each beat bpe 8k)
    "combined": COMBINED,
    "combined, teacher forcing 1.0": [*COMBINED, *TF_1],
    # then one change at a time on the best so far
    "combined, teacher forcing 1.0, fp32": [*COMBINED_FP32, *TF_1],
    "combined, teacher forcing 1.0, up to 25 words": [*COMBINED, *TF_1, "--max_length", "25"],
    "combined, teacher forcing 1.0, 2 layers": [*COMBINED, *TF_1, "--num_layers", "2"],
    "combined, teacher forcing 1.0, subword dropout 0.1": [*COMBINED, *TF_1, "--subword_dropout", "0.1"],
    # the learning rate decayed over the time limit (the rows above keep it constant, the tutorial's schedule)
    "combined, teacher forcing 1.0, linear decay": [*COMBINED, *TF_1, *LINEAR_DECAY],
    "combined, teacher forcing 1.0, fp32, linear decay": [*COMBINED_FP32, *TF_1, *LINEAR_DECAY],
}
QUIET = ["--eval_strategy", "no", "--save_strategy", "no", "--num_attention_plots", "0", "--disable_tqdm", "true"]


def run_script(flags: list[str], log_path: str, threads: int) -> int:
    """Run `run_translation.py` with `flags`, its output into `log_path`; the process's peak resident memory
    (MiB). A failed run raises with the end of its log."""
    environment = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [sys.executable, os.path.join(ROOT, "run_translation.py"), *flags],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=environment,
        )
        _, status, usage = os.wait4(process.pid, 0)  # the rusage of this process alone
        process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        with open(log_path) as log:
            raise RuntimeError(
                f"run_translation.py {shlex.join(flags)} exited {process.returncode}:\n{log.read()[-3000:]}"
            )
    return round(usage.ru_maxrss / 1024)


def read_json(folder: str, name: str) -> dict:
    with open(os.path.join(folder, name)) as handle:
        return json.load(handle)


def predict(model_dir: str, data_flags: list[str], folder: str, threads: int, *flags: str) -> dict:
    """`--do_predict` of a trained model on the same data, with `flags` (e.g. `--num_beams 5`): its metrics."""
    output_dir = os.path.join(folder, f"predict-{len(os.listdir(folder))}")
    run = ["--model_name_or_path", model_dir, "--do_predict", *data_flags, "--output_dir", output_dir]
    run_script([*run, "--disable_tqdm", "true", *flags], output_dir + ".log", threads)
    return read_json(output_dir, "predict_results.json")


def train(name: str, flags: list[str], folder: str, threads: int) -> dict:
    """Train a new model with `flags` into `folder/name`; its figures and folder."""
    output_dir = os.path.join(folder, name.replace(" ", "_").replace(",", ""))
    memory = run_script([*flags, *QUIET, "--output_dir", output_dir], output_dir + ".log", threads)
    state, results = read_json(output_dir, "trainer_state.json"), read_json(output_dir, "all_results.json")
    batch = state["train_batch_size"]
    return {
        **scores_beyond_bleu(results),
        "output_dir": output_dir,
        "steps": state["global_step"],
        "pairs_per_second": state["global_step"] * batch / results["train_runtime"],
        "bleu": results["predict_bleu"],
        "chrf": results["predict_chrf"],
        "bleu_in_vocab": results.get("predict_bleu_in_vocab"),  # (word vocabularies only)
        "test_pairs": results["predict_samples"],
        "peak_memory_mib": memory,
    }


def scores_beyond_bleu(results: dict, prefix: str = "") -> dict:
    """`bleu_normalized` and BLEU by source length (`bleu_len_*`) of a run's test, where it has them, each key
    after `prefix`."""
    names = [key.removeprefix("predict_") for key in results if key.startswith("predict_bleu_")]
    return {
        prefix + name: results["predict_" + name]
        for name in names
        if name.startswith(("bleu_normalized", "bleu_len_"))
    }


def timed_rows(args, folder: str, record, row_flags) -> None:
    """Each of `args.rows` (its flags: `row_flags(name)`) trained for `--minutes`, scored greedy (its run's own
    test) and with 5 beams; a row that fails (a learning rate that diverges) is recorded with its error, and the
    study goes on."""
    for name in args.rows:
        data_flags = ["--train_file", args.train_file, *row_flags(name), *args.extra]
        training = [*data_flags, "--max_train_minutes", str(args.minutes), "--num_train_epochs", "1000"]
        try:
            row = train(name, training, folder, args.threads)
        except RuntimeError as error:
            errors = [line for line in str(error).splitlines() if line.startswith("error:")]
            record({"row": name, "minutes": args.minutes, "failed": errors[-1] if errors else str(error)[-300:]})
            continue
        beam = predict(row["output_dir"], data_flags, folder, args.threads, "--num_beams", "5")
        beam_scores = {"beam5_bleu": beam["predict_bleu"], "beam5_chrf": beam["predict_chrf"]}
        record({"row": name, "minutes": args.minutes, **row, **beam_scores, **scores_beyond_bleu(beam, "beam5_")})


def scaling(args, folder: str, record) -> None:
    timed_rows(args, folder, record, lambda name: GRID[name])


def pretraining(args, folder: str, record) -> None:
    data = ["--train_file", args.train_file, *args.extra]
    half = str(args.steps // 2)
    record(
        {
            "row": "no pretraining",
            **train("translation", [*data, "--max_steps", str(args.steps)], folder, args.threads),
        }
    )
    autoencoder = train("autoencoder", [*data, "--autoencode", "--max_steps", half], folder, args.threads)[
        "output_dir"
    ]
    for name, freeze in (("autoencoder, encoder frozen", ["--freeze_encoder"]), ("autoencoder, encoder trained", [])):
        start = ["--init_encoder_from", autoencoder, *freeze, "--max_steps", half]
        record({"row": name, **train(name, [*data, *start], folder, args.threads)})


def unknown(args, folder: str, record) -> None:
    for pairs in ("drop", "keep"):
        data = ["--train_file", args.train_file, "--open_test", "--unknown_pairs", pairs, *args.extra]
        row = train(f"unknown pairs {pairs}", [*data, "--max_steps", str(args.steps)], folder, args.threads)
        record({"row": f"--unknown_pairs {pairs}", **row})
        replaced = predict(row["output_dir"], data, folder, args.threads, "--replace_unknown")
        figures = {"bleu": replaced["predict_bleu"], "chrf": replaced["predict_chrf"]}
        record(
            {
                "row": f"--unknown_pairs {pairs} --replace_unknown",
                **row,
                **figures,
                "bleu_in_vocab": replaced["predict_bleu_in_vocab"],
            }
        )


def open_study(args, folder: str, record) -> None:
    timed_rows(args, folder, record, lambda name: [*OPEN_BASE, *OPEN_ROWS[name], *OPEN_TEST])


STUDIES = {"scaling": scaling, "pretraining": pretraining, "unknown": unknown, "open": open_study}
ROWS = {"scaling": GRID, "open": OPEN_ROWS}  # the studies made of named rows
COLUMNS = {  # column: (header, format)
    "row": ("row", "{}"),
    "minutes": ("minutes", "{:g}"),
    "steps": ("steps", "{}"),
    "pairs_per_second": ("pairs/s", "{:.0f}"),
    "bleu": ("BLEU", "{:.2f}"),
    "chrf": ("chrF", "{:.2f}"),
    "bleu_in_vocab": ("BLEU in vocab", "{:.2f}"),
    "beam5_bleu": ("BLEU beam 5", "{:.2f}"),
    "beam5_chrf": ("chrF beam 5", "{:.2f}"),
    "bleu_normalized": ("BLEU normalized", "{:.2f}"),
    "bleu_len_1_5": ("1-5 words", "{:.2f}"),
    "bleu_len_6_10": ("6-10", "{:.2f}"),
    "bleu_len_11_20": ("11-20", "{:.2f}"),
    "bleu_len_21_plus": ("21+", "{:.2f}"),
    "beam5_bleu_normalized": ("normalized beam 5", "{:.2f}"),
    "beam5_bleu_len_11_20": ("11-20 beam 5", "{:.2f}"),
    "peak_memory_mib": ("peak MiB", "{}"),
    "test_pairs": ("test pairs", "{}"),
}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.epilog = "scaling rows (GRID):\n" + "\n".join(
        f"  {name!r}: {' '.join(flags) or '(the defaults)'}" for name, flags in GRID.items()
    )
    parser.epilog += (
        f"\n\nopen rows (OPEN_ROWS; each after {' '.join(OPEN_BASE)}, scored on {' '.join(OPEN_TEST)}):\n"
        + "\n".join(f"  {name!r}: {' '.join(flags)}" for name, flags in OPEN_ROWS.items())
    )
    parser.add_argument("--study", choices=list(STUDIES), default="scaling", help="which table (default: scaling)")
    parser.add_argument(
        "--rows",
        nargs="+",
        metavar="ROW",
        choices=[*GRID, *OPEN_ROWS],
        help="the scaling or open rows to run (default: all of the study's, GRID or OPEN_ROWS, below)",
    )
    parser.add_argument(
        "--minutes", type=float, default=10.0, help="wall time of each scaling or open row's training (default 10)"
    )
    parser.add_argument(
        "--steps",
        type=int,
        default=3400,
        help="steps of each pretraining and unknown-words row (default 3400: the default run's 10 epochs; "
        "pretraining counted)",
    )
    parser.add_argument("--threads", type=int, default=2, help="OMP_NUM_THREADS of each run (default 2)")
    parser.add_argument("--train_file", default=DATA, help="the pair file (default: the shared eng-fra.txt)")
    parser.add_argument("--extra", type=shlex.split, default=[], help="flags added to every run, one quoted string")
    parser.add_argument("--output", help="where the rows go (default: bench_<study>.json beside this file)")
    args = parser.parse_args(argv)
    if args.minutes <= 0 or args.steps < 2 or args.threads < 1:
        parser.error("--minutes must be > 0, --steps >= 2 and --threads >= 1")
    table = ROWS.get(args.study, {})
    if args.rows is not None and any(row not in table for row in args.rows):
        parser.error(f"--rows: --study {args.study} has {'rows: ' + ', '.join(map(repr, table)) if table else 'none'}")
    args.rows = args.rows or list(table)
    args.output = args.output or os.path.join(HERE, f"bench_{args.study}.json")
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    machine = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    model = next(
        (line.split(":", 1)[1].strip() for line in machine.splitlines() if line.startswith("Model name")),
        platform.processor(),
    )
    rows = []
    beam5 = {"minutes", "beam5_bleu", "beam5_chrf"}
    open_only = {column for column in COLUMNS if "normalized" in column or "_len_" in column}
    hidden = {  # the columns each study leaves out
        "scaling": {"bleu_in_vocab", *open_only},
        "open": {"bleu_in_vocab", "peak_memory_mib"},
    }.get(args.study, beam5 | open_only)
    columns = [column for column in COLUMNS if column not in hidden]
    print(f"{args.study}, {model}, {args.threads} thread(s)\n")
    print("| " + " | ".join(COLUMNS[column][0] for column in columns) + " |")
    print("|" + "---|" * len(columns), flush=True)

    def record(row: dict) -> None:  # printed and saved as it comes: a crash later loses nothing
        rows.append({key: value for key, value in row.items() if key != "output_dir"})
        cells = [COLUMNS[column][1].format(row[column]) if column in row else "" for column in columns]
        if "failed" in row:
            cells[-1] = row["failed"]
        print("| " + " | ".join(cells) + " |", flush=True)
        with open(args.output, "w") as handle:
            json.dump(
                {
                    "study": args.study,
                    "machine": model,
                    "threads": args.threads,
                    "date": time.strftime("%Y-%m-%d"),
                    "argv": sys.argv[1:],
                    "rows": rows,
                },
                handle,
                indent=2,
            )

    with tempfile.TemporaryDirectory() as folder:
        STUDIES[args.study](args, folder, record)


if __name__ == "__main__":
    main()
