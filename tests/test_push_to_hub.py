"""`--push_to_hub` through the Trainer's own push, offline: only the Hub API's network calls are replaced
(repositories and commits land in a local folder); the pushed folder then loads and translates in a
fresh process that cannot import the package; a SIGKILL in the push's local save keeps the saved model whole,
and the rerun pushes."""

import json
import os
import signal
import subprocess
import sys

import pytest
from runs import SCRIPT, TINY, run_script

from modeling_gru_seq2seq.loading import load_model_and_tokenizer

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


# ---------------------------------------------------------------- push_to_hub killed while saving locally


# Trainer.push_to_hub saves the model into output_dir again before uploading (through
# GruSeq2SeqTrainer.save_model's staging folder): kill it there, leaving model.safetensors half written as a
# kill in the middle of the write would. (Patched before transformers is imported, which binds
# safetensors' save_file.)
KILL_IN_PUSH_SAVE = """
import os, signal
from safetensors import torch as safetensors_torch
pushing = []
original_save = safetensors_torch.save_file
def save_half_then_die(tensors, filename, *args, **kwargs):
    original_save(tensors, filename, *args, **kwargs)
    if pushing:
        with open(filename, "r+b") as handle:
            handle.truncate(os.path.getsize(filename) // 2)
        os.kill(os.getpid(), signal.SIGKILL)
safetensors_torch.save_file = save_half_then_die
from modeling_gru_seq2seq.training import GruSeq2SeqTrainer
original_push = GruSeq2SeqTrainer.push_to_hub
def push(self, *args, **kwargs):
    pushing.append(True)
    return original_push(self, *args, **kwargs)
GruSeq2SeqTrainer.push_to_hub = push
"""


@pytest.mark.slow
def test_sigkill_in_push_to_hub_local_save_keeps_the_saved_model_whole_and_the_rerun_pushes(pairs_file, tmp_path):
    pushed, output_dir = tmp_path / "hub", tmp_path / "out"
    args = [
        "--train_file",
        pairs_file,
        "--output_dir",
        str(output_dir),
        *TINY,
        "--max_steps",
        "3",
        "--save_strategy",
        "steps",
        "--save_steps",
        "3",
        "--eval_strategy",
        "no",
        "--max_eval_samples",
        "8",
        "--max_predict_samples",
        "8",
        "--num_attention_plots",
        "0",
        "--push_to_hub",
        "--hub_model_id",
        "someone/gru-fr-en",
    ]
    env = {"PUSHED_DIR": str(pushed)}
    killed = run_script(*args, env=env, prelude=KILL_IN_PUSH_SAVE + FAKE_HUB)
    assert killed.returncode == -signal.SIGKILL
    staged = output_dir / ".model-staging" / "model.safetensors"
    assert staged.stat().st_size < (output_dir / "model.safetensors").stat().st_size  # the half-written save
    load_model_and_tokenizer(str(output_dir))  # ... stayed in staging: the model saved before the push is whole

    rerun = run_script(*args, env=env, prelude=FAKE_HUB)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert f"Resuming from {output_dir / 'checkpoint-3'}" in rerun.stdout
    load_model_and_tokenizer(str(output_dir))
    repo = pushed / "someone" / "gru-fr-en"
    assert (repo / "model.safetensors").read_bytes() == (output_dir / "model.safetensors").read_bytes()
