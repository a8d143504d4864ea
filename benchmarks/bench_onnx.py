"""The exported ONNX graphs in onnxruntime (`translate_onnx.py`'s `OnnxTranslator`) against `generate()`, on the
same machine in one run (time it on an idle machine).

    python benchmarks/bench_onnx.py runs/default --threads 2

The model is exported to a temporary folder (`python -m modeling_gru_seq2seq.export_onnx`'s `export_onnx`); the
same 1,000 held-out sources as `bench_generate.py` (validation then test split of the shared file, seed 42) are
translated greedily at batch 1 and 64 (and with 5 beams at batch 64) by `translate()` in float32 and int8 and by
the ONNX translator (onnxruntime's CPU provider, `--threads` threads). Per row: sentences/s, BLEU against the
English, and the translations that differ from float32 `translate()`'s in the same mode (`unlike`). Prints a table
and writes `bench_onnx.json` beside this file.
"""

import argparse
import importlib.util
import json
import os
import tempfile
import time

import onnxruntime
import sacrebleu
import torch
from bench_generate import DATA, held_out_pairs, time_ours  # benchmarks/, on sys.path when run as a script
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

from modeling_gru_seq2seq.export_onnx import TRANSLATOR_FILE, export_onnx
from modeling_gru_seq2seq.translate import translate

HERE = os.path.dirname(os.path.abspath(__file__))
MODES = ((1, 1), (1, 64), (5, 64))  # (beams, batch)


def onnx_translator(folder: str, threads: int):
    spec = importlib.util.spec_from_file_location("translate_onnx", os.path.join(folder, TRANSLATOR_FILE))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.OnnxTranslator(folder, threads)


def time_onnx(translator, sources, batch_size, num_beams, expected, references) -> dict:
    translator.translate(sources[:batch_size], num_beams=num_beams, batch_size=batch_size)  # warm-up
    start = time.perf_counter()
    texts = translator.translate(sources, num_beams=num_beams, batch_size=batch_size)
    seconds = time.perf_counter() - start
    return {
        "sentences_per_s": len(sources) / seconds,
        "seconds": seconds,
        "unlike": sum(a != b for a, b in zip(texts, expected, strict=True)),
        "bleu": sacrebleu.corpus_bleu(texts, [references]).score,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="a saved model's folder")
    parser.add_argument("--data", default=DATA)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--output", default=os.path.join(HERE, "bench_onnx.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    pairs = held_out_pairs(args.data, args.count)
    sources, references = [pair["fr"] for pair in pairs], [pair["en"] for pair in pairs]
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    models = {
        dtype: AutoModelForSeq2SeqLM.from_pretrained(args.model).to_inference_dtype(dtype)
        for dtype in ("float32", "int8")
    }
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        export_onnx(args.model, folder)
        export_seconds = time.perf_counter() - start
        translator = onnx_translator(folder, args.threads)
        for num_beams, batch_size in MODES:
            mode = f"{'greedy' if num_beams == 1 else f'beam {num_beams}'}, batch {batch_size}"
            expected = [t.text for t in translate(models["float32"], tokenizer, sources, num_beams=num_beams)]
            for dtype, model in models.items():
                timing = time_ours(model, tokenizer, sources, batch_size, num_beams, expected, references)
                unlike = timing.pop("outputs_unlike_generation_mixin")
                rows.append({"who": f"generate() {dtype}", "mode": mode, **timing, "unlike": unlike})
            timing = time_onnx(translator, sources, batch_size, num_beams, expected, references)
            rows.append({"who": "onnxruntime", "mode": mode, **timing})
    print(f"\nexport: {export_seconds:.1f} s; {len(sources)} held-out sentences, {args.threads} threads")
    print(f"{'who':<20} {'mode':<18} {'sent/s':>8} {'unlike':>6} {'BLEU':>6}")
    for row in rows:
        print(
            f"{row['who']:<20} {row['mode']:<18} {row['sentences_per_s']:8.1f} {row['unlike']:>6} {row['bleu']:6.1f}"
        )
    print("(unlike: translations that differ from float32 generate()'s in the same mode)")
    with open(args.output, "w") as handle:
        json.dump(
            {
                "date": time.strftime("%Y-%m-%d"),
                "threads": args.threads,
                "torch": torch.__version__,
                "onnxruntime": onnxruntime.__version__,
                "model": args.model,
                "export_seconds": export_seconds,
                "rows": rows,
            },
            handle,
            indent=2,
        )


if __name__ == "__main__":
    main()
