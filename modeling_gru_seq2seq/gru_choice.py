"""Which implementation runs a GRU layer on this CPU, chosen by timing them here.

The candidates: `nn.GRU` (torch's own, its products on MKL), and the compiled loops of [`gru_kernels`] with
their products by ATen (MKL) or by oneDNN. Which is fastest depends on the machine (oneDNN ran the GRU step's
product at twice MKL's speed on an AMD Zen 5 and slower than MKL on an Intel Xeon), on the work (training
runs forward and backward over whole batches, decoding one step at a time, often for one sentence) and on the
size, so each is timed here, per hidden size and thread count, once: about a second, the first time such a
model runs where the compiled loops are built. Choices and timings are stored in `choices.json` beside the
library, so later processes read them. A timing taken while the machine was busy can be replaced:
`GRU_SEQ2SEQ_RETIME=1` times again (once per process and size).

Under bfloat16 autocast (`run_translation.py --bf16`), training has a fourth candidate, the compiled loops with
bfloat16 products (`compiled+bf16`: float32 master weights, states and gates; each product's operands cast to
bfloat16 and accumulated in float32 by oneDNN's AVX512-BF16 or AMX kernels), timed against the float32 products
as they are under the same autocast, and stored under its own key (`..., bfloat16`). Where the bfloat16 products
are not the faster, a warning says so once, and training runs the float32 products. `native_bf16()` says whether
the CPU has bfloat16 units at all.

Regimes: `training` (forward and backward over 64 rows of 8 steps), `decoding, few rows` (8 one-step calls
on 1 row: one sentence, greedy; any step without gradients over up to `FEW_ROWS` rows), `decoding, many rows`
(on 64 rows: a batch) and `encoding` (without gradients, 64 rows of 8 steps in one call: any call over more than
one step, the encoder's).
"""

import functools
import json
import os
import time
from dataclasses import dataclass

import torch
from torch import nn
from transformers.utils import logging

from .gru_kernels import build_directory, built_recurrence_ops, recurrence_ops

logger = logging.get_logger(__name__)

IMPLEMENTATIONS = ("nn.GRU", "compiled+mkl", "compiled+onednn", "compiled+bf16")
# between timings within TIE of each other
PREFERENCE = ("compiled+mkl", "nn.GRU", "compiled+onednn", "compiled+bf16")
TIE = 0.05  # closer than this is within the noise of a timing here
REGIMES = ("training", "decoding, few rows", "decoding, many rows", "encoding")
FEW_ROWS = 8  # up to this many rows without gradients count as "few" (one sentence, a beam)
CHOICES_FILE = "choices.json"


@dataclass(frozen=True)
class Loops:
    """How [`GruLayerFunction`] runs: the compiled ops (`torch.ops.<library>`), their products on oneDNN or not;
    `ops=None`: the same loops in torch operations."""

    ops: object = None
    onednn: bool = False
    bf16: bool = False  # the products in bfloat16 (compiled loops only)


def native_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 in hardware (AVX512-BF16 or AMX): elsewhere bfloat16 is emulated, many
    times slower than float32."""
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")  # (torch.cpu's, private but stable)
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


def choice(
    hidden_size: int, rows: int, training: bool, steps: int = 1, dtype: torch.dtype = torch.float32
) -> Loops | None:
    """How to run a GRU layer of `hidden_size` over `rows` rows and `steps` time steps: the faster here of the
    compiled loops (either product library) and `nn.GRU` (`None`). Training builds the library where it is not
    there yet, and runs the torch-operation loops where it cannot be built; inference never waits for a build
    (it runs `nn.GRU` then). `dtype=torch.bfloat16`: training under bfloat16 autocast, where the compiled loops
    with bfloat16 products are a candidate too (on a CPU with bfloat16 units)."""
    ops = recurrence_ops() if training else built_recurrence_ops()
    if ops is None:
        return Loops() if training else None
    if training and dtype == torch.bfloat16:
        if not native_bf16():
            chosen = timed_choices(hidden_size, torch.get_num_threads())["choice"][REGIMES[0]]
            return Loops(ops, chosen == "compiled+onednn")  # (`nn.GRU` does not run under autocast here)
        chosen = bf16_choice(hidden_size, torch.get_num_threads())
        return Loops(ops, chosen == "compiled+onednn", chosen == "compiled+bf16")
    if training:
        regime = REGIMES[0]
    elif steps > 1:
        regime = REGIMES[3]
    else:
        regime = REGIMES[1] if rows <= FEW_ROWS else REGIMES[2]
    chosen = timed_choices(hidden_size, torch.get_num_threads())["choice"][regime]
    return None if chosen == "nn.GRU" else Loops(ops, chosen == "compiled+onednn")


@functools.cache
def bf16_choice(hidden_size: int, threads: int) -> str:
    """The training implementation under bfloat16 autocast (`compiled+bf16` or a float32 one), with one warning
    where the bfloat16 products are not the faster here."""
    entry = timed_choices(hidden_size, threads, "bfloat16")
    chosen, timings = entry["choice"][REGIMES[0]], entry["ms"][REGIMES[0]]
    if chosen != "compiled+bf16":
        logger.warning(
            f"gru-seq2seq: bfloat16 products are slower than float32 ones for a GRU of hidden size {hidden_size} "
            f"on this CPU ({timings['compiled+bf16']} ms against {timings[chosen]} ms for {chosen}, a training "
            "step's GRU layer): the GRU runs float32 products under --bf16 (the other layers follow autocast)"
        )
    return chosen


@functools.cache
def timed_choices(hidden_size: int, threads: int, dtype: str = "float32") -> dict:
    """`{"ms": {regime: {implementation: ms}}, "choice": {regime: implementation}, ...}` for this machine, read
    from `choices.json` or timed now (and stored there). `dtype="bfloat16"`: training under bfloat16 autocast
    only (its key ends in `, bfloat16`)."""
    path = os.path.join(build_directory(), CHOICES_FILE)
    key = f"hidden {hidden_size}, {threads} threads" + ("" if dtype == "float32" else f", {dtype}")
    regimes = set(REGIMES) if dtype == "float32" else {REGIMES[0]}
    try:
        with open(path, encoding="utf-8") as handle:
            stored = json.load(handle)
    except (OSError, ValueError):
        stored = {}
    complete = set(stored.get(key, {}).get("choice", {})) == regimes  # (stored by a version with other regimes)
    if complete and os.environ.get("GRU_SEQ2SEQ_RETIME", "") in ("", "0"):
        return stored[key]
    timings = time_implementations(hidden_size) if dtype == "float32" else time_bf16_training(hidden_size)
    entry = {
        "ms": timings,
        "choice": {regime: fastest(by_name) for regime, by_name in timings.items()},
        "measured": time.strftime("%Y-%m-%d %H:%M:%S"),
        "torch": torch.__version__,
    }
    logger.info(f"gru-seq2seq: timed the GRU implementations here ({key}): {json.dumps(entry)}")
    stored[key] = entry
    try:
        with open(f"{path}.{os.getpid()}", "w", encoding="utf-8") as handle:
            json.dump(stored, handle, indent=1)
        os.replace(f"{path}.{os.getpid()}", path)
    except OSError as error:  # a read-only folder: keep the choice for this process only
        logger.info(f"gru-seq2seq: could not store the GRU timings in {path}: {error}")
    return entry


def fastest(timings: dict) -> str:
    """The fastest of `{implementation: ms}`; among those within `TIE` of it, the first in `PREFERENCE`, so that
    near-ties do not flip from one timing to the next (and a regime runs as the others do where it costs
    nothing)."""
    best = min(timings.values())
    return next(name for name in PREFERENCE if name in timings and timings[name] <= best * (1 + TIE))


def time_implementations(hidden_size: int, repeats: int = 5) -> dict:
    """Milliseconds (best of `repeats`, in turns) each implementation takes in each regime, with random float32
    weights."""
    ops = built_recurrence_ops()
    generator = torch.Generator().manual_seed(0)
    gru = nn.GRU(hidden_size, hidden_size, batch_first=True)
    weights = [parameter.detach() for parameter in gru.parameters()]  # weight_ih, weight_hh, bias_ih, bias_hh

    def compiled(rows: int, steps: int, onednn: bool, work: str):
        inputs = torch.randn(rows * steps, hidden_size, generator=generator)
        state, batch_sizes = torch.zeros(rows, hidden_size), [rows] * steps
        if work == "steps":  # one step at a time, as decoding runs
            return lambda: [
                ops.gru_forward(inputs[:rows], state, *weights, [rows], False, onednn) for _ in range(steps)
            ]
        if work == "sequence":
            return lambda: ops.gru_forward(inputs, state, *weights, batch_sizes, False, onednn)

        def run():
            outputs, final, previous, gates = ops.gru_forward(inputs, state, *weights, batch_sizes, False, onednn)
            ops.gru_backward(outputs, final, inputs, *weights[:2], previous, gates, batch_sizes, False, onednn)

        return run

    def torch_gru(rows: int, steps: int, work: str):
        if work == "steps":
            inputs = torch.randn(rows, 1, hidden_size, generator=generator)
            state = torch.zeros(1, rows, hidden_size)
            return lambda: [gru(inputs, state) for _ in range(steps)]
        inputs = torch.randn(rows, steps, hidden_size, generator=generator, requires_grad=work == "training")
        if work == "sequence":
            return lambda: gru(inputs)

        def run():
            outputs, final = gru(inputs)
            torch.autograd.backward((outputs, final), (torch.ones_like(outputs), torch.ones_like(final)))

        return run

    work = [(64, 8, "training"), (1, 8, "steps"), (64, 8, "steps"), (64, 8, "sequence")]  # rows, steps, kind
    shapes = dict(zip(REGIMES, work, strict=True))
    timings = {}
    for regime, (rows, steps, kind) in shapes.items():
        runs = {"nn.GRU": torch_gru(rows, steps, kind)}
        if ops is not None:
            runs["compiled+mkl"] = compiled(rows, steps, False, kind)
            if ops.uses_onednn():
                runs["compiled+onednn"] = compiled(rows, steps, True, kind)
        with torch.set_grad_enabled(kind == "training"):
            timings[regime] = best_ms(runs, repeats)
    return timings


def time_bf16_training(hidden_size: int, repeats: int = 5) -> dict:
    """Milliseconds of the training regime's work (forward and backward over 64 rows of 8 steps) under bfloat16
    autocast: the compiled loops with bfloat16 products against their float32 products (either library)."""
    ops = built_recurrence_ops()
    generator = torch.Generator().manual_seed(0)
    gru = nn.GRU(hidden_size, hidden_size, batch_first=True)
    weights = [parameter.detach() for parameter in gru.parameters()]
    rows, steps = 64, 8
    inputs = torch.randn(rows * steps, hidden_size, generator=generator)
    state, batch_sizes = torch.zeros(rows, hidden_size), [rows] * steps

    def compiled(onednn: bool, bf16: bool):
        def run():
            outputs, final, previous, gates = ops.gru_forward(
                inputs, state, *weights, batch_sizes, False, onednn, bf16
            )
            ops.gru_backward(outputs, final, inputs, *weights[:2], previous, gates, batch_sizes, False, onednn, bf16)

        return run

    runs = {"compiled+mkl": compiled(False, False), "compiled+bf16": compiled(False, True)}
    if ops.uses_onednn():
        runs["compiled+onednn"] = compiled(True, False)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        return {REGIMES[0]: best_ms(runs, repeats)}


def best_ms(runs: dict, repeats: int) -> dict:
    """The best of `repeats` timings of each of `runs` in milliseconds, taken in turns (so that a load that
    comes and goes slows each alike), after one warm-up each (first-call allocations, oneDNN's primitives)."""
    best = dict.fromkeys(runs, float("inf"))
    for run in runs.values():
        run()
    for _ in range(repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            best[name] = min(best[name], time.perf_counter() - start)
    return {name: round(seconds * 1e3, 4) for name, seconds in best.items()}
