"""Translation throughput of a trained model against the tutorial's code (the peer)'s one-sentence greedy decoding.

    python benchmarks/bench_generate.py runs/default --threads 2
    python benchmarks/bench_generate.py runs/default --device cuda
    python benchmarks/bench_generate.py --device cuda --train_steps 500     # trains its own model first

The same 1,000 held-out sources (validation then test split of the shared file, seed 42) are translated
by `translate()` greedily and with 5 beams, at batch 1 and 64; the peer
(`../shared/peers/seed_tutorial.py --vectorized-attn`) trains briefly, then decodes the same pairs one
sentence at a time (its `evaluate()`). Prints a table and ratios, writes `bench_generate.json` beside
this file. The ceiling is measured in the same run, as in `bench_train.py`: a sentence's forward GEMM work
(a third of `useful_gflop_per_pair`, ~0.14 GFLOP at the tutorial's sizes) at the speed of the GRU step's
matmul, the fastest of torch's and the compiled GRU loops' (`step_gemm_speeds`; issue 7 assumed ~105
GFLOP/s, ~700 sentences/s). Each of our rows also counts the translations that differ from
`GenerationMixin.generate`'s own (batch 64), which the lean loops must reproduce: `unlike`, 0 when nothing
changed but the speed. On the CPU it times the first `translator(...)` call after `pipeline(...)` in a fresh
process with an empty `TORCH_EXTENSIONS_DIR` (with `trust_remote_code`, so the model folder's own code copies
run: save it with the code to be measured).

Every row is timed in each number format of `--dtypes` (default: all of `INFERENCE_DTYPES`, float32, bfloat16
and int8, each model converted by `to_inference_dtype`): the table's `dtype` column follows the mode, and
sentences/s stays the first number after them. Each row's last column is the BLEU of its translations of the
held-out sentences against their English (sacreBLEU); `of ceiling` is against that dtype's product speed.

Without a model directory the script first trains one, a short `run_translation.py` run on `--data`
(`--train_steps` steps at learning rate 1e-3, `--hidden_size`/`--num_layers`, the tutorial's by default),
into a temporary folder. On CUDA each of our rows also gives its peak GPU memory
(`torch.cuda.max_memory_allocated`).
"""

import argparse
import contextlib
import functools
import io
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import sacrebleu
import torch
from bench_train import step_gemm_speeds, useful_gflop_per_pair  # benchmarks/, on sys.path when run as a script
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer, GenerationMixin

import run_translation
from data_scripts.prepare_tatoeba import PrepareArguments, export_pairs, prepare_tatoeba
from modeling_gru_seq2seq.modeling_gru_seq2seq import INFERENCE_DTYPES
from modeling_gru_seq2seq.translate import translate

HERE = os.path.dirname(os.path.abspath(__file__))
PEER = os.path.join(HERE, "..", "..", "shared", "peers", "seed_tutorial.py")
DATA = os.path.join(HERE, "..", "..", "shared", "data", "eng-fra.txt")


def held_out_pairs(data: str, count: int):
    with contextlib.redirect_stdout(io.StringIO()):
        dataset = prepare_tatoeba(data).dataset
    pairs = list(dataset["validation"]["translation"]) + list(dataset["test"]["translation"])
    return pairs[:count]


def train_model(args, output_dir: str) -> None:
    """A new model trained by `run_translation.py` for `args.train_steps` steps into `output_dir` (evaluated on one
    pair only: the benchmark's own sentences are what count)."""
    code = run_translation.main(
        [
            "--train_file",
            args.data,
            "--output_dir",
            output_dir,
            "--hidden_size",
            str(args.hidden_size),
            "--num_layers",
            str(args.num_layers),
            "--max_steps",
            str(args.train_steps),
            "--learning_rate",
            "1e-3",
            "--eval_strategy",
            "no",
            "--save_strategy",
            "no",
            "--max_eval_samples",
            "1",
            "--max_predict_samples",
            "1",
            "--num_attention_plots",
            "0",
            "--report_to",
            "none",
            "--disable_tqdm",
            "true",
            "--use_cpu",
            str(args.device == "cpu").lower(),
        ]
    )
    if code:
        sys.exit(f"training the model failed (run_translation.py exit code {code})")


def generation_mixin_texts(model, tokenizer, sources, num_beams) -> list[str]:
    """The translations of `sources` (batch 64) by `GenerationMixin.generate` itself, bypassing the lean loops:
    the outputs every row must reproduce."""
    model.generate = functools.partial(GenerationMixin.generate, model)
    try:
        return [r.text for r in translate(model, tokenizer, sources, num_beams=num_beams, max_new_tokens=25)]
    finally:
        del model.generate


def time_ours(model, tokenizer, sources, batch_size, num_beams, expected_texts=None, references=None) -> dict:
    translate(model, tokenizer, sources[:batch_size], batch_size=batch_size, num_beams=num_beams)  # warm-up
    on_cuda = model.device.type == "cuda"
    if on_cuda:
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    results = translate(model, tokenizer, sources, batch_size=batch_size, num_beams=num_beams, max_new_tokens=25)
    seconds = time.perf_counter() - start
    mean_length = sum(len(r.output_tokens) for r in results) / len(results)
    result = {"sentences_per_s": len(sources) / seconds, "seconds": seconds, "mean_output_tokens": mean_length}
    if expected_texts is not None:
        result["outputs_unlike_generation_mixin"] = sum(
            r.text != t for r, t in zip(results, expected_texts, strict=True)
        )
    if references is not None:  # BLEU of these translations against the held-out pairs' English
        result["bleu"] = sacrebleu.corpus_bleu([r.text for r in results], [references]).score
    if on_cuda:
        result["peak_gpu_memory_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return result


FIRST_CALL = """
import json, sys, time
from transformers import pipeline
translator = pipeline("translation", model=sys.argv[1], trust_remote_code=True)
start = time.perf_counter()
translator(sys.argv[2])
print(json.dumps({"first_call_seconds": time.perf_counter() - start}))
"""


def time_first_call(model_dir: str, sentence: str, threads: int) -> dict:
    """Seconds of the first `translator(sentence)` after `pipeline(...)` returns, in a fresh process with an empty
    `TORCH_EXTENSIONS_DIR` (nothing built yet), and whether that process built anything."""
    with tempfile.TemporaryDirectory() as extensions:
        env = {**os.environ, "TORCH_EXTENSIONS_DIR": extensions, "OMP_NUM_THREADS": str(threads)}
        command = [sys.executable, "-c", FIRST_CALL, model_dir, sentence]
        result = subprocess.run(command, capture_output=True, text=True, check=True, env=env)
        timing = json.loads(result.stdout.strip().splitlines()[-1])
        timing["built"] = any(name.endswith(".so") for _, _, files in os.walk(extensions) for name in files)
    return timing


def time_peer(args, pairs_file) -> dict:
    command = [
        sys.executable,
        args.peer,
        "--data",
        args.data,
        "--steps",
        str(args.peer_train_steps),
        "--warmup",
        "0",
        "--threads",
        str(args.threads),
        "--device",
        args.device,
        "--vectorized-attn",
        "--eval-pairs",
        pairs_file,
        "--print-every",
        "1000000",
        "--evaluate-every",
        "0",
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "model", nargs="?", help="a trained model directory (e.g. run_translation.py's --output_dir); none: train one"
    )
    parser.add_argument("--data", default=DATA, help="English<TAB>French pair file")
    parser.add_argument("--peer", default=PEER, help="the tutorial's script")
    parser.add_argument("--output", default=os.path.join(HERE, "bench_generate.json"), help="the JSON results")
    parser.add_argument("--hidden_size", type=int, default=500, help="of the model trained without a model directory")
    parser.add_argument("--num_layers", type=int, default=2, help="of the model trained without a model directory")
    parser.add_argument("--train_steps", type=int, default=500, help="training steps of that model")
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--peer_train_steps", type=int, default=300)
    parser.add_argument("--skip_peer", action="store_true")
    parser.add_argument(
        "--dtypes",
        nargs="+",
        choices=INFERENCE_DTYPES,
        default=list(INFERENCE_DTYPES),
        help="the number formats to time, each on the same sentences (default: all)",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    pairs = held_out_pairs(args.data, args.count)
    sources, references = [pair["fr"] for pair in pairs], [pair["en"] for pair in pairs]
    with tempfile.TemporaryDirectory() as folder:
        model_dir = args.model
        if model_dir is None:
            model_dir = os.path.join(folder, "model")
            train_model(args, model_dir)
        models = {
            dtype: AutoModelForSeq2SeqLM.from_pretrained(model_dir).to(args.device).to_inference_dtype(dtype)
            for dtype in args.dtypes
        }
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        first_call = time_first_call(model_dir, sources[0], args.threads) if args.device == "cpu" else None
    model_name = args.model or (
        f"trained here: hidden {args.hidden_size}, {args.num_layers} layers, {args.train_steps} steps"
    )
    rows = []
    for dtype, model in models.items():
        for num_beams in (1, 5):
            expected = generation_mixin_texts(model, tokenizer, sources, num_beams)
            for batch_size in (1, 64):
                name = f"{'greedy' if num_beams == 1 else 'beam 5'}, batch {batch_size}"
                timing = time_ours(model, tokenizer, sources, batch_size, num_beams, expected, references)
                rows.append({"who": "ours", "mode": name, "dtype": dtype, **timing})
    model = next(iter(models.values()))
    speeds = step_gemm_speeds(args.device)  # generation's GRU runs the compiled loops too
    gflops = speeds["best"]
    source_tokens = sum(len(ids) for ids in tokenizer(sources)["input_ids"]) / len(sources)
    greedy_tokens = rows[1]["mean_output_tokens"]  # greedy, batch 64
    work = useful_gflop_per_pair(model.config, source_tokens, greedy_tokens) / 3
    ceilings = {  # each dtype's step product
        "float32": gflops / work,
        "bfloat16": speeds["bf16"] / work,
        "int8": speeds.get("int8", float("nan")) / work,
    }
    ceiling = ceilings["float32"]
    print(
        f"step GEMM {gflops:.0f} GFLOP/s (torch {speeds['torch']:.0f}, ours {speeds['ours_mkl']:.0f} MKL / "
        f"{speeds['ours_onednn']:.0f} oneDNN; bfloat16 {speeds['bf16']:.0f}; int8 {speeds.get('int8', 0):.0f}); "
        f"{source_tokens:.2f} source, {greedy_tokens:.2f} output tokens a sentence; greedy ceiling "
        f"{ceiling:.0f} sentences/s (float32), {ceilings['bfloat16']:.0f} (bfloat16), {ceilings['int8']:.0f} (int8)"
    )
    if not args.skip_peer:
        with tempfile.TemporaryDirectory() as folder:
            from datasets import Dataset, DatasetDict

            export_pairs(
                DatasetDict({"held_out": Dataset.from_dict({"translation": pairs})}), folder, "tsv", PrepareArguments()
            )
            peer = time_peer(args, os.path.join(folder, "held_out.tsv"))
        rows.append(
            {
                "who": "peer vectorized",
                "mode": "greedy, one sentence",
                "dtype": "float32",
                "sentences_per_s": peer["decode_sentences_per_s"],
                "seconds": peer["decode_seconds"],
                "mean_output_tokens": None,
                "pairs_decoded": peer.get("eval_pairs_used"),
            }
        )
    print(
        f"\n{'who':<16} {'mode':<22} {'dtype':<9} {'sent/s':>8} {'seconds':>8} {'out tokens':>10} {'of ceiling':>10} "
        f"{'unlike':>6} {'BLEU':>6}"
    )
    for row in rows:
        length = f"{row['mean_output_tokens']:10.2f}" if row["mean_output_tokens"] else f"{'-':>10}"
        bleu = f"{row['bleu']:6.1f}" if "bleu" in row else f"{'-':>6}"
        print(
            f"{row['who']:<16} {row['mode']:<22} {row['dtype']:<9} {row['sentences_per_s']:8.1f} "
            f"{row['seconds']:8.2f} {length} {row['sentences_per_s'] / ceilings[row['dtype']]:10.0%} "
            f"{row.get('outputs_unlike_generation_mixin', '-'):>6} {bleu}"
        )
    print(
        "(unlike: outputs that differ from GenerationMixin.generate's own in the same dtype, batch 64; BLEU: of "
        f"each row's translations of the {len(sources)} held-out sentences, sacreBLEU against their English)"
    )
    peer_row = next((r for r in rows if r["who"].startswith("peer")), None)
    ratios = {}
    if peer_row:
        for row in rows[:-1]:  # float32's keys as before; the other dtypes' name them
            key = f"{row['mode']}{'' if row['dtype'] == 'float32' else ' ' + row['dtype']} vs peer greedy"
            ratios[key] = row["sentences_per_s"] / peer_row["sentences_per_s"]
            print(f"ratio {key}: {ratios[key]:.2f}x")
    for row in rows:
        if "peak_gpu_memory_mb" in row:
            print(f"{row['mode']}: peak GPU memory {row['peak_gpu_memory_mb']:.0f} MB")
    if first_call:
        print(
            f"first translator(...) call in a fresh process, nothing built: {first_call['first_call_seconds']:.2f} s"
            f"{' (it built the compiled loops)' if first_call['built'] else ''}"
        )
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS (ours): {peak_rss_mb:.0f} MB")
    with open(args.output, "w") as handle:
        json.dump(
            {
                "date": time.strftime("%Y-%m-%d"),
                "device": args.device,
                "threads": args.threads,
                "torch": torch.__version__,
                "model": model_name,
                "step_gemm_gflops": gflops,
                "step_gemm_gflops_by": speeds,
                "ceiling_sentences_per_s": ceiling,
                "ceiling_sentences_per_s_by_dtype": ceilings,
                "rows": rows,
                "ratios": ratios,
                "peak_rss_mb_ours": peak_rss_mb,
                "first_call": first_call,
            },
            handle,
            indent=2,
        )


if __name__ == "__main__":
    main()
