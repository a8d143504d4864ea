"""int8 weights for translation on the CPU: what `to_inference_dtype("int8")` (`gru-translate --dtype int8`) runs.

Each weight matrix of the GRUs and of the linear layers becomes int8 with one float32 scale per output row
(symmetric: `q = round(w * 127 / max|w_row|)`), laid out by the compiled library's `int8_pack` for its products.
Each product quantizes its inputs per row the same way, multiplies bytes and adds in int32 (AVX512-VNNI where the
CPU has it, `int8_kernel()` says which; a portable loop elsewhere), then scales back to float32: a decoding step
reads a quarter of float32's bytes per weight. Embeddings, biases, states, gates, attention and softmax stay
float32; so does the `concat` attention score's `W_a` (its two halves multiply different inputs, and it is a
small part of a step). The model on disk stays float: an int8 model is for translating only, and saving or
training one is refused in one line.
"""

import torch
from torch import nn

from .gru_kernels import recurrence_ops

INT8_NOT_SAVED = (
    "this model holds int8 weights (to_inference_dtype('int8')), which are for translating only: save the float "
    "model instead (from_pretrained it again, then save_pretrained)"
)
INT8_NOT_TRAINED = (
    "this model holds int8 weights (to_inference_dtype('int8')), which are for translating only: train the float "
    "model (from_pretrained it again)"
)
INT8_NEEDS_KERNELS = (
    "dtype 'int8' runs on the package's compiled kernels, which could not be built here (the warning above says "
    "why): translate in float32 or bfloat16"
)


def int8_ops():
    """The compiled ops (built first where they are not there yet); `RuntimeError` where they cannot be built."""
    ops = recurrence_ops()
    if ops is None:
        raise RuntimeError(INT8_NEEDS_KERNELS)
    return ops


def int8_kernel() -> str:
    """Which int8 product runs here: `"avx512-vnni"` or `"portable"`."""
    return int8_ops().int8_kernel()


def holds_int8(module: nn.Module) -> bool:
    """Whether `module` holds int8 weights (`to_inference_dtype("int8")`'s)."""
    tensors = [*module.parameters(), *module.buffers()]
    return any(tensor.dtype == torch.int8 for tensor in tensors)


def check_int8_input(input: torch.Tensor, what: str) -> None:
    """The one input an int8 layer takes: float32 on the CPU (else a `ValueError` naming what it got)."""
    if input.dtype != torch.float32 or input.device.type != "cpu":
        raise ValueError(
            f"{what} holds int8 weights (to_inference_dtype('int8')): it takes float32 inputs on the CPU, got "
            f"{str(input.dtype).removeprefix('torch.')} on {input.device}"
        )


class Int8Linear(nn.Module):
    """`nn.Linear` with an int8 weight (see the module's docstring): `weight` is `int8_pack`'s layout of the float
    weight, `bias` the float32 bias (or `None`). Takes float32 inputs `(..., in_features)` on the CPU."""

    def __init__(self, linear: nn.Linear):
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.register_buffer("weight", int8_ops().int8_pack(linear.weight.detach().float()))
        bias = None if linear.bias is None else linear.bias.detach().float().clone()
        self.register_buffer("bias", bias)

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        check_int8_input(input, "this linear layer")
        return int8_ops().int8_linear(input, self.weight, self.out_features, self.bias)

    def dequantized_weight(self) -> torch.Tensor:
        """The float32 weight `(out_features, in_features)` the int8 one stands for (scale times int8 value)."""
        return int8_ops().int8_unpack(self.weight, self.out_features, self.in_features)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


def quantize_gru_weights(gru: nn.GRU) -> None:
    """Replace `gru`'s weight matrices by their int8 layout in place (frozen parameters of the same names, so
    `nn.GRU`'s own bookkeeping follows); biases stay float32. [`PackedGRU`] then runs the compiled int8 loops."""
    ops = int8_ops()
    for name in gru._flat_weights_names:
        weight = getattr(gru, name)
        if name.startswith("weight_") and weight.dtype != torch.int8:
            setattr(gru, name, nn.Parameter(ops.int8_pack(weight.detach().float()), requires_grad=False))
