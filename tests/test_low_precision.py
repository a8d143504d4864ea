"""Translation in bfloat16 (`to_inference_dtype`, `from_pretrained(..., dtype=torch.bfloat16)`,
`gru-translate --dtype`): the compiled kernels run on the bfloat16 weights (asserted, so a silent fallback to
float32 or to `nn.GRU` fails), and the translations equal float32's on a model whose outputs are peaked."""

import functools
import random
import subprocess
import sys

import pytest
import torch
from tiny import learn_by_heart
from transformers import pipeline

from modeling_gru_seq2seq import modeling_gru_seq2seq as modeling
from modeling_gru_seq2seq import packed_gru
from modeling_gru_seq2seq.gru_kernels import recurrence_ops
from modeling_gru_seq2seq.pipeline_gru_seq2seq import save_translation_pipeline

FRENCH = ["un", "deux", "trois", "quatre", "cinq", "six", "sept", "huit", "neuf", "dix"]
ENGLISH = ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"]


@functools.cache
def counting_pairs() -> list[tuple[str, str]]:
    """200 different sentences of 2-4 French number words and their word-by-word English."""
    rng, pairs = random.Random(0), {}
    while len(pairs) < 200:
        words = [rng.randrange(len(FRENCH)) for _ in range(rng.randint(2, 4))]
        pairs[" ".join(FRENCH[w] for w in words)] = " ".join(ENGLISH[w] for w in words)
    return list(pairs.items())


@functools.cache
def peaked(attention: str):
    """A hidden-32 model that has learned the 200 pairs (so no argmax is a near tie), in eval mode."""
    model, tokenizer = learn_by_heart(counting_pairs(), attention=attention, num_layers=2)
    return model.eval(), tokenizer


def translations(model, tokenizer, num_beams: int) -> list[str]:
    batch = tokenizer([source for source, _ in counting_pairs()], padding=True, return_tensors="pt")
    with torch.no_grad():
        return tokenizer.batch_decode(
            model.generate(**batch, num_beams=num_beams, max_new_tokens=8), skip_special_tokens=True
        )


class RecordingOps:
    """The compiled ops, recording each call's name and the dtypes of its float tensors (weights, states)."""

    def __init__(self, ops):
        self.ops, self.calls = ops, []

    def __getattr__(self, name):
        def call(*args):
            tensors = [arg for arg in args if isinstance(arg, torch.Tensor)]
            tensors += [t for arg in args if isinstance(arg, list) for t in arg if isinstance(t, torch.Tensor)]
            self.calls.append((name, {t.dtype for t in tensors if t.is_floating_point()}))
            return getattr(self.ops, name)(*args)

        return call


@pytest.mark.parametrize("attention", ["dot", "general", "concat"])
def test_bfloat16_translations_equal_float32s_on_a_peaked_model(attention):
    model, tokenizer = peaked(attention)
    for num_beams in (1, 4):
        float32 = translations(model, tokenizer, num_beams)
        assert sum(t == e for t, (_, e) in zip(float32, counting_pairs(), strict=True)) >= 190  # learned
        bfloat16 = translations(model.to(torch.bfloat16), tokenizer, num_beams)
        model.float()
        same = sum(a == b for a, b in zip(float32, bfloat16, strict=True))
        assert same >= 0.95 * len(float32), f"beams {num_beams}: {same} of {len(float32)} equal"


def test_a_bfloat16_model_runs_the_compiled_kernels_on_bfloat16_weights(monkeypatch):
    assert recurrence_ops() is not None  # built (tests need a C++ compiler)
    model, tokenizer = peaked("general")
    recording = RecordingOps(recurrence_ops())
    loops = packed_gru.Loops(recording, onednn=False, bf16=True)
    monkeypatch.setattr(packed_gru, "bf16_inference_loops", lambda: loops)
    monkeypatch.setattr(modeling, "bf16_inference_loops", lambda: loops)
    model = model.to(torch.bfloat16)
    try:
        assert {parameter.dtype for parameter in model.parameters()} == {torch.bfloat16}
        translations(model, tokenizer, 1)
    finally:
        model.float()
    names = {name for name, _ in recording.calls}
    assert names == {"gru_forward", "luong_step"}  # the encoder's loops and the decoder's step, nothing else
    assert all(dtypes == {torch.bfloat16} for _, dtypes in recording.calls), recording.calls


def test_to_inference_dtype_converts_and_refuses_other_names():
    model, _ = peaked("dot")
    try:
        assert model.to_inference_dtype("bfloat16") is model
        assert model.dtype == torch.bfloat16 and not model.training
        assert model.to_inference_dtype(torch.float32).dtype == torch.float32
        with pytest.raises(ValueError, match="dtype 'float16': a model translates in one of float32, bfloat16"):
            model.to_inference_dtype("float16")
    finally:
        model.float()


def test_gru_translate_and_the_pipeline_translate_in_bfloat16(tmp_path):
    model, tokenizer = peaked("dot")
    save_translation_pipeline(model, tokenizer, tmp_path)
    sources, targets = zip(*counting_pairs()[:3], strict=True)
    command = [sys.executable, "-m", "modeling_gru_seq2seq.translate", str(tmp_path), "--dtype", "bfloat16"]
    result = subprocess.run([*command, *sources], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == list(targets)
    refused = subprocess.run([*command[:-1], "float16", "x"], capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2 and "argument --dtype: invalid choice: 'float16'" in refused.stderr
    translator = pipeline("translation", model=str(tmp_path), trust_remote_code=True, dtype=torch.bfloat16)
    assert translator.model.dtype == torch.bfloat16
    assert [r["translation_text"] for r in translator(list(sources))] == list(targets)
