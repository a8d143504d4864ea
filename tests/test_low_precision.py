"""Translation in bfloat16 and int8 (`to_inference_dtype`, `from_pretrained(..., dtype=torch.bfloat16)`, the
pipeline's `inference_dtype`, `gru-translate --dtype`): the compiled kernels run on the bfloat16 or int8 weights
(asserted, so a silent fallback to float32 or to `nn.GRU` fails), and the translations equal float32's on a model
whose outputs are peaked."""

import copy
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
from modeling_gru_seq2seq.int8_weights import Int8Linear, int8_kernel
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
    """The compiled ops, recording each call's name and the dtypes of its float tensors (weights, states), or
    with `all_dtypes` of all its tensors (int8 weights too)."""

    def __init__(self, ops, all_dtypes: bool = False):
        self.ops, self.calls, self.all_dtypes = ops, [], all_dtypes

    def __getattr__(self, name):
        def call(*args):
            tensors = [arg for arg in args if isinstance(arg, torch.Tensor)]
            tensors += [t for arg in args if isinstance(arg, list) for t in arg if isinstance(t, torch.Tensor)]
            self.calls.append((name, {t.dtype for t in tensors if self.all_dtypes or t.is_floating_point()}))
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


def gru_translate_in(dtype: str, folder) -> tuple[list[str], list[str]]:
    """Save the peaked `dot` model to `folder`, assert that `gru-translate --dtype dtype` translates three of its
    sentences right; the `(sources, targets)` of those three."""
    model, tokenizer = peaked("dot")
    save_translation_pipeline(model, tokenizer, folder)
    sources, targets = zip(*counting_pairs()[:3], strict=True)
    command = [sys.executable, "-m", "modeling_gru_seq2seq.translate", str(folder), "--dtype", dtype]
    result = subprocess.run([*command, *sources], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == list(targets)
    return list(sources), list(targets)


def test_gru_translate_and_the_pipeline_translate_in_bfloat16(tmp_path):
    sources, targets = gru_translate_in("bfloat16", tmp_path)
    command = [sys.executable, "-m", "modeling_gru_seq2seq.translate", str(tmp_path), "--dtype"]
    refused = subprocess.run([*command, "float16", "x"], capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2 and "argument --dtype: invalid choice: 'float16'" in refused.stderr
    translator = pipeline("translation", model=str(tmp_path), trust_remote_code=True, dtype=torch.bfloat16)
    assert translator.model.dtype == torch.bfloat16
    assert [r["translation_text"] for r in translator(list(sources))] == list(targets)


def int8_copy(attention: str):
    model, tokenizer = peaked(attention)
    return copy.deepcopy(model).to_inference_dtype("int8"), tokenizer


@pytest.mark.parametrize("attention", ["dot", "general", "concat"])
def test_int8_translations_equal_float32s_on_a_peaked_model(attention):
    model, tokenizer = peaked(attention)
    int8, _ = int8_copy(attention)
    for num_beams in (1, 4):
        float32 = translations(model, tokenizer, num_beams)
        assert sum(t == e for t, (_, e) in zip(float32, counting_pairs(), strict=True)) >= 190  # learned
        same = sum(a == b for a, b in zip(float32, translations(int8, tokenizer, num_beams), strict=True))
        assert same >= 0.95 * len(float32), f"beams {num_beams}: {same} of {len(float32)} equal"


def test_the_bahdanau_decoder_translates_in_int8():
    model, tokenizer = learn_by_heart(counting_pairs()[:60], decoder_type="bahdanau")
    model.eval()
    float32 = translations(model, tokenizer, 1)[:60]
    int8 = translations(copy.deepcopy(model).to_inference_dtype("int8"), tokenizer, 1)[:60]
    assert type(model.decoder.out) is torch.nn.Linear
    assert sum(a == b for a, b in zip(float32, int8, strict=True)) >= 57


def cpu_flags() -> set[str]:
    with open("/proc/cpuinfo") as handle:
        return {flag for line in handle if line.startswith("flags") for flag in line.split(":")[1].split()}


def test_an_int8_model_runs_the_compiled_int8_kernels_on_int8_weights(monkeypatch):
    model, tokenizer = int8_copy("general")
    for gru in (model.encoder.gru, model.decoder.gru):
        weights = [getattr(gru, name) for name in gru._flat_weights_names]
        assert {w.dtype for w in weights if w.dim() == 2} == {torch.int8}  # the matrices; biases stay float32
        assert {w.dtype for w in weights if w.dim() == 1} == {torch.float32}
    linears = (model.decoder.concat, model.decoder.out, model.decoder.attention.query_projection)
    assert all(type(layer) is Int8Linear and layer.weight.dtype == torch.int8 for layer in linears)
    assert not any(type(module) is torch.nn.Linear for module in model.modules())
    expected = "avx512-vnni" if {"avx512f", "avx512_vnni"} <= cpu_flags() else "portable"
    assert int8_kernel() == expected
    recording = RecordingOps(recurrence_ops(), all_dtypes=True)
    monkeypatch.setattr(packed_gru, "int8_loops", lambda: packed_gru.Loops(recording))
    monkeypatch.setattr(modeling, "int8_loops", lambda: packed_gru.Loops(recording))
    assert translations(model, tokenizer, 1) == translations(int8_copy("general")[0], tokenizer, 1)
    names = {name for name, _ in recording.calls}
    assert names == {"gru_forward", "luong_step"}  # the encoder's loops and the decoder's step, nothing else
    assert all(torch.int8 in dtypes and torch.bfloat16 not in dtypes for _, dtypes in recording.calls)


def test_an_int8_model_refuses_saving_training_and_other_dtypes_in_one_line(tmp_path):
    model, _ = int8_copy("dot")
    with pytest.raises(ValueError, match=r"holds int8 weights .*save the float model") as saving:
        model.save_pretrained(tmp_path)
    assert "\n" not in str(saving.value) and not list(tmp_path.iterdir())
    with pytest.raises(ValueError, match=r"holds int8 weights .*train the float model"):
        model.train()
    with pytest.raises(ValueError, match="dtype 'float32': this model holds int8 weights already"):
        model.to_inference_dtype("float32")
    assert model.to_inference_dtype("int8") is model  # again: nothing to do


PIPELINE_WITHOUT_THE_PACKAGE = """
import sys
sys.modules["modeling_gru_seq2seq"] = None  # only the code saved with the model
from transformers import pipeline
translator = pipeline("translation", model=sys.argv[1], trust_remote_code=True, inference_dtype="int8")
assert translator.model.decoder.out.weight.dtype.is_floating_point is False
for result in translator(sys.argv[2:]):
    print(result["translation_text"])
"""


def test_gru_translate_and_the_pipeline_translate_in_int8(tmp_path):
    sources, targets = gru_translate_in("int8", tmp_path)
    script = [sys.executable, "-c", PIPELINE_WITHOUT_THE_PACKAGE, str(tmp_path), *sources]
    result = subprocess.run(script, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.splitlines() == list(targets)


def test_int8_translates_on_the_cpu_by_default_and_refuses_another_device(monkeypatch):
    from modeling_gru_seq2seq import translate as translate_module
    from modeling_gru_seq2seq.commands import UsageError

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # a machine with a GPU
    assert translate_module.inference_device(None, "float32").type == "cuda"
    assert translate_module.inference_device(None, "int8").type == "cpu"
    monkeypatch.setattr(translate_module, "resolve_device", lambda name: torch.device(name or "cuda"))
    with pytest.raises(UsageError, match="--dtype int8 translates on the CPU only: give --device cpu"):
        translate_module.inference_device("cuda:0", "int8")
