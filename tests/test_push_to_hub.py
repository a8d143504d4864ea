"""`--push_to_hub` through the Trainer's own push, offline: only the Hub API's network calls are replaced
(repositories and commits land in a local folder); the pushed folder then loads and translates in a
fresh process that cannot import the package."""

import json
import os
import subprocess
import sys

import pytest
from test_run_translation import SCRIPT, TINY

pytestmark = pytest.mark.slow  # a whole training run in a subprocess

FAKE_HUB = """
import os
from huggingface_hub import CommitInfo, CommitOperationAdd, HfApi, hf_api
from huggingface_hub.hf_api import RepoUrl

PUSHED = os.environ["PUSHED_DIR"]

def create_repo(self, repo_id, **kwargs):
    return RepoUrl(f"https://huggingface.co/{repo_id}")

def create_commit(self, repo_id, operations, commit_message="", **kwargs):
    for operation in operations:
        assert isinstance(operation, CommitOperationAdd), operation
        target = os.path.join(PUSHED, repo_id, operation.path_in_repo)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with operation.as_file() as source, open(target, "wb") as handle:
            handle.write(source.read())
    return CommitInfo(f"https://huggingface.co/{repo_id}/commit/0", commit_message, "", "0" * 40)

HfApi.create_repo = create_repo
HfApi.create_commit = create_commit
HfApi._validate_yaml = lambda self, *args, **kwargs: None  # the Hub checks a README's metadata online
hf_api.is_xet_available = lambda: False  # upload_folder's single-commit path: everything goes through create_commit
"""

LOAD_PUSHED = """
import json, sys
sys.modules["modeling_gru_seq2seq"] = None  # the package is installed: prove the pushed files suffice
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer, pipeline

folder, sentence = sys.argv[1], sys.argv[2]
tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=True)
model = AutoModelForSeq2SeqLM.from_pretrained(folder, trust_remote_code=True)
generated = model.generate(**tokenizer([sentence], return_tensors="pt"))
translator = pipeline("translation", model=folder, trust_remote_code=True)
print(json.dumps({"generate": tokenizer.batch_decode(generated, skip_special_tokens=True)[0],
                  "pipeline": translator(sentence)[0]["translation_text"],
                  "model_module": type(model).__module__}))
"""


def test_push_to_hub_offline_then_load_pushed_folder(pairs_file, tmp_path):
    pairs = tmp_path / "pairs.txt"
    with open(pairs_file, encoding="utf-8") as source:
        pairs.write_text("".join(line for _, line in zip(range(1000), source, strict=False)), encoding="utf-8")
    pushed, output_dir = tmp_path / "hub", tmp_path / "out"
    args = [
        "--train_file",
        str(pairs),
        "--output_dir",
        str(output_dir),
        *TINY,
        "--max_steps",
        "3",
        "--max_eval_samples",
        "8",
        "--max_predict_samples",
        "8",
        "--num_attention_plots",
        "0",
        "--push_to_hub",
        "--hub_model_id",
        "someone/gru-fr-en",
        "--eval_strategy",
        "no",
    ]
    code = (
        f"{FAKE_HUB}\nimport runpy, sys\nsys.argv = {[SCRIPT, *args]!r}\n"
        "runpy.run_path(sys.argv[0], run_name='__main__')"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PUSHED_DIR": str(pushed)},
    )
    assert result.returncode == 0, result.stderr[-3000:]

    repo = pushed / "someone" / "gru-fr-en"
    files = {path.name for path in repo.iterdir()}
    for name in (
        "config.json",
        "model.safetensors",
        "generation_config.json",
        "tokenizer.json",
        "target_tokenizer.json",
        "tokenizer_config.json",
        "configuration_gru_seq2seq.py",
        "modeling_gru_seq2seq.py",
        "tokenization_gru_seq2seq.py",
        "pipeline_gru_seq2seq.py",
        "README.md",
    ):
        assert name in files, name
    assert not any(name.startswith("checkpoint-") for name in files)
    config = json.loads((repo / "config.json").read_text())
    assert config["auto_map"]["AutoModelForSeq2SeqLM"] == "modeling_gru_seq2seq.GruSeq2SeqForConditionalGeneration"
    assert "translation" in config["custom_pipelines"]
    card = (repo / "README.md").read_text()
    for expected in (
        "- fr",
        "- en",
        "pipeline_tag: translation",
        "tatoeba",
        "trust_remote_code=True",
        "nrefs:1|case:mixed",
        "CC-BY 2.0",
        "someone/gru-fr-en",
        "predict_bleu",
    ):
        assert expected in card, expected

    loaded = subprocess.run(
        [sys.executable, "-c", LOAD_PUSHED, str(repo), "je suis froid ."], capture_output=True, text=True, timeout=120
    )
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    outputs = json.loads(loaded.stdout.strip().splitlines()[-1])
    assert outputs["generate"] == outputs["pipeline"]
    assert not outputs["model_module"].startswith("modeling_gru_seq2seq.")
