"""PackedGRU against nn.GRU: the same outputs, final states and gradients for every input and parameter, with
the compiled recurrence (gru_kernels, its products by MKL and by oneDNN) and with the torch-operation one, each
forced in place of the timed choice (gru_choice.py)."""

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from modeling_gru_seq2seq import packed_gru
from modeling_gru_seq2seq.gru_choice import Loops
from modeling_gru_seq2seq.gru_kernels import recurrence_ops
from modeling_gru_seq2seq.packed_gru import GruLayerFunction, PackedGRU


@pytest.fixture(params=["compiled+mkl", "compiled+onednn", "torch loops"])
def recurrence(request, monkeypatch):
    """PackedGRU runs these loops for training and inference alike, whatever the timing chose."""
    if request.param == "torch loops":
        loops = Loops()
    else:
        ops = recurrence_ops()
        assert ops is not None, "the compiled GRU recurrence did not build (see the warning)"
        if request.param == "compiled+onednn" and not ops.uses_onednn():
            pytest.skip("oneDNN's matmul does not work in this torch build")
        loops = Loops(ops, request.param == "compiled+onednn")
    monkeypatch.setattr(packed_gru, "choice", lambda *args, **kwargs: loops)
    return request.param


def run_both(kwargs, dtype, inputs, states, run):
    """`run(gru, x, h0)` -> (outputs, final states) for nn.GRU and PackedGRU with the same parameters; returns
    each one's outputs, final states and the gradients of a loss that uses every output."""
    torch.manual_seed(0)
    reference = nn.GRU(**kwargs).to(dtype)
    packed = PackedGRU(**kwargs).to(dtype)
    packed.load_state_dict(reference.state_dict())
    output_weights, state_weights = None, torch.randn_like(states)
    results = []
    for gru in (reference, packed):
        x, h0 = inputs.clone().requires_grad_(), states.clone().requires_grad_()
        output, final_state = run(gru, x, h0)
        output_weights = torch.randn_like(output) if output_weights is None else output_weights
        ((output * output_weights).sum() + (final_state * state_weights).sum()).backward()
        results.append((output, final_state, [x.grad, h0.grad] + [p.grad for p in gru.parameters()]))
    return results


def assert_same(results, dtype):
    (output, final_state, grads), (packed_output, packed_final, packed_grads) = results
    tolerance = {"rtol": 1e-4, "atol": 1e-5} if dtype == torch.float32 else {}
    torch.testing.assert_close(packed_output, output, **tolerance)
    torch.testing.assert_close(packed_final, final_state, **tolerance)
    assert len(packed_grads) == len(grads)
    for expected, got in zip(grads, packed_grads, strict=False):
        torch.testing.assert_close(got, expected, **tolerance)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])  # float32: oneDNN's products where it runs
@pytest.mark.parametrize("bidirectional", [True, False])
@pytest.mark.parametrize("num_layers", [1, 2])
def test_packed_gru_matches_nn_gru_on_packed_batches(recurrence, dtype, bidirectional, num_layers):
    kwargs = {
        "input_size": 5,
        "hidden_size": 7,
        "num_layers": num_layers,
        "bidirectional": bidirectional,
        "batch_first": True,
    }
    lengths = torch.tensor([3, 6, 1, 6, 4])  # unsorted, with ties and a one-token row
    inputs = torch.randn(5, 6, 5, dtype=dtype)
    states = torch.randn(num_layers * (2 if bidirectional else 1), 5, 7, dtype=dtype)

    def run(gru, x, h0):
        output, final_state = gru(pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False), h0)
        return pad_packed_sequence(output, batch_first=True)[0], final_state

    assert_same(run_both(kwargs, dtype, inputs, states, run), dtype)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("steps", [1, 4])  # 1: a step of stepwise decoding
def test_packed_gru_matches_nn_gru_on_padded_batches(recurrence, dtype, batch_first, steps):
    kwargs = {"input_size": 3, "hidden_size": 4, "num_layers": 2, "batch_first": batch_first}
    inputs = torch.randn(*((2, steps) if batch_first else (steps, 2)), 3, dtype=dtype)
    states = torch.randn(2, 2, 4, dtype=dtype)
    assert_same(run_both(kwargs, dtype, inputs, states, lambda gru, x, h0: gru(x, h0)), dtype)


@pytest.mark.parametrize("packed", [True, False])
def test_packed_gru_matches_nn_gru_without_gradients(recurrence, packed):
    torch.manual_seed(0)
    reference = nn.GRU(3, 4, num_layers=2, bidirectional=True, batch_first=True).eval()
    gru = PackedGRU(3, 4, num_layers=2, bidirectional=True, batch_first=True).eval()
    gru.load_state_dict(reference.state_dict())
    inputs, states = torch.randn(3, 5, 3), torch.randn(4, 3, 4)
    if packed:
        inputs = pack_padded_sequence(inputs, torch.tensor([2, 5, 4]), batch_first=True, enforce_sorted=False)
    with torch.inference_mode():
        (output, final_state), (expected_output, expected_final) = gru(inputs, states), reference(inputs, states)
    if packed:
        output, expected_output = output.data, expected_output.data
    torch.testing.assert_close(output, expected_output, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(final_state, expected_final, rtol=1e-4, atol=1e-5)


def test_packed_gru_runs_nn_gru_for_other_dtypes_and_checks_states_as_it():
    torch.manual_seed(0)
    reference, gru = nn.GRU(3, 4, batch_first=True).bfloat16(), PackedGRU(3, 4, batch_first=True).bfloat16()
    gru.load_state_dict(reference.state_dict())
    inputs = torch.randn(2, 5, 3, dtype=torch.bfloat16)
    torch.testing.assert_close(gru(inputs)[0], reference(inputs)[0])
    with pytest.raises(RuntimeError, match="Expected hidden size"):
        gru.float()(inputs.float(), torch.zeros(1, 3, 4))  # 2 rows, states for 3


def test_packed_gru_builds_nothing_for_inputs_nn_gru_runs(monkeypatch):
    monkeypatch.setattr(packed_gru, "choice", lambda *args: pytest.fail("asked for the compiled loop"))
    gru = PackedGRU(3, 4)
    with torch.no_grad():
        gru(torch.randn(5, 3))  # unbatched
        gru(torch.randn(2, 0, 3))  # no rows


def test_packed_gru_matches_nn_gru_without_initial_state(recurrence):
    torch.manual_seed(0)
    reference, gru = nn.GRU(3, 4, bidirectional=True), PackedGRU(3, 4, bidirectional=True)
    gru.load_state_dict(reference.state_dict())
    inputs = torch.randn(5, 2, 3)
    for expected, got in zip(reference(inputs), gru(inputs), strict=False):
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)


def test_packed_gru_takes_its_own_path_on_the_cpu(recurrence, monkeypatch):
    calls, inference_calls = [], []
    apply, layer_forward = GruLayerFunction.apply, packed_gru.layer_forward
    monkeypatch.setattr(GruLayerFunction, "apply", lambda *args: calls.append(1) or apply(*args))
    monkeypatch.setattr(packed_gru, "layer_forward", lambda *args: inference_calls.append(1) or layer_forward(*args))
    torch.manual_seed(0)
    gru = PackedGRU(4, 6, num_layers=2, bidirectional=True, batch_first=True)
    inputs = torch.randn(2, 3, 4)
    packed = pack_padded_sequence(inputs, torch.tensor([3, 2]), batch_first=True)
    trained_output, _ = gru(packed)
    assert len(calls) == 4  # 2 layers x 2 directions
    gru(inputs)  # a padded batch: the same path
    assert len(calls) == 8
    with torch.no_grad():  # the loops without autograd
        inference_output, _ = gru(packed)
    assert len(calls) == 8 and len(inference_calls) == 12  # (the autograd function calls it too)
    gru(inputs[0])  # unbatched: nn.GRU itself
    assert len(calls) == 8 and len(inference_calls) == 12
    torch.testing.assert_close(inference_output.data, trained_output.data.detach())


def test_the_nn_gru_fallback_gets_a_contiguous_state(monkeypatch):
    """cuDNN refuses a state that is a view of other rows ('rnn: hx is not contiguous', found on an H100), and
    the decoder passes the first rows of its state when a batch's targets differ in length: the fallback to
    `nn.GRU` hands it a contiguous copy (seen here on the CPU, where bfloat16 takes that fallback)."""
    seen = []
    forward = nn.GRU.forward

    def recording(self, input, hx=None):
        seen.append(hx.is_contiguous())
        return forward(self, input, hx)

    monkeypatch.setattr(nn.GRU, "forward", recording)
    gru = PackedGRU(4, 4, num_layers=2).to(torch.bfloat16)
    state = torch.zeros(2, 6, 4, dtype=torch.bfloat16)[:, :3]
    assert not state.is_contiguous()
    gru(torch.randn(5, 3, 4, dtype=torch.bfloat16), state)
    assert seen == [True]
