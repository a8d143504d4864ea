"""PackedGRU against nn.GRU: the same outputs, final states and gradients for every input and parameter."""

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from modeling_gru_seq2seq.packed_gru import GruLayerFunction, PackedGRU


@pytest.mark.parametrize("bidirectional", [True, False])
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("initial_state", [True, False])
def test_packed_gru_matches_nn_gru_in_values_and_gradients(bidirectional, num_layers, initial_state):
    torch.manual_seed(0)
    kwargs = {"input_size": 5, "hidden_size": 7, "num_layers": num_layers, "bidirectional": bidirectional,
              "batch_first": True}
    reference = nn.GRU(**kwargs).double()
    packed_gru = PackedGRU(**kwargs).double()
    packed_gru.load_state_dict(reference.state_dict())
    lengths = torch.tensor([3, 6, 1, 6, 4])  # unsorted, with ties and a one-token row
    inputs = torch.randn(5, 6, 5, dtype=torch.double)
    states = torch.randn(num_layers * (2 if bidirectional else 1), 5, 7, dtype=torch.double)
    output_weights = torch.randn(5, 6, 7 * (2 if bidirectional else 1), dtype=torch.double)
    state_weights = torch.randn_like(states)
    results = []
    for gru in (reference, packed_gru):
        x, h0 = inputs.clone().requires_grad_(), states.clone().requires_grad_()
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        output, final_state = gru(packed, h0 if initial_state else None)
        padded, _ = pad_packed_sequence(output, batch_first=True)
        ((padded * output_weights).sum() + (final_state * state_weights).sum()).backward()  # uses every output
        grads = [x.grad] + ([h0.grad] if initial_state else []) + [p.grad for p in gru.parameters()]
        results.append((padded, final_state, grads))
    (padded, final_state, grads), (packed_padded, packed_final, packed_grads) = results
    torch.testing.assert_close(packed_padded, padded)
    torch.testing.assert_close(packed_final, final_state)
    assert len(packed_grads) == len(grads)
    for expected, got in zip(grads, packed_grads):
        torch.testing.assert_close(got, expected)


def test_packed_gru_takes_its_own_path_only_for_packed_batches_with_gradients(monkeypatch):
    calls = []
    apply = GruLayerFunction.apply
    monkeypatch.setattr(GruLayerFunction, "apply", lambda *args: calls.append(1) or apply(*args))
    torch.manual_seed(0)
    gru = PackedGRU(4, 6, num_layers=2, bidirectional=True, batch_first=True)
    inputs = torch.randn(2, 3, 4)
    packed = pack_padded_sequence(inputs, torch.tensor([3, 2]), batch_first=True)
    trained_output, _ = gru(packed)
    assert len(calls) == 4  # 2 layers x 2 directions
    gru(inputs)  # a padded batch: nn.GRU itself
    with torch.no_grad():
        inference_output, _ = gru(packed)
    assert len(calls) == 4
    torch.testing.assert_close(inference_output.data, trained_output.data.detach())
