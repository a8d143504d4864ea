"""`PackedGRU`: `nn.GRU` that trains on the CPU with one GEMM per weight gradient and a compiled loop over time.

Autograd through `nn.GRU` on the CPU records every time step: its backward adds a `(3 * hidden, hidden)`
gradient into `weight_hh` at each step (a small `[batch, 3 * hidden]^T x [batch, hidden]` product plus a
full-size addition) and allocates and fills zero tensors for the sliced states of a packed batch. Here one
layer and direction is an `autograd.Function` whose backward runs the recurrence for the state gradient
only, writes each step's gate gradients into one packed buffer, then gets every weight and bias gradient
from a single product over all time steps. Both loops over time run compiled where they can
([`gru_kernels`]: one product and one fused pass over the gates per step), else as the torch operations below.
Which runs, and whether `nn.GRU` itself is the faster here, for training and for decoding, is timed on the
machine ([`gru_choice`]).

Shapes use `tokens` (the packed batch's tokens, `sum(batch_sizes)`), `batch` (rows, longest first inside a
packed batch) and `hidden`. Gates are in torch's order: reset r, update z, new n:

    r = sigmoid(W_ir x + b_ir + W_hr h + b_hr)      z = sigmoid(W_iz x + b_iz + W_hz h + b_hz)
    n = tanh(W_in x + b_in + r * (W_hn h + b_hn))   h' = (1 - z) * n + z * h
"""

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.rnn import PackedSequence

from .gru_choice import Loops, choice
from .gru_kernels import built_recurrence_ops
from .int8_weights import check_int8_input, int8_ops


def step_starts(batch_sizes: list[int]) -> list[int]:
    """Offset of each time step's rows in the packed data."""
    starts = [0]
    for rows in batch_sizes[:-1]:
        starts.append(starts[-1] + rows)
    return starts


def gru_forward(inputs, initial_state, weight_ih, weight_hh, bias_ih, bias_hh, batch_sizes, reverse):
    """One layer and direction forward with torch operations, as `gru_forward` in [`gru_kernels`].

    Args:
        inputs (`torch.Tensor` of shape `(tokens, input_size)`): packed data.
        initial_state (`torch.Tensor` of shape `(batch, hidden)`): state before each row's first step.
        weight_ih, weight_hh, bias_ih, bias_hh: the layer's `nn.GRU` parameters.
        batch_sizes (`list[int]`): rows at each time step (non-increasing).
        reverse (`bool`): run from each row's last token to its first.

    Returns:
        outputs `(tokens, hidden)` (packed like `inputs`), final states `(batch, hidden)`, and for the backward
        pass each step's previous state `(tokens, hidden)` and gates `(tokens, 4 * hidden)`: r, z, n and
        `W_hn h + b_hn`.
    """
    hidden = weight_hh.shape[1]
    starts = step_starts(batch_sizes)
    input_gates = torch.addmm(bias_ih, inputs, weight_ih.t())  # (tokens, 3 * hidden), all steps at once
    tokens = inputs.shape[0]
    previous_states = initial_state.new_empty(tokens, hidden)
    gates = initial_state.new_empty(tokens, 4 * hidden)
    outputs = initial_state.new_empty(tokens, hidden)
    state = initial_state.clone()  # (batch, hidden): rows past their last step keep their final state
    for step in range(len(batch_sizes) - 1, -1, -1) if reverse else range(len(batch_sizes)):
        rows, here = batch_sizes[step], slice(starts[step], starts[step] + batch_sizes[step])
        previous = state[:rows]
        previous_states[here] = previous
        hidden_gates = torch.addmm(bias_hh, previous, weight_hh.t())  # (rows, 3 * hidden)
        step_inputs, step_gates = input_gates[here], gates[here]
        torch.sigmoid(step_inputs[:, : 2 * hidden] + hidden_gates[:, : 2 * hidden], out=step_gates[:, : 2 * hidden])
        step_gates[:, 3 * hidden :] = hidden_gates[:, 2 * hidden :]
        reset, update = step_gates[:, :hidden], step_gates[:, hidden : 2 * hidden]
        new = step_gates[:, 2 * hidden : 3 * hidden]
        torch.tanh(torch.addcmul(step_inputs[:, 2 * hidden :], reset, hidden_gates[:, 2 * hidden :]), out=new)
        torch.addcmul(new, update, previous - new, out=outputs[here])
        state[:rows] = outputs[here]
    return outputs, state, previous_states, gates


def gru_backward(
    output_grads, final_state_grad, inputs, weight_ih, weight_hh, previous_states, gates, batch_sizes, reverse
):
    """One layer and direction backward with torch operations, as `gru_backward` in [`gru_kernels`]: the loop over
    time carries only the state gradient and stores each step's gate gradients; every weight gradient is then
    one product over all steps.

    Returns:
        the gradients of `inputs`, `initial_state`, `weight_ih`, `weight_hh`, `bias_ih` and `bias_hh`.
    """
    hidden = weight_hh.shape[1]
    starts = step_starts(batch_sizes)
    reset, update, new, hidden_new = gates.split(hidden, dim=1)
    # Per-token factors for all steps at once: dL/d(pre-activation) = dL/dh' * factor
    new_factor = (1 - update) * (1 - new * new)  # n's
    update_factor = (previous_states - new) * update * (1 - update)  # z's
    reset_factor = hidden_new * reset * (1 - reset)  # times n's gradient, r's
    input_gate_grads = gates.new_empty(gates.shape[0], 3 * hidden)  # (tokens, 3 * hidden), input side
    hidden_gate_grads = gates.new_empty(gates.shape[0], 3 * hidden)  # recurrent side: r * dn in the n block
    state_grad = final_state_grad.clone()  # (batch, hidden)
    for step in range(len(batch_sizes)) if reverse else range(len(batch_sizes) - 1, -1, -1):
        rows, here = batch_sizes[step], slice(starts[step], starts[step] + batch_sizes[step])
        grad = output_grads[here] + state_grad[:rows]  # dL/dh' at this step
        reset_grad, update_grad, new_grad = input_gate_grads[here].split(hidden, dim=1)
        torch.mul(grad, new_factor[here], out=new_grad)
        torch.mul(new_grad, reset_factor[here], out=reset_grad)
        torch.mul(grad, update_factor[here], out=update_grad)
        hidden_gate_grads[here, : 2 * hidden] = input_gate_grads[here, : 2 * hidden]
        torch.mul(new_grad, reset[here], out=hidden_gate_grads[here, 2 * hidden :])
        state_grad[:rows] = torch.addmm(grad * update[here], hidden_gate_grads[here], weight_hh)
    return (
        input_gate_grads @ weight_ih,
        state_grad,
        input_gate_grads.t() @ inputs,
        hidden_gate_grads.t() @ previous_states,
        input_gate_grads.sum(0),
        hidden_gate_grads.sum(0),
    )


def layer_forward(loops: Loops, *args):
    """[`gru_forward`]'s arguments and results, run by `loops` (compiled, or in torch operations)."""
    if loops.ops is None:
        return gru_forward(*args)
    return loops.ops.gru_forward(*args, loops.onednn, loops.bf16)


def layer_backward(loops: Loops, *args):
    """[`gru_backward`]'s arguments and results, run by `loops`."""
    if loops.ops is None:
        return gru_backward(*args)
    return loops.ops.gru_backward(*args, loops.onednn, loops.bf16)


class GruLayerFunction(torch.autograd.Function):
    """One GRU layer in one direction over packed data (time-major, rows longest first): [`gru_forward`] and
    [`gru_backward`] as `loops` runs them. Arguments: `loops`, then [`gru_forward`]'s; returns its outputs and
    final states."""

    @staticmethod
    def forward(ctx, loops, inputs, initial_state, weight_ih, weight_hh, bias_ih, bias_hh, batch_sizes, reverse):
        outputs, state, previous_states, gates = layer_forward(
            loops, inputs, initial_state, weight_ih, weight_hh, bias_ih, bias_hh, batch_sizes, reverse
        )
        ctx.loops, ctx.batch_sizes, ctx.reverse = loops, batch_sizes, reverse
        ctx.save_for_backward(inputs, weight_ih, weight_hh, previous_states, gates)
        return outputs, state

    @staticmethod
    def backward(ctx, output_grads, final_state_grad):
        grads = layer_backward(
            ctx.loops,
            output_grads.contiguous(),
            final_state_grad.contiguous(),
            *ctx.saved_tensors,
            ctx.batch_sizes,
            ctx.reverse,
        )
        return (
            None,
            *(grad if needed else None for grad, needed in zip(grads, ctx.needs_input_grad[1:], strict=False)),
            None,
            None,
        )


def bf16_inference_loops() -> Loops | None:
    """The compiled loops for a bfloat16 model without gradients (its weights multiply in bfloat16, gates and
    states stay float32 inside each call), where the library is built; else `None` (`nn.GRU` in bfloat16)."""
    ops = built_recurrence_ops()
    return None if ops is None else Loops(ops, onednn=False, bf16=True)


def bf16_inference(module: nn.Module, data: torch.Tensor) -> bool:
    """Whether `module` (a GRU, or a decoder) runs as a bfloat16 model here: bfloat16 inputs and weights, no
    gradients, not under autocast."""
    return (
        data.dtype == torch.bfloat16
        and all(parameter.dtype == torch.bfloat16 for parameter in module.parameters())
        and not torch.is_grad_enabled()
        and not torch.is_autocast_enabled("cpu")
    )


def int8_loops() -> Loops:
    """The compiled loops for a GRU with int8 weights (`to_inference_dtype("int8")`): int8 products, float32 gates
    and states; the only loops that can run such a GRU."""
    return Loops(int8_ops())


def holds_int8_weights(gru: nn.GRU) -> bool:
    """Whether `gru`'s weight matrices are int8 ([`quantize_gru_weights`])."""
    return gru.weight_hh_l0.dtype == torch.int8


class PackedGRU(nn.GRU):
    """`nn.GRU` (same arguments, parameters and results) that runs on the CPU with [`GruLayerFunction`] where that
    is the faster here ([`gru_choice.choice`]): a packed batch as it is, a padded one `(batch, steps, input)` (or
    `(steps, batch, input)`) as a packed batch whose rows all have `steps` tokens. `nn.GRU` itself runs
    everything else: where it is the faster, other devices (cuDNN), dtypes other than float32 and float64,
    unbatched or empty inputs, `bias=False`, tracing and compiling, and calls without gradients where the
    compiled loop is not built (or under autocast). With int8 weights ([`quantize_gru_weights`]) only the compiled
    int8 loops run: float32 inputs on the CPU, else a `ValueError`."""

    def forward(self, input, hx=None):
        packed = isinstance(input, PackedSequence)
        data = input.data if packed else input
        int8 = holds_int8_weights(self)
        usable = (
            (packed or (data.dim() == 3 and data.numel() > 0))
            and data.device.type == "cpu"
            and (data.dtype in (torch.float32, torch.float64) or bf16_inference(self, data))
            and self.bias
            and not (torch.jit.is_scripting() or torch.jit.is_tracing() or torch.compiler.is_compiling())
        )
        if int8:
            check_int8_input(data, "this GRU")
        if not usable:  # (cuDNN wants a contiguous state; the decoder passes the first rows of its state)
            if int8:
                raise ValueError("this GRU holds int8 weights: it runs batched, non-empty inputs, without tracing")
            return super().forward(input, hx if hx is None else hx.contiguous())
        training = torch.is_grad_enabled() and not int8  # (int8 weights are frozen: nothing to differentiate)
        if packed:
            rows, steps = int(input.batch_sizes[0]), len(input.batch_sizes)
        else:
            rows, steps = data.shape[:2] if self.batch_first else data.shape[1::-1]
        if int8:
            loops = int8_loops()
        elif data.dtype == torch.bfloat16:  # a bfloat16 model without gradients: bfloat16 products, float32 gates
            loops = bf16_inference_loops()
        elif not torch.is_autocast_enabled("cpu"):
            loops = choice(self.hidden_size, rows, training, steps)
        elif training and torch.get_autocast_dtype("cpu") == torch.bfloat16 and data.dtype == torch.float32:
            # float32 master weights and states; the compiled loops' products in bfloat16 where that is faster
            loops = choice(self.hidden_size, rows, training, steps, dtype=torch.bfloat16)
        else:  # other autocast dtypes: the torch operations follow autocast
            loops = Loops() if training else None
        if loops is None:
            return super().forward(input, hx)
        if packed:
            batch_sizes = input.batch_sizes.tolist()
            if hx is not None and input.sorted_indices is not None:
                hx = hx.index_select(1, input.sorted_indices)
        else:  # time-major rows of equal length: packed data as it is
            data = data.transpose(0, 1) if self.batch_first else data
            steps, batch = data.shape[:2]
            data, batch_sizes = data.reshape(steps * batch, -1), [batch] * steps
        directions = 2 if self.bidirectional else 1
        states_shape = (self.num_layers * directions, batch_sizes[0], self.hidden_size)
        if hx is None:
            hx = data.new_zeros(states_shape)
        elif int8 and (hx.shape != states_shape or data.shape[-1] != self.input_size):  # (nn.GRU's checks would
            raise ValueError(  # ask for int8 inputs)
                f"inputs of {data.shape[-1]} features and state of shape {tuple(hx.shape)}: this GRU takes "
                f"{self.input_size} features and a state of shape {states_shape}"
            )
        elif hx.shape != states_shape or data.shape[-1] != self.input_size:
            self.check_forward_args(input.data if packed else input, hx, input.batch_sizes if packed else None)
        if int8:
            check_int8_input(hx, "this GRU")
        layer_input, final_states = data, []
        for layer in range(self.num_layers):
            if layer > 0 and self.training and self.dropout:
                layer_input = F.dropout(layer_input, self.dropout, training=True)
            outputs = []
            for direction in range(directions):
                index = layer * directions + direction
                weights = self._flat_weights[4 * index : 4 * index + 4]  # weight_ih, weight_hh, bias_ih, bias_hh
                args = (loops, layer_input, hx[index], *weights, batch_sizes, direction == 1)
                output, final_state = GruLayerFunction.apply(*args) if training else layer_forward(*args)[:2]
                outputs.append(output)
                final_states.append(final_state)
            layer_input = torch.cat(outputs, dim=1) if directions == 2 else outputs[0]
        final_states = torch.stack(final_states)
        if not packed:
            output = layer_input.view(steps, batch, -1)
            return (output.transpose(0, 1) if self.batch_first else output), final_states
        if input.unsorted_indices is not None:
            final_states = final_states.index_select(1, input.unsorted_indices)
        output = PackedSequence(layer_input, input.batch_sizes, input.sorted_indices, input.unsorted_indices)
        return output, final_states
