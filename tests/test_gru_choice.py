"""gru_choice.py: the implementation of each GRU regime is timed on the machine, stored with the build (numbers
too), read back by later processes, timed again on GRU_SEQ2SEQ_RETIME=1, and followed by PackedGRU."""

import json

import pytest
import torch
from torch import nn

from modeling_gru_seq2seq import gru_choice, packed_gru
from modeling_gru_seq2seq.gru_choice import IMPLEMENTATIONS, REGIMES, Loops
from modeling_gru_seq2seq.gru_kernels import recurrence_ops
from modeling_gru_seq2seq.packed_gru import PackedGRU


@pytest.fixture
def build_folder(tmp_path, monkeypatch):
    """A build folder of its own holding the loaded library's choices file, and no remembered choices."""
    assert recurrence_ops() is not None, "the compiled GRU recurrence did not build (see the warning)"
    monkeypatch.setattr(gru_choice, "build_directory", lambda: str(tmp_path))
    gru_choice.timed_choices.cache_clear()
    yield tmp_path
    gru_choice.timed_choices.cache_clear()


def fake_timings(winner: str) -> dict:
    return {regime: {name: (1.0 if name == winner else 2.0) for name in IMPLEMENTATIONS} for regime in REGIMES}


def test_every_regime_is_timed_here_and_stored_with_the_numbers(build_folder):
    entry = gru_choice.timed_choices(8, 1)
    assert set(entry["ms"]) == set(REGIMES) and set(entry["choice"]) == set(REGIMES)
    for regime in REGIMES:
        timings = entry["ms"][regime]
        assert {"nn.GRU", "compiled+mkl"} <= set(timings) and all(ms > 0 for ms in timings.values())
        assert timings[entry["choice"][regime]] <= min(timings.values()) * (1 + gru_choice.TIE)
    stored = json.loads((build_folder / gru_choice.CHOICES_FILE).read_text())
    assert stored["hidden 8, 1 threads"] == entry


def test_stored_choices_are_read_back_and_retimed_on_request(build_folder, monkeypatch):
    (build_folder / gru_choice.CHOICES_FILE).write_text(
        json.dumps({"hidden 8, 1 threads": {"ms": fake_timings("nn.GRU"), "choice": dict.fromkeys(REGIMES, "nn.GRU")}})
    )
    monkeypatch.setattr(gru_choice, "time_implementations", lambda hidden_size: pytest.fail("timed again"))
    assert gru_choice.timed_choices(8, 1)["choice"] == dict.fromkeys(REGIMES, "nn.GRU")

    gru_choice.timed_choices.cache_clear()
    monkeypatch.setenv("GRU_SEQ2SEQ_RETIME", "1")
    monkeypatch.setattr(gru_choice, "time_implementations", lambda hidden_size: fake_timings("compiled+mkl"))
    assert gru_choice.timed_choices(8, 1)["choice"] == dict.fromkeys(REGIMES, "compiled+mkl")
    stored = json.loads((build_folder / gru_choice.CHOICES_FILE).read_text())
    assert stored["hidden 8, 1 threads"]["choice"] == dict.fromkeys(REGIMES, "compiled+mkl")


@pytest.mark.parametrize("winner", IMPLEMENTATIONS)
def test_packed_gru_runs_the_stored_choice(build_folder, monkeypatch, winner):
    monkeypatch.setattr(gru_choice, "time_implementations", lambda hidden_size: fake_timings(winner))
    used = []
    layer_forward, nn_forward = packed_gru.layer_forward, nn.GRU.forward
    monkeypatch.setattr(
        packed_gru, "layer_forward", lambda loops, *args: used.append(loops) or layer_forward(loops, *args)
    )
    monkeypatch.setattr(nn.GRU, "forward", lambda self, *args: used.append("nn.GRU") or nn_forward(self, *args))
    torch.manual_seed(0)
    gru, reference = PackedGRU(5, 8, batch_first=True), nn.GRU(5, 8, batch_first=True)
    reference.load_state_dict(gru.state_dict())
    inputs = torch.randn(2, 3, 5)
    with torch.no_grad():
        output, _ = gru(inputs)
    expected = "nn.GRU" if winner == "nn.GRU" else Loops(recurrence_ops(), winner == "compiled+onednn")
    assert used[0] == expected
    used.clear()
    with torch.no_grad():
        torch.testing.assert_close(output, reference(inputs)[0], rtol=1e-4, atol=1e-5)


def test_the_timing_uses_only_what_works_here(build_folder, monkeypatch):
    """Without oneDNN in the build, oneDNN is not a candidate (and so never chosen)."""

    class WithoutOneDnn:
        def __getattr__(self, name):
            return (lambda: False) if name == "uses_onednn" else getattr(recurrence_ops(), name)

    monkeypatch.setattr(gru_choice, "built_recurrence_ops", lambda: WithoutOneDnn())
    timings = gru_choice.time_implementations(8, repeats=1)
    assert all(set(by_name) == {"nn.GRU", "compiled+mkl"} for by_name in timings.values())


def test_inference_without_a_built_library_runs_nn_gru_and_builds_nothing(monkeypatch):
    monkeypatch.setattr(gru_choice, "built_recurrence_ops", lambda: None)
    monkeypatch.setattr(gru_choice, "recurrence_ops", lambda: pytest.fail("asked for a build"))
    assert gru_choice.choice(500, 1, training=False) is None
    assert gru_choice.choice(500, 64, training=False) is None


def test_a_build_folder_it_cannot_write_keeps_the_choice_for_the_process(build_folder, monkeypatch):
    monkeypatch.setattr(gru_choice, "build_directory", lambda: str(build_folder / "gone"))
    monkeypatch.setattr(gru_choice, "time_implementations", lambda hidden_size: fake_timings("nn.GRU"))
    assert gru_choice.timed_choices(8, 1)["choice"][REGIMES[0]] == "nn.GRU"
    assert not (build_folder / "gone").exists()


def test_near_ties_go_to_the_preferred_implementation():
    assert gru_choice.fastest({"nn.GRU": 10.0, "compiled+mkl": 10.3, "compiled+onednn": 9.9}) == "compiled+mkl"
    assert gru_choice.fastest({"nn.GRU": 10.0, "compiled+mkl": 12.0, "compiled+onednn": 9.9}) == "nn.GRU"
    assert gru_choice.fastest({"nn.GRU": 10.0, "compiled+mkl": 12.0, "compiled+onednn": 5.0}) == "compiled+onednn"


def test_choices_stored_without_a_regime_are_timed_again(build_folder, monkeypatch):
    (build_folder / gru_choice.CHOICES_FILE).write_text(
        json.dumps({"hidden 8, 1 threads": {"ms": {}, "choice": {"training": "nn.GRU"}}})
    )
    monkeypatch.setattr(gru_choice, "time_implementations", lambda hidden_size: fake_timings("compiled+mkl"))
    assert gru_choice.timed_choices(8, 1)["choice"] == dict.fromkeys(REGIMES, "compiled+mkl")
