"""Training throughput of the project's model against the tutorial's code (the peer), in one run.

    OMP_NUM_THREADS=1 python benchmarks/bench_train.py --threads 1 --steps 40
    python benchmarks/bench_train.py --device cuda --steps 200        # on a GPU
    python benchmarks/bench_train.py --device cuda --bf16 --profile 5 --skip_peer --output /tmp/bf16.json

Our side times the Trainer's work per step (forward, masked loss, backward, clipping at 50, Adam with
the decoder at 5x) on random batches of 50 prepared pairs, as the tutorial's `random_batch` draws them; the
peer (`../shared/peers/seed_tutorial.py`) runs as a subprocess on the same file, as written and with
`--vectorized-attn`, at the same teacher forcing. Prints a table and the ratios, writes
`bench_train.json` beside this file. The ceiling is measured in the same run: the useful GEMM work of a
pair (`useful_gflop_per_pair`, ~0.4-0.5 GFLOP at the tutorial's sizes) at the speed of the GRU's own step
GEMM, a `[50,500]x[500,1500]` matmul, on this machine and thread count, the faster of torch's (`torch.mm`,
MKL) and the one our compiled GRU layers run (`gru_kernels`: oneDNN where it works). Issue 7 assumed ~105
GFLOP/s, about 270 pairs/s; machines here have measured 105 to about 360 GFLOP/s, and oneDNN runs twice
MKL's speed on the AMD ones.

`--bf16` runs our forward and loss under bfloat16 autocast (the peer stays in float32). On CUDA each of our
rows also gives its peak GPU memory (`torch.cuda.max_memory_allocated`); `--profile N` profiles N more
steps per variant with `torch.profiler` and gives the CUDA kernel time per step and its share of the median
step's wall time (what is not kernel time is launch overhead and host work).
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

import torch
from torch.autograd import DeviceType
from transformers.trainer_pt_utils import LengthGroupedSampler

from data_scripts.prepare_tatoeba import prepare_tatoeba, tokenize_translation
from modeling_gru_seq2seq import GruSeq2SeqConfig, GruSeq2SeqForConditionalGeneration
from modeling_gru_seq2seq.gru_choice import choice
from modeling_gru_seq2seq.gru_kernels import recurrence_ops

HERE = os.path.dirname(os.path.abspath(__file__))
PEER = os.path.join(HERE, "..", "..", "shared", "peers", "seed_tutorial.py")
DATA = os.path.join(HERE, "..", "..", "shared", "data", "eng-fra.txt")


def step_gemm_gflops(device: str, seconds: float = 1.0, gemm=None, dtype=torch.float32) -> float:
    """GFLOP/s of the `[50,500]x[500,1500]` matmul, the shape of a GRU step at the tutorial's sizes: torch's own
    (`torch.mm`, MKL on x86 CPUs; oneDNN's AVX512-BF16/AMX kernels in `dtype=torch.bfloat16`), or
    `gemm(result, a, b, beta)`."""
    a, b = torch.randn(50, 500, device=device, dtype=dtype), torch.randn(500, 1500, device=device, dtype=dtype)
    result = torch.empty(50, 1500, device=device, dtype=dtype)
    run = (lambda: torch.mm(a, b, out=result)) if gemm is None else (lambda: gemm(result, a, b, 0.0))
    for _ in range(20):
        run()
    runs, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        run()
        runs += 1
    if device == "cuda":
        torch.cuda.synchronize()
    return 2 * 50 * 500 * 1500 * runs / (time.perf_counter() - start) / 1e9


def step_gemm_speeds(device: str) -> dict:
    """The step matmul's GFLOP/s by torch and by the products our compiled GRU loops can run, ATen's (MKL) and
    oneDNN's (0 where the loops are not built or oneDNN does not work); `best`, the fastest, sets the ceiling.
    Also `bf16` (torch's bfloat16 product) and, where the loops are built, `int8` (theirs, `int8_linear`)."""
    ops = recurrence_ops() if device == "cpu" else None
    speeds = {"torch": step_gemm_gflops(device), "ours_mkl": 0.0, "ours_onednn": 0.0}
    if ops is not None:
        speeds["ours_mkl"] = step_gemm_gflops(device, gemm=lambda *args: ops.gemm(*args, False))
        if ops.uses_onednn():
            speeds["ours_onednn"] = step_gemm_gflops(device, gemm=lambda *args: ops.gemm(*args, True))
    speeds["best"] = max(speeds.values())
    speeds["bf16"] = step_gemm_gflops(device, dtype=torch.bfloat16)  # the bfloat16 ceiling's product
    if ops is not None:  # the int8 ceiling's: the compiled int8 product (inputs quantized in each call)
        packed = ops.int8_pack(torch.randn(1500, 500))
        speeds["int8"] = step_gemm_gflops(device, gemm=lambda result, a, b, beta: ops.int8_linear(a, packed, 1500))
    return speeds


def useful_gflop_per_pair(config, source_tokens: float, target_tokens: float) -> float:
    """GEMM work of one training pair on its real tokens (forward and backward, 3x the forward): per source
    token the encoder GRU (input and recurrent products, both directions, every layer), per target token
    the decoder GRU, the attentional layer and the output layer."""
    hidden, layers = config.hidden_size, config.num_layers
    encoder = sum(2 * 2 * 3 * hidden * ((hidden if layer == 0 else 2 * hidden) + hidden) for layer in range(layers))
    decoder = layers * 2 * 3 * hidden * 2 * hidden + 2 * 2 * hidden * hidden + 2 * hidden * config.target_vocab_size
    return 3 * (encoder * source_tokens + decoder * target_tokens) / 1e9


def random_batches(train, batch_size: int, steps: int, seed: int, device, group_by_length: bool = False):
    """`steps` batches of `batch_size` random pairs, padded: (input_ids, attention_mask, labels).

    `group_by_length`: the Trainer's `LengthGroupedSampler` order (`train_sampling_strategy=
    "group_by_length"`: shuffled megabatches of 50 batches, each sorted by source length)."""
    generator = torch.Generator().manual_seed(seed)
    if group_by_length:
        sampler = LengthGroupedSampler(
            batch_size, lengths=[len(ids) for ids in train["input_ids"]], generator=generator
        )
        order = list(sampler)
        batches = [order[i * batch_size : (i + 1) * batch_size] for i in range(steps)]
    else:
        batches = [torch.randint(len(train), (batch_size,), generator=generator).tolist() for _ in range(steps)]
    for indices in batches:
        rows = train.select(indices)
        sources, targets = rows["input_ids"], rows["labels"]
        input_ids = torch.nn.utils.rnn.pad_sequence([torch.tensor(s) for s in sources], batch_first=True)
        labels = torch.nn.utils.rnn.pad_sequence(
            [torch.tensor(t) for t in targets], batch_first=True, padding_value=-100
        )
        yield input_ids.to(device), (input_ids != 0).long().to(device), labels.to(device)


def train_step(model, optimizer, batch, args) -> torch.Tensor:
    """One step of the Trainer's work on `batch`; the loss."""
    input_ids, attention_mask, labels = batch
    with torch.autocast(args.device, dtype=torch.bfloat16, enabled=args.bf16):
        loss = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels).loss
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 50.0)
    optimizer.step()
    return loss


def kernel_time(model, optimizer, batches, args, step_seconds: float) -> dict:
    """Profile a step on each of `batches`: CUDA kernel seconds per step (0 on the CPU) and their share of
    `step_seconds`, the median unprofiled step."""
    activities = [torch.profiler.ProfilerActivity.CPU]
    if args.device == "cuda":
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    with torch.profiler.profile(activities=activities) as profile:
        for batch in batches:
            train_step(model, optimizer, batch, args)
        if args.device == "cuda":
            torch.cuda.synchronize()
    kernel_us = sum(
        event.self_device_time_total for event in profile.key_averages() if event.device_type == DeviceType.CUDA
    )
    seconds = kernel_us / 1e6 / args.profile
    return {"cuda_kernel_seconds_per_step": seconds, "cuda_kernel_share": seconds / step_seconds}


def time_ours(train, config_kwargs, args, teacher_forcing_ratio) -> dict:
    torch.manual_seed(0)
    config = GruSeq2SeqConfig(teacher_forcing_ratio=teacher_forcing_ratio, **config_kwargs)
    model = GruSeq2SeqForConditionalGeneration(config).to(args.device).train()
    decoder_ids = {id(p) for p in model.decoder.parameters()}
    optimizer = torch.optim.Adam(
        [
            {"params": [p for p in model.parameters() if id(p) not in decoder_ids], "lr": 1e-4},
            {"params": list(model.decoder.parameters()), "lr": 5e-4},
        ],
        fused=True,
    )  # as GruSeq2SeqTrainer.create_optimizer
    step_seconds, pairs, tokens = [], 0, 0
    batches = random_batches(
        train, args.batch_size, args.warmup + args.steps + args.profile, args.seed, args.device, args.group_by_length
    )
    if args.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    for step in range(args.warmup + args.steps):
        batch = next(batches)
        start = time.perf_counter()
        loss = train_step(model, optimizer, batch, args)
        if args.device == "cuda":
            torch.cuda.synchronize()
        if step >= args.warmup:
            step_seconds.append(time.perf_counter() - start)
            pairs += batch[0].shape[0]
            tokens += int((batch[2] != -100).sum())
    total = sum(step_seconds)
    gru = "cuDNN/nn.GRU"
    if args.device == "cpu":  # what ran the GRU layers' training loops here (timed by gru_choice)
        loops = choice(config.hidden_size, args.batch_size, True, dtype=torch.bfloat16 if args.bf16 else torch.float32)
        gru = (
            "torch loops"
            if loops.ops is None
            else "compiled+" + ("bf16" if loops.bf16 else "onednn" if loops.onednn else "mkl")
        )
    result = {
        "gru": gru,
        "train_pairs_per_s": pairs / total,
        "train_target_tokens_per_s": tokens / total,
        "step_seconds_median": statistics.median(step_seconds),
        "loss": float(loss.detach()),
    }
    if args.device == "cuda":
        result["peak_gpu_memory_mb"] = torch.cuda.max_memory_allocated() / 2**20
    if args.profile:
        result.update(kernel_time(model, optimizer, batches, args, result["step_seconds_median"]))
    return result


def time_peer(args, teacher_forcing_ratio, vectorized: bool) -> dict:
    command = [
        sys.executable,
        args.peer,
        "--data",
        args.data,
        "--steps",
        str(args.steps),
        "--warmup",
        str(args.warmup),
        "--threads",
        str(args.threads),
        "--device",
        args.device,
        "--teacher-forcing-ratio",
        str(teacher_forcing_ratio),
        "--print-every",
        "1000000",
        "--evaluate-every",
        "0",
    ]
    if vectorized:
        command.append("--vectorized-attn")
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=DATA, help="English<TAB>French pair file")
    parser.add_argument("--peer", default=PEER, help="the tutorial's script")
    parser.add_argument("--output", default=os.path.join(HERE, "bench_train.json"), help="the JSON results")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch_size", type=int, default=50)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip_peer", action="store_true")
    parser.add_argument("--group_by_length", action="store_true", help="our batches as run_translation.py draws them")
    parser.add_argument("--bf16", action="store_true", help="our forward and loss under bfloat16 autocast")
    parser.add_argument(
        "--profile",
        type=int,
        default=0,
        metavar="N",
        help="profile N more steps per variant: CUDA kernel time per step and share of the median step",
    )
    parser.add_argument(
        "--variants", nargs="*", default=["dot-0.5", "dot-1.0", "general-0.5", "concat-0.5", "bahdanau-0.5"]
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    corpus = prepare_tatoeba(args.data)
    train = tokenize_translation(corpus.dataset["train"], corpus.tokenizer)
    sizes = {
        "source_vocab_size": corpus.tokenizer.source_vocab_size,
        "target_vocab_size": corpus.tokenizer.target_vocab_size,
    }
    speeds = step_gemm_speeds(args.device)
    gflops = speeds["best"]
    mean_source = sum(map(len, train["input_ids"])) / len(train)
    mean_target = sum(map(len, train["labels"])) / len(train)
    gflop_per_pair = useful_gflop_per_pair(GruSeq2SeqConfig(**sizes), mean_source, mean_target)
    ceiling = gflops / gflop_per_pair
    bf16_ceiling = speeds["bf16"] / gflop_per_pair
    print(
        f"step GEMM: torch {speeds['torch']:.0f} GFLOP/s, ours {speeds['ours_mkl']:.0f} (MKL) / "
        f"{speeds['ours_onednn']:.0f} (oneDNN) GFLOP/s, bfloat16 {speeds['bf16']:.0f} GFLOP/s; "
        f"{gflop_per_pair:.3f} GFLOP per pair ({mean_source:.2f} source, {mean_target:.2f} target tokens); "
        f"ceiling {ceiling:.0f} pairs/s (float32), {bf16_ceiling:.0f} pairs/s (bfloat16)"
    )
    rows = []
    for variant in args.variants:
        name, ratio = variant.rsplit("-", 1)
        kwargs = dict(
            sizes,
            decoder_type="bahdanau" if name == "bahdanau" else "luong",
            attention="concat" if name == "bahdanau" else name,
        )
        rows.append({"who": "ours", "variant": variant, **time_ours(train, kwargs, args, float(ratio))})
        if name == "dot" and not args.skip_peer:
            for vectorized in (False, True):
                if float(ratio) == 1.0 and not vectorized:
                    continue
                peer = time_peer(args, float(ratio), vectorized)
                rows.append(
                    {
                        "who": "peer vectorized" if vectorized else "peer",
                        "variant": variant,
                        **{
                            k: peer[k]
                            for k in ("train_pairs_per_s", "train_target_tokens_per_s", "step_seconds_median")
                        },
                    }
                )
    for row in rows:  # stalls of a busy machine hit the mean: the median step is the robust figure
        row["median_pairs_per_s"] = args.batch_size / row["step_seconds_median"]
    print(
        f"\n{'who':<16} {'variant':<13} {'pairs/s':>8} {'tokens/s':>9} {'median step s':>13} "
        f"{'pairs/s at median':>17} {'of ceiling':>10} {'of bf16 ceiling':>15}  GRU"
    )
    for row in rows:
        print(
            f"{row['who']:<16} {row['variant']:<13} {row['train_pairs_per_s']:8.1f} "
            f"{row['train_target_tokens_per_s']:9.1f} {row['step_seconds_median']:13.3f} "
            f"{row['median_pairs_per_s']:17.1f} {row['median_pairs_per_s'] / ceiling:10.0%} "
            f"{row['median_pairs_per_s'] / bf16_ceiling:15.0%}  {row.get('gru', '')}"
        )
    ratios = {}
    for variant in ("dot-0.5", "dot-1.0"):
        ours = next((r for r in rows if r["who"] == "ours" and r["variant"] == variant), None)
        for who in ("peer", "peer vectorized"):
            peer = next((r for r in rows if r["who"] == who and r["variant"] == variant), None)
            if ours and peer:
                ratios[f"{variant} vs {who}"] = peer["step_seconds_median"] / ours["step_seconds_median"]
    for key, value in ratios.items():
        print(f"ratio {key} (median step): {value:.2f}x")
    for row in rows:
        if "peak_gpu_memory_mb" in row:
            print(f"{row['variant']}: peak GPU memory {row['peak_gpu_memory_mb']:.0f} MB")
        if "cuda_kernel_share" in row:
            print(
                f"{row['variant']}: CUDA kernels {row['cuda_kernel_seconds_per_step'] * 1000:.1f} ms a step, "
                f"{row['cuda_kernel_share']:.0%} of the median step"
            )
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS (ours): {peak_rss_mb:.0f} MB")
    result = {
        "date": time.strftime("%Y-%m-%d"),
        "device": args.device,
        "threads": args.threads,
        "torch": torch.__version__,
        "steps": args.steps,
        "step_gemm_gflops": gflops,
        "step_gemm_gflops_by": speeds,
        "useful_gflop_per_pair": gflop_per_pair,
        "ceiling_pairs_per_s": ceiling,
        "bf16_ceiling_pairs_per_s": bf16_ceiling,
        "rows": rows,
        "ratios": ratios,
        "peak_rss_mb_ours": peak_rss_mb,
    }
    if args.bf16:
        result["autocast"] = "bfloat16"
    with open(args.output, "w") as handle:
        json.dump(result, handle, indent=2)


if __name__ == "__main__":
    main()
