"""ONNX export (`python -m modeling_gru_seq2seq.export_onnx`) and the torch-free translator written beside the
graphs (`translate_onnx.py`): on tiny models trained until their outputs are peaked, onnxruntime translates as
`generate()` does, greedy and beam 4, for every decoder type and attention score, word and subword vocabularies.
Without onnxruntime these tests skip, except under `CI=true`, where they must run."""

import functools
import importlib.util
import os
import subprocess
import sys

import pytest
import torch
from test_low_precision import counting_pairs, peaked
from test_subword import PAIRS, UNSEEN, subword_tokenizer
from tiny import learn_by_heart

from modeling_gru_seq2seq.export_onnx import ENCODER_INPUTS, EncoderGraph, check_graph, example_inputs, export_onnx
from modeling_gru_seq2seq.pipeline_gru_seq2seq import save_translation_pipeline
from modeling_gru_seq2seq.translate import translate

if os.environ.get("CI") == "true":  # CI installs the [onnx] extra: a missing runtime is a failure there
    import onnxruntime  # noqa: F401
else:
    pytest.importorskip("onnxruntime", reason="ONNX export needs onnxruntime (pip install -e '.[onnx]')")
    pytest.importorskip("onnx", reason="ONNX export needs onnx (pip install -e '.[onnx]')")

SOURCES = [source for source, _ in counting_pairs()]


def translator_of(folder):
    """`OnnxTranslator` from the exported folder's own `translate_onnx.py` (the copy written there)."""
    spec = importlib.util.spec_from_file_location(
        f"translate_onnx_{abs(hash(str(folder)))}", folder / "translate_onnx.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.OnnxTranslator(str(folder))


@functools.cache
def bahdanau():
    model, tokenizer = learn_by_heart(counting_pairs(), decoder_type="bahdanau", num_layers=2)
    return model.eval(), tokenizer


def exported(model, tokenizer, tmp_path):
    save_translation_pipeline(model, tokenizer, tmp_path / "model")
    paths = export_onnx(str(tmp_path / "model"), str(tmp_path / "onnx"))
    assert {os.path.basename(path) for path in paths} >= {"encoder.onnx", "decoder_step.onnx", "translate_onnx.py"}
    return tmp_path / "onnx"


@pytest.mark.parametrize("kind", ["dot", "general", "concat", "bahdanau"])
def test_onnxruntime_translates_as_generate_on_a_peaked_model(kind, tmp_path):
    model, tokenizer = bahdanau() if kind == "bahdanau" else peaked(kind)
    translator = translator_of(exported(model, tokenizer, tmp_path))
    for num_beams in (1, 4):
        expected = [t.text for t in translate(model, tokenizer, SOURCES, num_beams=num_beams)]
        assert sum(t == e for t, (_, e) in zip(expected, counting_pairs(), strict=True)) >= 190  # learned
        assert translator.translate(SOURCES, num_beams=num_beams) == expected, f"{num_beams} beams"
    assert translator.translate(["", " \u200b "]) == ["", ""]  # nothing to translate: empty, as translate()


@pytest.mark.parametrize("kind", ["bpe", "unigram"])
def test_a_subword_model_exports_and_translates_text_as_written(kind, tmp_path):
    model, tokenizer = learn_by_heart(PAIRS, tokenizer=subword_tokenizer(kind), vocabulary=kind)
    model.eval()
    translator = translator_of(exported(model, tokenizer, tmp_path))
    sentences = [source for source, _ in PAIRS] + UNSEEN
    for num_beams in (1, 4):
        expected = [t.text for t in translate(model, tokenizer, sentences, num_beams=num_beams)]
        assert translator.translate(sentences, num_beams=num_beams) == expected
    assert translator.translate([source for source, _ in PAIRS]) == [target for _, target in PAIRS]


def test_a_model_with_dropout_between_gru_layers_exports_as_it_translates(tmp_path):
    """Dropout (between GRU layers, on the embeddings) does nothing in eval mode, nor in the graphs: the exporter
    puts every module in the exported module's own mode (a new module is in training mode: dropout, and graphs
    that the check after export refused)."""
    model, tokenizer = learn_by_heart(counting_pairs()[:60], num_layers=2, dropout=0.1)
    model.eval()
    assert model.encoder.gru.dropout == 0.1 and model.decoder.gru.dropout == 0.1
    translator = translator_of(exported(model, tokenizer, tmp_path))
    sources = SOURCES[:60]
    assert translator.translate(sources) == [t.text for t in translate(model, tokenizer, sources)]


BLOCKED = """
import runpy, sys
sys.modules["torch"] = None  # `import torch` fails, and transformers' with it
sys.modules["transformers"] = None
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def test_the_translator_runs_where_torch_cannot_be_imported(tmp_path):
    model, tokenizer = peaked("dot")
    folder = exported(model, tokenizer, tmp_path)
    sources, targets = zip(*counting_pairs()[:3], strict=True)
    script = [sys.executable, "-c", BLOCKED, str(folder / "translate_onnx.py")]
    result = subprocess.run([*script, *sources], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.splitlines() == list(targets)
    lines = "\n".join(sources) + "\n"  # one per line on stdin, with beam search
    result = subprocess.run(
        [*script, "--num_beams", "3"], input=lines, capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert result.returncode == 0 and result.stdout.splitlines() == list(targets), result.stderr[-2000:]
    refused = subprocess.run([*script, "--num_beams", "0", "x"], capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2 and "--num_beams: got 0, want at least 1" in refused.stderr


def test_the_export_command_writes_the_graphs_and_the_translator(tmp_path):
    model, tokenizer = peaked("general")
    save_translation_pipeline(model, tokenizer, tmp_path / "model")
    command = [
        sys.executable,
        "-m",
        "modeling_gru_seq2seq.export_onnx",
        str(tmp_path / "model"),
        str(tmp_path / "out"),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert {os.path.basename(line) for line in result.stdout.splitlines()} >= {"encoder.onnx", "decoder_step.onnx"}
    missing = subprocess.run(
        [*command[:3], str(tmp_path / "nothing"), str(tmp_path / "out2")], capture_output=True, text=True
    )
    assert missing.returncode == 1 and len(missing.stderr.strip().splitlines()) == 1, missing.stderr


def test_torchs_default_exporter_matches_the_encoder_or_is_refused_in_one_line(tmp_path):
    """torch's default exporter (dynamo) on the encoder: a graph whose onnxruntime outputs match the model's on a
    padded batch of mixed lengths, or a one-line refusal (its GRU mapping has gaps for packed input)."""
    model, tokenizer = peaked("dot")
    save_translation_pipeline(model, tokenizer, tmp_path / "model")
    try:
        export_onnx(str(tmp_path / "model"), str(tmp_path / "onnx"), dynamo=True)
    except ValueError as error:
        message = str(error)
        assert "\n" not in message and "torch's default exporter (dynamo) cannot export" in message
        assert "export without --dynamo" in message
        return
    encoder_inputs, _ = example_inputs(model)
    assert encoder_inputs[1].sum(dim=1).unique().numel() > 1  # mixed lengths, padded
    encoder = str(tmp_path / "onnx" / "encoder.onnx")
    assert check_graph(EncoderGraph(model), encoder, encoder_inputs, ENCODER_INPUTS) < 1e-4


def test_the_input_checks_still_run_outside_export():
    model, _ = peaked("dot")
    with pytest.raises(ValueError, match="attention_mask: row 1 is all padding"), torch.no_grad():
        model.generate(input_ids=torch.tensor([[5, 2], [0, 0]]), attention_mask=torch.tensor([[1, 1], [0, 0]]))
