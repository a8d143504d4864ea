"""The model on a CUDA GPU (marked `cuda`, skipped without one): training steps and `generate` give the CPU's
numbers, a GPU-trained model loads and translates on the CPU, and run_translation.py trains with `--bf16`.

TF32 is off in every test (cuDNN's RNNs use it by default), so both devices compute in float32 and differ
only in summation order: losses, gradients, parameters and scores agree to `TOLERANCE` (1e-5 absolute plus
1e-4 relative); tokens agree exactly, compared on models with peaked outputs (tiny models that have
learned a few pairs by heart, so that no argmax is a near tie)."""

import copy
import functools
import json
import math
import pathlib
import subprocess
import sys

import pytest
import torch
from tiny import PAIRS, SOURCES, TARGETS, learn_by_heart
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

from modeling_gru_seq2seq import (
    GruSeq2SeqForConditionalGeneration,
    GruSeq2SeqTokenizer,
    train_word_level,
)
from modeling_gru_seq2seq.pipeline_gru_seq2seq import save_translation_pipeline
from modeling_gru_seq2seq.translate import translate

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

SCRIPT = pathlib.Path(__file__).resolve().parents[1] / "run_translation.py"
TOLERANCE = {"atol": 1e-5, "rtol": 1e-4}
DECODERS = [("luong", "dot"), ("luong", "general"), ("luong", "concat"), ("bahdanau", "concat")]
DECODER_IDS = ["luong-dot", "luong-general", "luong-concat", "bahdanau"]


@pytest.fixture(autouse=True)
def no_tf32():
    """Full float32 matmuls and cuDNN during the test, as on the CPU; the previous settings restored after."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


@functools.cache
def tokenizer() -> GruSeq2SeqTokenizer:
    return GruSeq2SeqTokenizer.from_vocabularies(train_word_level(SOURCES), train_word_level(TARGETS))


def batch(device: str) -> dict:
    """All of `PAIRS` as one padded batch on `device`, padded labels -100."""
    encoded = tokenizer()(SOURCES, text_target=TARGETS, padding=True, return_tensors="pt")
    encoded["labels"][encoded["labels"] == tokenizer().pad_token_id] = -100
    return {name: tensor.to(device) for name, tensor in encoded.items()}


def learn_pairs(decoder_type: str, attention: str, device: str) -> GruSeq2SeqForConditionalGeneration:
    """A hidden-32, 2-layer model without dropout, trained on `device` until it knows `PAIRS` by heart (150
    teacher-forced Adam steps at 1e-2), in train mode."""
    return learn_by_heart(PAIRS, device, num_layers=2, decoder_type=decoder_type, attention=attention)[0]


@functools.cache
def peaked(decoder_type: str, attention: str) -> GruSeq2SeqForConditionalGeneration:
    """`learn_pairs` on the CPU, once per decoder; tests take copies."""
    return learn_pairs(decoder_type, attention, "cpu")


def on_both_devices(decoder_type: str, attention: str):
    cpu_model = copy.deepcopy(peaked(decoder_type, attention))
    return cpu_model, copy.deepcopy(cpu_model).cuda()


@pytest.mark.parametrize("teacher_forcing", [True, False], ids=["teacher-forced", "free-running"])
@pytest.mark.parametrize("decoder_type, attention", DECODERS, ids=DECODER_IDS)
def test_training_steps_on_cuda_equal_the_cpus(decoder_type, attention, teacher_forcing):
    models = on_both_devices(decoder_type, attention)
    optimizers = [torch.optim.SGD(model.parameters(), lr=0.1) for model in models]
    for _ in range(3):
        losses = []
        for model, optimizer in zip(models, optimizers, strict=False):
            optimizer.zero_grad()
            loss = model(**batch(model.device), teacher_forcing=teacher_forcing).loss
            loss.backward()
            optimizer.step()
            losses.append(loss.detach().cpu())
        torch.testing.assert_close(losses[1], losses[0], **TOLERANCE)
        for (name, cpu_parameter), cuda_parameter in zip(
            models[0].named_parameters(), models[1].parameters(), strict=False
        ):
            torch.testing.assert_close(cuda_parameter.grad.cpu(), cpu_parameter.grad, **TOLERANCE, msg=name)
    for (name, cpu_parameter), cuda_parameter in zip(
        models[0].named_parameters(), models[1].parameters(), strict=False
    ):
        torch.testing.assert_close(cuda_parameter.detach().cpu(), cpu_parameter.detach(), **TOLERANCE, msg=name)


@pytest.mark.parametrize("teacher_forcing", [True, False], ids=["teacher-forced", "free-running"])
def test_a_batch_of_mixed_target_lengths_trains_on_cuda_as_on_the_cpu(teacher_forcing):
    """Rows whose targets end early drop out of the later decoding steps, so the decoder steps on the first rows
    of its state (a view); cuDNN needs it contiguous (this crashed on an H100: 'rnn: hx is not contiguous')."""
    losses = []
    for model in on_both_devices("luong", "dot"):
        inputs = batch(model.device)
        inputs["labels"][::2, 2:] = -100  # every other target ends after two tokens
        loss = model(**inputs, teacher_forcing=teacher_forcing).loss
        loss.backward()
        losses.append(loss.detach().cpu())
    torch.testing.assert_close(losses[1], losses[0], **TOLERANCE)


@pytest.mark.parametrize("num_beams", [1, 3])
@pytest.mark.parametrize("decoder_type, attention", DECODERS, ids=DECODER_IDS)
def test_generate_on_cuda_equals_the_cpus(decoder_type, attention, num_beams):
    outputs = []
    for model in on_both_devices(decoder_type, attention):
        inputs = tokenizer()(SOURCES, padding=True, return_tensors="pt").to(model.device)
        outputs.append(
            model.eval().generate(
                **inputs, num_beams=num_beams, max_new_tokens=10, output_scores=True, return_dict_in_generate=True
            )
        )
    cpu, cuda = outputs
    assert tokenizer().batch_decode(cpu.sequences, skip_special_tokens=True) == TARGETS  # peaked: learned by heart
    assert torch.equal(cuda.sequences.cpu(), cpu.sequences)
    for cpu_scores, cuda_scores in zip(cpu.scores, cuda.scores, strict=True):
        finite = cpu_scores.isfinite()  # beam search masks scores with -inf
        assert torch.equal(cuda_scores.isfinite().cpu(), finite)
        torch.testing.assert_close(cuda_scores.cpu()[finite], cpu_scores[finite], **TOLERANCE)


def test_a_gpu_trained_model_loads_and_translates_on_the_cpu(tmp_path):
    model = learn_pairs("luong", "dot", "cuda").eval()
    on_gpu = [result.text for result in translate(model, tokenizer(), SOURCES, max_new_tokens=10)]
    save_translation_pipeline(model, tokenizer(), tmp_path)
    loaded = AutoModelForSeq2SeqLM.from_pretrained(tmp_path)
    assert loaded.device.type == "cpu"
    on_cpu = [
        result.text
        for result in translate(loaded, AutoTokenizer.from_pretrained(tmp_path), SOURCES, max_new_tokens=10)
    ]
    assert on_cpu == on_gpu == TARGETS


def test_run_translation_trains_with_bf16(tmp_path):
    """A tiny run on the GPU under bf16 autocast (teacher forcing 0.5: both decoder paths), evaluated and tested."""
    lines = [f"{en}\t{fr}\n" for fr, en in PAIRS]
    for name, chosen in (("train", lines), ("validation", lines[:4]), ("test", lines[4:])):
        (tmp_path / f"{name}.txt").write_text("".join(chosen), encoding="utf-8")
    output_dir = tmp_path / "out"
    result = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--train_file",
            str(tmp_path / "train.txt"),
            "--validation_file",
            str(tmp_path / "validation.txt"),
            "--test_file",
            str(tmp_path / "test.txt"),
            "--output_dir",
            str(output_dir),
            "--bf16",
            "--hidden_size",
            "32",
            "--num_layers",
            "2",
            "--min_count",
            "1",
            "--max_steps",
            "20",
            "--per_device_train_batch_size",
            "4",
            "--eval_strategy",
            "no",
            "--save_strategy",
            "no",
            "--num_attention_plots",
            "0",
            "--report_to",
            "none",
            "--disable_tqdm",
            "true",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((output_dir / "trainer_state.json").read_text())["global_step"] == 20
    results = json.loads((output_dir / "all_results.json").read_text())
    assert math.isfinite(results["train_loss"]) and "predict_bleu" in results
    assert AutoModelForSeq2SeqLM.from_pretrained(output_dir).dtype == torch.float32  # autocast keeps fp32 weights
