"""`PackedGRU`: `nn.GRU` whose backward over a packed batch on the CPU takes one GEMM per weight.

Autograd through `nn.GRU` on the CPU records every time step: its backward adds a `(3 * hidden, hidden)`
gradient into `weight_hh` at each step (a small `[batch, 3 * hidden]^T x [batch, hidden]` product plus a
full-size addition) and allocates and fills zero tensors for the sliced states of a packed batch. Here one
layer and direction is an `autograd.Function` whose backward runs the recurrence for the state gradient
only, writes each step's gate gradients into one packed buffer, then gets every weight and bias gradient
from a single product over all time steps.

Shapes use `tokens` (the packed batch's tokens, `sum(batch_sizes)`), `batch` (rows, longest first inside a
packed batch) and `hidden`. Gates are in torch's order: reset r, update z, new n:

    r = sigmoid(W_ir x + b_ir + W_hr h + b_hr)      z = sigmoid(W_iz x + b_iz + W_hz h + b_hz)
    n = tanh(W_in x + b_in + r * (W_hn h + b_hn))   h' = (1 - z) * n + z * h
"""

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.rnn import PackedSequence


class GruLayerFunction(torch.autograd.Function):
    """One GRU layer in one direction over packed data (time-major, rows longest first)."""

    @staticmethod
    def forward(ctx, inputs, initial_state, weight_ih, weight_hh, bias_ih, bias_hh, batch_sizes, reverse):
        """
        Args:
            inputs (`torch.Tensor` of shape `(tokens, input_size)`): packed data.
            initial_state (`torch.Tensor` of shape `(batch, hidden)`): state before each row's first step.
            weight_ih, weight_hh, bias_ih, bias_hh: the layer's `nn.GRU` parameters.
            batch_sizes (`list[int]`): rows at each time step (non-increasing).
            reverse (`bool`): run from each row's last token to its first.

        Returns:
            outputs `(tokens, hidden)` (packed like `inputs`) and the final states `(batch, hidden)`.
        """
        hidden = weight_hh.shape[1]
        starts = [0]
        for rows in batch_sizes[:-1]:
            starts.append(starts[-1] + rows)
        input_gates = torch.addmm(bias_ih, inputs, weight_ih.t())  # (tokens, 3 * hidden), all steps at once
        tokens = inputs.shape[0]
        previous_states = inputs.new_empty(tokens, hidden)
        reset_update = inputs.new_empty(tokens, 2 * hidden)  # sigmoid outputs r, z
        new_gates = inputs.new_empty(tokens, hidden)  # n
        hidden_new_gates = inputs.new_empty(tokens, hidden)  # W_hn h + b_hn
        outputs = inputs.new_empty(tokens, hidden)
        state = initial_state.clone()  # (batch, hidden): rows past their last step keep their final state
        steps = range(len(batch_sizes) - 1, -1, -1) if reverse else range(len(batch_sizes))
        for step in steps:
            rows, here = batch_sizes[step], slice(starts[step], starts[step] + batch_sizes[step])
            previous = state[:rows]
            previous_states[here] = previous
            hidden_gates = torch.addmm(bias_hh, previous, weight_hh.t())  # (rows, 3 * hidden)
            gates = input_gates[here]
            torch.sigmoid(gates[:, : 2 * hidden] + hidden_gates[:, : 2 * hidden], out=reset_update[here])
            hidden_new_gates[here] = hidden_gates[:, 2 * hidden :]
            reset, update = reset_update[here].chunk(2, dim=1)
            torch.tanh(torch.addcmul(gates[:, 2 * hidden :], reset, hidden_gates[:, 2 * hidden :]), out=new_gates[here])
            new = new_gates[here]
            torch.addcmul(new, update, previous - new, out=outputs[here])
            state[:rows] = outputs[here]
        ctx.batch_sizes, ctx.starts, ctx.reverse = batch_sizes, starts, reverse
        ctx.save_for_backward(
            inputs, weight_ih, weight_hh, previous_states, reset_update, new_gates, hidden_new_gates
        )
        return outputs, state

    @staticmethod
    def backward(ctx, output_grads, final_state_grad):
        inputs, weight_ih, weight_hh, previous_states, reset_update, new_gates, hidden_new_gates = ctx.saved_tensors
        hidden = weight_hh.shape[1]
        reset, update = reset_update.chunk(2, dim=1)
        # Per-token factors of the gate gradients, for all steps at once: dL/d(pre-activation) = dL/dh' * ...
        new_factor = (1 - update) * (1 - new_gates * new_gates)  # for n's pre-activation
        update_factor = (previous_states - new_gates) * update * (1 - update)  # for z's
        reset_factor = hidden_new_gates * reset * (1 - reset)  # times n's gradient, for r's
        output_grads = output_grads.contiguous()
        hidden_gate_grads = new_gates.new_empty(new_gates.shape[0], 3 * hidden)  # (tokens, 3 * hidden)
        input_new_grads = torch.empty_like(new_gates)  # n's pre-activation gradient (the input side's)
        state_grad = final_state_grad.clone()  # (batch, hidden)
        steps = range(len(ctx.batch_sizes)) if ctx.reverse else range(len(ctx.batch_sizes) - 1, -1, -1)
        for step in steps:
            rows = ctx.batch_sizes[step]
            here = slice(ctx.starts[step], ctx.starts[step] + rows)
            grad = output_grads[here] + state_grad[:rows]  # dL/dh' at this step
            torch.mul(grad, new_factor[here], out=input_new_grads[here])
            torch.mul(input_new_grads[here], reset_factor[here], out=hidden_gate_grads[here, :hidden])
            torch.mul(grad, update_factor[here], out=hidden_gate_grads[here, hidden : 2 * hidden])
            torch.mul(input_new_grads[here], reset[here], out=hidden_gate_grads[here, 2 * hidden :])
            state_grad[:rows] = torch.addmm(grad * update[here], hidden_gate_grads[here], weight_hh)
        input_gate_grads = torch.cat([hidden_gate_grads[:, : 2 * hidden], input_new_grads], dim=1)
        needs = ctx.needs_input_grad
        return (
            input_gate_grads @ weight_ih if needs[0] else None,
            state_grad if needs[1] else None,
            input_gate_grads.t() @ inputs if needs[2] else None,
            hidden_gate_grads.t() @ previous_states if needs[3] else None,
            input_gate_grads.sum(0) if needs[4] else None,
            hidden_gate_grads.sum(0) if needs[5] else None,
            None,
            None,
        )


class PackedGRU(nn.GRU):
    """`nn.GRU` (same arguments, parameters and results) that trains a packed batch on the CPU with
    [`GruLayerFunction`]. Padded tensors, other devices (cuDNN), calls without gradients and `bias=False` run
    `nn.GRU` itself."""

    def forward(self, input, hx=None):
        packed_on_cpu = isinstance(input, PackedSequence) and input.data.device.type == "cpu"
        if not (packed_on_cpu and torch.is_grad_enabled() and self.bias):
            return super().forward(input, hx)
        batch_sizes = input.batch_sizes.tolist()
        directions = 2 if self.bidirectional else 1
        if hx is None:
            hx = input.data.new_zeros(self.num_layers * directions, batch_sizes[0], self.hidden_size)
        elif input.sorted_indices is not None:
            hx = hx.index_select(1, input.sorted_indices)
        layer_input, final_states = input.data, []
        for layer in range(self.num_layers):
            if layer > 0 and self.training and self.dropout:
                layer_input = F.dropout(layer_input, self.dropout, training=True)
            outputs = []
            for direction in range(directions):
                suffix = f"_l{layer}" + ("_reverse" if direction else "")
                output, final_state = GruLayerFunction.apply(
                    layer_input,
                    hx[layer * directions + direction],
                    getattr(self, "weight_ih" + suffix),
                    getattr(self, "weight_hh" + suffix),
                    getattr(self, "bias_ih" + suffix),
                    getattr(self, "bias_hh" + suffix),
                    batch_sizes,
                    direction == 1,
                )
                outputs.append(output)
                final_states.append(final_state)
            layer_input = torch.cat(outputs, dim=1) if directions == 2 else outputs[0]
        final_states = torch.stack(final_states)
        if input.unsorted_indices is not None:
            final_states = final_states.index_select(1, input.unsorted_indices)
        output = PackedSequence(layer_input, input.batch_sizes, input.sorted_indices, input.unsorted_indices)
        return output, final_states
