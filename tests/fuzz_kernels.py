"""Fuzz the compiled ops of `gru_kernels` directly (`torch.ops.<namespace>.*`), as anyone can call them:
`python tests/fuzz_kernels.py SEED CASES` prints one JSON line `{"counts": {...}, "failures": [...]}`.

Each case is valid (random shapes, packed lengths, dtypes, non-contiguous tensors: it must run and equal the
reference, `nn.GRU` and its autograd for the GRU loops, the decoder's own torch-operation step for `luong_step`)
or invalid in one named way (lengths past the batch, zero, negative or increasing step sizes, step sizes that
do not add up, wrong widths, dtypes and devices, masks of 2, -1 or 0.5, ids outside the vocabulary...): it must
raise an exception. A memory error would kill this process with a signal instead, which `test_kernel_fuzz.py`
reports.
"""

import copy
import json
import random
import sys

import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence

from modeling_gru_seq2seq import GruSeq2SeqConfig, GruSeq2SeqForConditionalGeneration
from modeling_gru_seq2seq.configuration_gru_seq2seq import ATTENTION_SCORES
from modeling_gru_seq2seq.gru_kernels import recurrence_ops
from modeling_gru_seq2seq.int8_weights import Int8Linear, quantize_gru_weights
from modeling_gru_seq2seq.modeling_gru_seq2seq import GruSeq2SeqSource

GRU_INVALID = (
    "step past the batch",
    "zero step",
    "negative step",
    "increasing steps",
    "steps do not add up",
    "inputs of another width",
    "weight_hh of another shape",
    "weight_ih of another height",
    "bias of another size",
    "state of another width",
    "mixed dtypes",
    "integer dtype",
    "inputs not 2-D",
    "meta device",
    "bf16 products of float64",
    "bfloat16 weights of float64 inputs",
    "int8 weights of float64 inputs",
    "int8 weight_ih of another width",
)
BACKWARD_INVALID = (
    *GRU_INVALID[:5],
    "gates of another width",
    "previous states of other rows",
    "grads of other rows",
    "bf16 products of float64",
)
LUONG_INVALID = (
    "id past the vocabulary",
    "negative id",
    "float ids",
    "ids not (rows, 1)",
    "mask of 2",
    "mask of -1",
    "mask of 0.5",
    "mask of another width",
    "hidden of other layers",
    "hidden of other rows",
    "states of other rows",
    "keys of another length",
    "score out of range",
    "mixed dtypes",
    "missing layer weights",
    "bfloat16 weights of float64 states",
    "int8 weights of float64 states",
    "int8 out_weight of another vocabulary",
)
INT8_INVALID = (
    "weight of another width",
    "out_features past the weight",
    "out_features of 0",
    "negative out_features",
    "float64 input",
    "integer input",
    "bias of another size",
    "float weight",
    "weight not contiguous",
    "meta device",
    "pack of a non-finite weight",
    "pack of a 1-D weight",
    "pack of an integer weight",
    "pack of too many inputs",
    "unpack of another shape",
)
GEMM_INVALID = ("inner sizes differ", "result of another shape", "result not contiguous", "mixed dtypes")


class Int8Cases:
    """`int8_linear`, `int8_pack`, `int8_unpack` (mixed into [`Fuzzer`])."""

    def int8_reference(self, x, packed, n, bias):
        """What `int8_linear` stands for, in float64: each input row rounded to 8 bits with its own scale (to
        nearest, ties to even, as the kernels round), times the weight `int8_unpack` gives, plus the bias."""
        largest = x.abs().amax(dim=1, keepdim=True)
        inverse = torch.where(largest > 0, 127.0 / largest, torch.zeros_like(largest))  # (float32, as the kernels)
        quantized = torch.round(x * inverse).clamp(-127, 127) * (largest / 127.0)
        result = quantized.double() @ self.ops.int8_unpack(packed, n, x.shape[1]).double().t()
        return result if bias is None else result + bias.double()

    def int8_cases(self):
        n, k, rows = self.rng.randint(1, 40), self.rng.randint(1, 70), self.rng.randint(1, 9)
        weight, x = torch.randn(n, k), torch.randn(rows, k) * self.rng.choice((1e-3, 1.0, 50.0))
        if self.rng.random() < 0.2:
            x[self.rng.randrange(rows)] = 0.0  # a row of zeros: scale 0
        bias = torch.randn(n) if self.rng.random() < 0.5 else None
        packed = self.ops.int8_pack(weight)
        portable = self.rng.random() < 0.5
        expected = self.int8_reference(x, packed, n, bias)

        def check(result):
            scale = expected.abs().max().item() + 1e-6
            return result.dtype == torch.float32 and torch.allclose(result.double(), expected, atol=1e-5 * scale)

        unpacked = self.ops.int8_unpack(packed, n, k)  # within half a step of 8 bits of the weight
        unpacked_close = torch.allclose(unpacked, weight, atol=weight.abs().max().item() / 200)

        def call(x=x, packed=packed, n=n, bias=bias):
            return lambda: self.ops.int8_linear(x, packed, n, bias, portable)

        valid = "valid (portable)" if portable else "valid"
        self.record("int8_linear", valid, call(), lambda r: check(r) and unpacked_close)
        category = self.rng.choice(INT8_INVALID)
        if category == "weight of another width":
            self.record("int8_linear", category, call(packed=self.ops.int8_pack(torch.randn(n, k + 4))))
        elif category == "out_features past the weight":
            self.record("int8_linear", category, call(n=n + 16, bias=None))
        elif category in ("out_features of 0", "negative out_features"):
            n = 0 if category.endswith("0") else -self.rng.randint(1, 1 << 40)
            self.record("int8_linear", category, call(n=n))
        elif category in ("float64 input", "integer input"):
            self.record("int8_linear", category, call(x=x.double() if category.startswith("float") else x.long()))
        elif category == "bias of another size":
            self.record("int8_linear", category, call(bias=torch.randn(n + 1)))
        elif category == "float weight":
            self.record("int8_linear", category, call(packed=packed.float()))
        elif category == "weight not contiguous":
            self.record("int8_linear", category, call(packed=self.non_contiguous(packed)))
        elif category == "meta device":
            self.record("int8_linear", category, call(x=x.to("meta")))
        elif category == "pack of a non-finite weight":
            weight[self.rng.randrange(n), self.rng.randrange(k)] = self.rng.choice((float("nan"), float("inf")))
            self.record("int8_linear", category, lambda: self.ops.int8_pack(weight))
        elif category == "pack of a 1-D weight":
            self.record("int8_linear", category, lambda: self.ops.int8_pack(weight.reshape(-1)))
        elif category == "pack of an integer weight":
            self.record("int8_linear", category, lambda: self.ops.int8_pack(weight.long()))
        elif category == "pack of too many inputs":
            self.record("int8_linear", category, lambda: self.ops.int8_pack(torch.zeros(1, 65537)))
        else:
            self.record("int8_linear", category, lambda: self.ops.int8_unpack(packed, n + 16, k + 4))


class Fuzzer(Int8Cases):
    def __init__(self, seed: int):
        self.rng = random.Random(seed)
        torch.manual_seed(seed)
        self.ops = recurrence_ops()
        self.counts: dict[str, int] = {}
        self.failures: list[str] = []
        self.decoders = {}

    def record(self, op: str, category: str, run, check=None) -> None:
        """Run one case: `check` (valid) compares its results; without it the case must raise."""
        name = f"{op}: {category}"
        self.counts[name] = self.counts.get(name, 0) + 1
        try:
            results = run()
        except Exception as error:  # noqa: BLE001 - any exception is the answer an invalid case wants
            if check is not None:
                self.failures.append(f"{name}: raised {type(error).__name__}: {str(error).splitlines()[0]}")
            return
        if check is None:
            self.failures.append(f"{name}: ran without an error")
        elif not check(results):
            self.failures.append(f"{name}: results differ from the reference")

    # ------------------------------------------------------------------ the GRU loops

    def packed_shape(self):
        batch, steps = self.rng.randint(1, 5), self.rng.randint(1, 6)
        lengths = sorted((self.rng.randint(1, steps) for _ in range(batch)), reverse=True)
        lengths[0] = steps
        return batch, [sum(length > step for length in lengths) for step in range(steps)]

    def gru_case(self, dtype):
        batch, batch_sizes = self.packed_shape()
        input_size, hidden = self.rng.randint(1, 6), self.rng.randint(1, 6)
        tokens = sum(batch_sizes)
        tensors = {
            "inputs": torch.randn(tokens, input_size, dtype=dtype),
            "initial_state": torch.randn(batch, hidden, dtype=dtype),
            "weight_ih": torch.randn(3 * hidden, input_size, dtype=dtype) * 0.5,
            "weight_hh": torch.randn(3 * hidden, hidden, dtype=dtype) * 0.5,
            "bias_ih": torch.randn(3 * hidden, dtype=dtype) * 0.1,
            "bias_hh": torch.randn(3 * hidden, dtype=dtype) * 0.1,
        }
        return tensors, batch_sizes, self.rng.random() < 0.5

    def with_one_non_contiguous(self, values: dict, names) -> tuple[dict, str]:
        """`values`, half the time with one of `names` not contiguous (same values), and the case's name."""
        if self.rng.random() < 0.5:
            return values, "valid"
        name = self.rng.choice(names)
        return {**values, name: self.non_contiguous(values[name])}, "valid (non-contiguous)"

    def non_contiguous(self, tensor):
        """The same values in a tensor that is not contiguous (every other element of a wider one)."""
        wide = torch.empty(*tensor.shape[:-1], 2 * tensor.shape[-1], dtype=tensor.dtype) if tensor.dim() else tensor
        if tensor.dim() == 0:
            return tensor
        wide[..., ::2] = tensor
        return wide[..., ::2]

    def reference(self, tensors, batch_sizes, reverse, output_grads=None, final_grad=None):
        """`nn.GRU` over the packed inputs (a reversed direction: the backward half of a bidirectional one), and
        with gradients given, its autograd gradients in `gru_backward`'s order."""
        inputs, state = tensors["inputs"], tensors["initial_state"]
        hidden, dtype = state.shape[1], state.dtype
        gru = nn.GRU(inputs.shape[1], hidden, bidirectional=reverse).to(dtype)
        names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
        with torch.no_grad():
            for suffix in ("_l0", "_l0_reverse") if reverse else ("_l0",):
                for name in names:
                    getattr(gru, name + suffix).copy_(tensors[name])
        inputs = inputs.detach().clone().requires_grad_()
        state = state.detach().clone().requires_grad_()
        packed = PackedSequence(inputs, torch.tensor(batch_sizes))
        outputs, final = gru(packed, torch.stack([state, state]) if reverse else state.unsqueeze(0))
        outputs, final = (outputs.data[:, hidden:], final[1]) if reverse else (outputs.data, final[0])
        if output_grads is None:
            return outputs.detach(), final.detach()
        ((outputs * output_grads).sum() + (final * final_grad).sum()).backward()
        suffix = "_l0_reverse" if reverse else "_l0"  # the loss reads one direction: the other gets no gradient
        return [inputs.grad, state.grad, *(getattr(gru, name + suffix).grad for name in names)]

    def close(self, results, expected, dtype):
        """Equal within `dtype`'s tolerance (`torch.bfloat16`: the bfloat16 products against float32 `nn.GRU`)."""
        tolerance = {torch.float32: 1e-4, torch.float64: 1e-10, torch.bfloat16: 5e-2}[dtype]
        pairs = zip(results, expected, strict=True)
        return all(torch.allclose(a.to(b.dtype), b, atol=tolerance, rtol=tolerance) for a, b in pairs)

    def gru_forward_cases(self):
        dtype = self.rng.choice((torch.float32, torch.float64))
        tensors, batch_sizes, reverse = self.gru_case(dtype)
        onednn, bf16 = self.rng.random() < 0.5, dtype == torch.float32 and self.rng.random() < 0.5
        names = ("inputs", "initial_state", "weight_ih", "weight_hh", "bias_ih", "bias_hh")

        def call(values, sizes=batch_sizes, bf16=bf16):
            return lambda: self.ops.gru_forward(*(values[name] for name in names), sizes, reverse, onednn, bf16)

        expected = self.reference(tensors, batch_sizes, reverse)
        valid, category = self.with_one_non_contiguous(tensors, names)
        tolerance = torch.bfloat16 if bf16 else dtype
        category = "valid (bf16 products)" if bf16 else category
        self.record("gru_forward", category, call(valid), lambda r: self.close(r[:2], expected, tolerance))
        if dtype == torch.float32:  # a bfloat16 model's call: every tensor bfloat16, computed in float32
            model = {name: tensor.to(torch.bfloat16) for name, tensor in tensors.items()}
            expected = self.reference({name: tensor.float() for name, tensor in model.items()}, batch_sizes, reverse)
            check = lambda r: self.close(r[:2], expected, torch.bfloat16)  # noqa: E731
            self.record("gru_forward", "valid (bfloat16 model)", call(model, bf16=False), check)
        if dtype == torch.float32:  # an int8 model's call: int8 weight matrices, float32 all else
            model = {**tensors, **{name: self.ops.int8_pack(tensors[name]) for name in ("weight_ih", "weight_hh")}}
            expected = self.int8_gru_reference(model, batch_sizes, reverse)
            check = lambda r: self.close(r[:2], expected, torch.float32)  # noqa: E731
            self.record("gru_forward", "valid (int8 weights)", call(model, bf16=False), check)
        category = self.rng.choice(GRU_INVALID)
        if category == "bf16 products of float64":
            self.record("gru_forward", category, call({k: v.double() for k, v in tensors.items()}, bf16=True))
            return
        if category.startswith("int8"):
            values = {k: v.double() for k, v in tensors.items()}
            values.update({name: self.ops.int8_pack(tensors[name]) for name in ("weight_ih", "weight_hh")})
            if category == "int8 weight_ih of another width":  # (4 more inputs: another row of groups of 4)
                values = {**tensors, "weight_hh": values["weight_hh"]}
                wider = torch.randn(tensors["weight_ih"].shape[0], tensors["weight_ih"].shape[1] + 4)
                values["weight_ih"] = self.ops.int8_pack(wider)
            self.record("gru_forward", category, call(values, bf16=False))
            return
        if category == "bfloat16 weights of float64 inputs":
            values = {k: v.to(torch.bfloat16 if k.startswith("weight") else torch.float64) for k, v in tensors.items()}
            self.record("gru_forward", category, call(values, bf16=False))
            return
        values, sizes = self.mutate_gru(dict(tensors), list(batch_sizes), category, names)
        self.record("gru_forward", category, call(values, sizes))

    def int8_gru_reference(self, values, batch_sizes, reverse):
        """One GRU layer over packed inputs in torch operations, its products by `int8_linear` (checked on its own
        against the arithmetic it stands for, in `int8_cases`): outputs and final state."""
        inputs, state = values["inputs"], values["initial_state"].clone()
        hidden = state.shape[1]
        input_gates = self.ops.int8_linear(inputs, values["weight_ih"], 3 * hidden, values["bias_ih"])
        outputs, start, starts = torch.empty(inputs.shape[0], hidden), 0, []
        for rows in batch_sizes:
            starts.append(start)
            start += rows
        for step in reversed(range(len(batch_sizes))) if reverse else range(len(batch_sizes)):
            rows, here = batch_sizes[step], slice(starts[step], starts[step] + batch_sizes[step])
            previous = state[:rows].contiguous()
            hidden_gates = self.ops.int8_linear(previous, values["weight_hh"], 3 * hidden, values["bias_hh"])
            x, h = input_gates[here].split(hidden, dim=1), hidden_gates.split(hidden, dim=1)
            reset, update = torch.sigmoid(x[0] + h[0]), torch.sigmoid(x[1] + h[1])
            new = torch.tanh(x[2] + reset * h[2])
            state[:rows] = outputs[here] = new + update * (previous - new)
        return outputs, state

    def mutate_gru(self, values, sizes, category, names):
        batch = values["initial_state"].shape[0] if "initial_state" in values else values["final_state_grad"].shape[0]
        if category == "step past the batch":
            sizes[0] = batch + self.rng.randint(1, 1000)
        elif category == "zero step":
            sizes[self.rng.randrange(len(sizes))] = 0
        elif category == "negative step":
            sizes[self.rng.randrange(len(sizes))] = -self.rng.randint(1, 1 << 40)
        elif category == "increasing steps":
            sizes = [1, 2] + sizes if batch >= 2 else [1, 2]  # over the batch when it is 1
        elif category == "steps do not add up":
            sizes.append(1) if self.rng.random() < 0.5 else sizes.pop()  # one token more, or a step's fewer
        elif category == "inputs of another width":
            values["inputs"] = torch.randn(values["inputs"].shape[0], values["inputs"].shape[1] + 1).to(
                values["inputs"].dtype
            )
        elif category == "weight_hh of another shape":
            weight = values["weight_hh"]
            values["weight_hh"] = torch.randn(weight.shape[0] + 3, weight.shape[1] + 1, dtype=weight.dtype)
        elif category == "weight_ih of another height":
            weight = values["weight_ih"]
            values["weight_ih"] = torch.randn(weight.shape[0] - 1, weight.shape[1], dtype=weight.dtype)
        elif category == "bias of another size":
            name = self.rng.choice([name for name in ("bias_ih", "bias_hh") if name in values] or ["weight_ih"])
            values[name] = torch.randn(values[name].shape[0] + 1, dtype=values[name].dtype)
        elif category == "state of another width":
            state = values["initial_state"]
            values["initial_state"] = torch.randn(state.shape[0], state.shape[1] + 2, dtype=state.dtype)
        elif category == "mixed dtypes":
            name = self.rng.choice(names)
            other = torch.float64 if values[name].dtype == torch.float32 else torch.float32
            values[name] = values[name].to(other)
        elif category == "integer dtype":
            values["inputs"] = values["inputs"].long()
        elif category == "inputs not 2-D":
            values["inputs"] = values["inputs"].reshape(-1)
        elif category == "meta device":
            name = self.rng.choice(names)
            values[name] = values[name].to("meta")
        elif category == "gates of another width":
            values["gates"] = torch.randn(values["gates"].shape[0], values["gates"].shape[1] + 1).to(
                values["gates"].dtype
            )
        elif category == "previous states of other rows":
            states = values["previous_states"]
            values["previous_states"] = torch.randn(states.shape[0] + 1, states.shape[1], dtype=states.dtype)
        elif category == "grads of other rows":
            grads = values["output_grads"]
            values["output_grads"] = torch.randn(max(grads.shape[0] - 1, 0), grads.shape[1], dtype=grads.dtype)
        return values, sizes

    def gru_backward_cases(self):
        dtype = self.rng.choice((torch.float32, torch.float64))
        tensors, batch_sizes, reverse = self.gru_case(dtype)
        hidden = tensors["initial_state"].shape[1]
        _, _, previous_states, gates = self.ops.gru_forward(*tensors.values(), batch_sizes, reverse, False)
        output_grads = torch.randn(sum(batch_sizes), hidden, dtype=dtype)
        final_grad = torch.randn_like(tensors["initial_state"])
        expected = self.reference(tensors, batch_sizes, reverse, output_grads, final_grad)
        values = {
            "output_grads": output_grads,
            "final_state_grad": final_grad,
            "inputs": tensors["inputs"],
            "weight_ih": tensors["weight_ih"],
            "weight_hh": tensors["weight_hh"],
            "previous_states": previous_states,
            "gates": gates,
        }
        names = tuple(values)
        onednn, bf16 = self.rng.random() < 0.5, dtype == torch.float32 and self.rng.random() < 0.5

        def call(values, sizes=batch_sizes, bf16=bf16):
            return lambda: self.ops.gru_backward(*(values[name] for name in names), sizes, reverse, onednn, bf16)

        valid, category = self.with_one_non_contiguous(values, names)
        tolerance = torch.bfloat16 if bf16 else dtype
        category = "valid (bf16 products)" if bf16 else category
        self.record("gru_backward", category, call(valid), lambda r: self.close(r, expected, tolerance))
        category = self.rng.choice(BACKWARD_INVALID)
        if category == "bf16 products of float64":
            self.record("gru_backward", category, call({k: v.double() for k, v in values.items()}, bf16=True))
            return
        mutated, sizes = self.mutate_gru(dict(values), list(batch_sizes), category, names)
        self.record("gru_backward", category, call(mutated, sizes))

    # ------------------------------------------------------------------ the Luong step

    def decoder(self, score: str, layers: int, dtype):
        key = (score, layers, dtype)
        if key not in self.decoders:
            config = GruSeq2SeqConfig(
                source_vocab_size=9, target_vocab_size=11, hidden_size=6, num_layers=layers, attention=score
            )
            model = GruSeq2SeqForConditionalGeneration(config).to(dtype).eval()
            decoder = model.decoder
            decoder.gru.forward = lambda *args, _gru=decoder.gru: nn.GRU.forward(_gru, *args)  # torch operations
            self.decoders[key] = decoder
        return self.decoders[key]

    def luong_cases(self):
        dtype = self.rng.choice((torch.float32, torch.float64))
        score, layers = self.rng.choice(ATTENTION_SCORES), self.rng.randint(1, 2)
        decoder = self.decoder(score, layers, dtype)
        rows, source_length, hidden = self.rng.randint(1, 4), self.rng.randint(1, 5), decoder.gru.hidden_size
        lengths = torch.tensor([self.rng.randint(1, source_length) for _ in range(rows)])
        mask = (torch.arange(source_length) < lengths[:, None]).to(self.rng.choice((torch.long, torch.float32)))
        states = torch.randn(rows, source_length, hidden, dtype=dtype)
        with torch.no_grad():
            source = GruSeq2SeqSource(states, decoder.attention.project_keys(states), mask)
        values = {
            "input_ids": torch.randint(0, 11, (rows, 1)),
            "hidden": torch.randn(layers, rows, hidden, dtype=dtype),
            "states": source.states,
            "keys": source.keys,
            "mask": mask,
        }
        attention, empty = decoder.attention, torch.empty(0, dtype=dtype)
        if score == "general":
            score_weight = attention.query_projection.weight
        elif score == "concat":
            score_weight = attention.projection.weight[:, :hidden]
        else:
            score_weight = empty
        weights = {
            "embedding": decoder.embedding.weight,
            "gru_weights": list(decoder.gru._flat_weights),
            "score": ATTENTION_SCORES.index(score),
            "score_weight": score_weight,
            "v": getattr(attention, "v", empty),
            "concat_weight": decoder.concat.weight,
            "concat_bias": decoder.concat.bias,
            "out_weight": decoder.out.weight,
            "out_bias": decoder.out.bias,
        }

        def call(values, weights=weights):
            order = ("input_ids", "hidden", "states", "keys", "mask")
            return lambda: self.ops.luong_step(*(values[name] for name in order), *weights.values(), False)

        with torch.no_grad():
            reference = decoder.decode_in_parallel(values["input_ids"], values["hidden"], source)
            expected = (reference.logits, reference.hidden, reference.attention_weights)
            valid, category = self.with_one_non_contiguous(values, ("hidden", "states", "keys", "mask"))
            self.record("luong_step", category, call(valid), lambda r: self.close(r[:3], expected, dtype))
            if dtype == torch.float32:  # a bfloat16 model: every tensor bfloat16, computed in float32 inside
                model = {
                    name: value.to(torch.bfloat16) if value.is_floating_point() else value
                    for name, value in values.items()
                    if name != "mask"
                }
                model_weights = {
                    name: [w.to(torch.bfloat16) for w in value]
                    if isinstance(value, list)
                    else value.to(torch.bfloat16)
                    if isinstance(value, torch.Tensor)
                    else value
                    for name, value in weights.items()
                }
                rounded = copy.deepcopy(decoder).to(torch.bfloat16).float()  # the same weights, in float32
                float_source = GruSeq2SeqSource(model["states"].float(), model["keys"].float(), mask)
                reference = rounded.decode_in_parallel(values["input_ids"], model["hidden"].float(), float_source)
                self.record(
                    "luong_step",
                    "valid (bfloat16 model)",
                    call({**model, "mask": mask}, model_weights),
                    lambda r: self.close(
                        r[:3], (reference.logits, reference.hidden, reference.attention_weights), torch.bfloat16
                    ),
                )
                self.luong_int8_case(decoder, values, source, weights, call)
            category = self.rng.choice(LUONG_INVALID)
            if category.startswith("int8"):
                values, weights = self.int8_luong_invalid(decoder, values, weights, category)
                self.record("luong_step", category, call(values, weights))
                return
            self.record("luong_step", category, call(*self.mutate_luong(dict(values), dict(weights), category)))

    def int8_decoder(self, decoder):
        """A copy of `decoder` as `to_inference_dtype("int8")` makes it (the compiled GRU loops: int8 weights run
        nowhere else)."""
        int8 = copy.deepcopy(decoder)
        del int8.gru.forward  # (the fuzzer's torch-operation GRU)
        quantize_gru_weights(int8.gru)
        int8.concat, int8.out = Int8Linear(decoder.concat), Int8Linear(decoder.out)
        if decoder.attention.score == "general":
            int8.attention.query_projection = Int8Linear(decoder.attention.query_projection)
        return int8

    def int8_weights(self, int8, weights):
        score_weight = int8.attention.query_projection.weight if int8.attention.score == "general" else None
        return {
            **weights,
            "gru_weights": list(int8.gru._flat_weights),
            "score_weight": weights["score_weight"] if score_weight is None else score_weight,
            "concat_weight": int8.concat.weight,
            "out_weight": int8.out.weight,
        }

    def luong_int8_case(self, decoder, values, source, weights, call):
        """An int8 model's step against its own `decode_in_parallel` (int8 GRU loops and `int8_linear`)."""
        int8 = self.int8_decoder(decoder)
        reference = int8.decode_in_parallel(values["input_ids"], values["hidden"], source)
        expected = (reference.logits, reference.hidden, reference.attention_weights)
        check = lambda r: self.close(r[:3], expected, torch.float32)  # noqa: E731
        self.record("luong_step", "valid (int8 model)", call(values, self.int8_weights(int8, weights)), check)

    def int8_luong_invalid(self, decoder, values, weights, category):
        int8 = self.int8_decoder(copy.deepcopy(decoder).float())
        weights = {k: v.float() if isinstance(v, torch.Tensor) else v for k, v in weights.items()}
        weights = self.int8_weights(int8, {**weights, "concat_bias": int8.concat.bias, "out_bias": int8.out.bias})
        if category == "int8 weights of float64 states":
            values = {k: v.double() if k in ("hidden", "states", "keys") else v for k, v in values.items()}
            weights["embedding"] = weights["embedding"].double()
        else:
            values = {k: v.float() if k in ("hidden", "states", "keys") else v for k, v in values.items()}
            weights["out_weight"] = self.ops.int8_pack(torch.randn(11 + 16, decoder.gru.hidden_size))
        return values, weights

    def mutate_luong(self, values, weights, category):
        rows, source_length = values["mask"].shape
        if category == "id past the vocabulary":
            values["input_ids"] = torch.full((rows, 1), 11 + self.rng.randint(0, 1 << 40))
        elif category == "negative id":
            values["input_ids"] = torch.full((rows, 1), -self.rng.randint(1, 1 << 40))
        elif category == "float ids":
            values["input_ids"] = values["input_ids"].float()
        elif category == "ids not (rows, 1)":
            values["input_ids"] = (
                values["input_ids"].reshape(-1) if self.rng.random() < 0.5 else values["input_ids"].repeat(1, 2)
            )
        elif category in ("mask of 2", "mask of -1", "mask of 0.5"):
            value = {"mask of 2": 2, "mask of -1": -1, "mask of 0.5": 0.5}[category]
            mask = values["mask"].float() if value == 0.5 else values["mask"].clone()
            mask[self.rng.randrange(rows), 0] = value
            values["mask"] = mask
        elif category == "mask of another width":
            values["mask"] = torch.ones(rows, source_length + 1, dtype=torch.long)
        elif category == "hidden of other layers":
            hidden = values["hidden"]
            values["hidden"] = torch.randn(hidden.shape[0] + 1, *hidden.shape[1:], dtype=hidden.dtype)
        elif category == "hidden of other rows":
            hidden = values["hidden"]
            values["hidden"] = torch.randn(hidden.shape[0], hidden.shape[1] + 1, hidden.shape[2], dtype=hidden.dtype)
        elif category == "states of other rows":
            states = values["states"]
            values["states"] = torch.randn(states.shape[0] + 1, *states.shape[1:], dtype=states.dtype)
        elif category == "keys of another length":
            keys = values["keys"]
            values["keys"] = torch.randn(keys.shape[0], keys.shape[1] + 1, keys.shape[2], dtype=keys.dtype)
        elif category == "score out of range":
            weights["score"] = self.rng.choice((-1, 3, 1 << 40))
        elif category == "mixed dtypes":
            name = self.rng.choice(("hidden", "states", "keys"))
            other = torch.float64 if values[name].dtype == torch.float32 else torch.float32
            values[name] = values[name].to(other)
        elif category == "missing layer weights":
            weights["gru_weights"] = weights["gru_weights"][:-1]
        elif category == "bfloat16 weights of float64 states":
            values = {k: v.double() if k in ("hidden", "states", "keys") else v for k, v in values.items()}
            weights = {
                **weights,
                "embedding": weights["embedding"].double(),
                "out_weight": weights["out_weight"].bfloat16(),
            }
        return values, weights

    # ------------------------------------------------------------------ the product

    def gemm_cases(self):
        dtype = self.rng.choice((torch.float32, torch.float64))
        m, k, n = (self.rng.randint(1, 6) for _ in range(3))
        a, b, result = torch.randn(m, k, dtype=dtype), torch.randn(k, n, dtype=dtype), torch.randn(m, n, dtype=dtype)
        beta, onednn = self.rng.choice((0.0, 1.0)), self.rng.random() < 0.5
        expected = beta * result + a @ b
        valid = result.clone()
        self.record(
            "gemm",
            "valid",
            lambda: self.ops.gemm(valid, a, b, beta, onednn),
            lambda _: self.close([valid], [expected], dtype),
        )
        category = self.rng.choice(GEMM_INVALID)
        if category == "inner sizes differ":
            b = torch.randn(k + 1, n, dtype=dtype)
        elif category == "result of another shape":
            result = torch.randn(m + 1, n + 2, dtype=dtype)
        elif category == "result not contiguous":  # every other element; two rows at least, so it shows
            a = torch.randn(m + 1, k, dtype=dtype)
            result = torch.randn(m + 1, n, 2, dtype=dtype)[..., 0]
        else:
            a = a.to(torch.float64 if dtype == torch.float32 else torch.float32)
        self.record("gemm", category, lambda: self.ops.gemm(result, a, b, beta, onednn))


def main() -> None:
    seed, cases = int(sys.argv[1]), int(sys.argv[2])
    torch.set_num_threads(1)
    fuzzer = Fuzzer(seed)
    if fuzzer.ops is None:
        print(json.dumps({"counts": {}, "failures": ["the compiled ops could not be built"]}))
        return
    kinds = (
        fuzzer.gru_forward_cases,
        fuzzer.gru_backward_cases,
        fuzzer.luong_cases,
        fuzzer.gemm_cases,
        fuzzer.int8_cases,
    )
    for index in range(cases // 2):  # each call runs a valid and an invalid case
        kinds[index % len(kinds)]()
    print(json.dumps({"counts": fuzzer.counts, "failures": fuzzer.failures}))


if __name__ == "__main__":
    main()
