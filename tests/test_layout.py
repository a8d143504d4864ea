"""The layout: what travels with a saved model is exactly `MODEL_CODE_FILES`, which import nothing but torch,
transformers, tokenizers, the standard library and each other; and imports go one way, from the scripts down to
the model's code."""

import ast
import pathlib
import sys

import pytest
import torch

from modeling_gru_seq2seq import (
    MODEL_CODE_FILES,
    GruSeq2SeqForConditionalGeneration,
)
from modeling_gru_seq2seq.pipeline_gru_seq2seq import save_translation_pipeline

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "modeling_gru_seq2seq"
# Layers, bottom up: a module imports only from its own layer or those below.
LAYERS = [
    {f"modeling_gru_seq2seq.{name[:-3]}" for name in MODEL_CODE_FILES},
    {
        "modeling_gru_seq2seq",
        "modeling_gru_seq2seq.commands",
        "modeling_gru_seq2seq.metrics",
        "modeling_gru_seq2seq.metrics.sacrebleu_chrf.sacrebleu_chrf",
        "modeling_gru_seq2seq.plotting",
        "modeling_gru_seq2seq.model_card",
        "modeling_gru_seq2seq.translate_onnx",  # (written beside exported graphs: imports none of ours)
        "data_scripts",
        "data_scripts.prepare_tatoeba",
    },
    {
        "modeling_gru_seq2seq.training",
        "modeling_gru_seq2seq.loading",
        "modeling_gru_seq2seq.translate",
        "modeling_gru_seq2seq.export_onnx",
        "modeling_gru_seq2seq.serve",
        "modeling_gru_seq2seq.space_app",
        "modeling_gru_seq2seq.word_vectors",
    },
    {"run_translation", *(f"benchmarks.{path.stem}" for path in (ROOT / "benchmarks").glob("*.py"))},
]
LAYER_NAMES = ["the model's code", "data and path helpers", "training, translation, loading", "scripts"]


def module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: pathlib.Path) -> set[str]:
    """The modules `path` imports, relative imports resolved, `from package import name` read as the module
    `package.name` when that is one of ours."""
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in ALL_OURS)
    return found


ALL_OURS = set().union(*LAYERS)


def test_every_module_has_a_layer():
    paths = [
        *PACKAGE.rglob("*.py"),
        *(ROOT / "data_scripts").glob("*.py"),
        ROOT / "run_translation.py",
        *(ROOT / "benchmarks").glob("*.py"),
    ]
    assert {module_name(path) for path in paths} == ALL_OURS


def test_imports_go_down_the_layers_only():
    layer_of = {name: index for index, layer in enumerate(LAYERS) for name in layer}
    for name, index in layer_of.items():
        path = ROOT / (name.replace(".", "/") + ".py")
        path = path if path.exists() else ROOT / name.replace(".", "/") / "__init__.py"
        for imported in imported_modules(path):
            if imported in layer_of:
                assert layer_of[imported] <= index, (
                    f"{name} ({LAYER_NAMES[index]}) imports {imported} ({LAYER_NAMES[layer_of[imported]]})"
                )


def test_the_model_code_imports_only_torch_transformers_tokenizers_and_itself():
    allowed = {"torch", "transformers", "tokenizers", *sys.stdlib_module_names}
    for name in MODEL_CODE_FILES:
        for imported in imported_modules(PACKAGE / name):
            top = imported.split(".")[0]
            assert top in allowed or imported in LAYERS[0], f"{name} imports {imported}"


@pytest.mark.parametrize("decoder_type", ["luong", "bahdanau"])
def test_a_saved_model_holds_exactly_the_model_code(tmp_path, tiny_config, tiny_tokenizer, decoder_type):
    tiny_config.decoder_type = decoder_type
    torch.manual_seed(0)
    save_translation_pipeline(GruSeq2SeqForConditionalGeneration(tiny_config), tiny_tokenizer, tmp_path)
    assert {path.name for path in tmp_path.glob("*.py")} == set(MODEL_CODE_FILES)
