"""The compiled GRU recurrence's build (gru_kernels.py): it can be switched off, a lock left by an interrupted
build does not hang the next one, a build says so at the default log level and is loaded afterwards without
building again, each torch installation has its own, inference never builds, and a build folder holding another
source is emptied first. (The build folder's owner lock: tests/test_owner_lock.py; the recurrence against
nn.GRU: tests/test_packed_gru.py; the timed choice: tests/test_gru_choice.py.)"""

import os
import subprocess
import sys
import time
from pathlib import Path

import torch

from modeling_gru_seq2seq import gru_kernels
from modeling_gru_seq2seq.gru_kernels import build_directory, recurrence_ops

REPO_ROOT = Path(__file__).resolve().parent.parent


def test_recurrence_ops_can_be_switched_off(monkeypatch):
    monkeypatch.setenv("GRU_SEQ2SEQ_NO_COMPILE", "1")
    recurrence_ops.cache_clear()
    try:
        assert recurrence_ops() is None
    finally:
        recurrence_ops.cache_clear()


def test_a_lock_left_by_an_interrupted_build_does_not_hang_the_next_one(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    os.makedirs(build_directory())
    lock = os.path.join(build_directory(), "lock")
    open(lock, "w").close()
    os.utime(lock, (time.time() - 3600, time.time() - 3600))
    script = "from modeling_gru_seq2seq.gru_kernels import recurrence_ops; assert recurrence_ops() is not None"
    built = subprocess.run([sys.executable, "-c", script], timeout=300, cwd=REPO_ROOT, capture_output=True, text=True)
    assert built.returncode == 0, built.stderr
    assert not os.path.exists(lock)
    notices = [line for line in built.stderr.splitlines() if "building the compiled GRU loops" in line]
    assert len(notices) == 1 and build_directory() in notices[0]
    loaded = subprocess.run([sys.executable, "-c", script], timeout=60, cwd=REPO_ROOT, capture_output=True, text=True)
    assert loaded.returncode == 0 and "building" not in loaded.stderr


def test_each_torch_installation_builds_its_own_library(monkeypatch):
    key = gru_kernels.build_key.__wrapped__()
    assert gru_kernels.build_key.__wrapped__() == key
    monkeypatch.setattr(torch, "__file__", "/another/venv/lib/python3.11/site-packages/torch/__init__.py")
    assert gru_kernels.build_key.__wrapped__() != key


def test_inference_never_builds(tmp_path, monkeypatch):
    """`built_recurrence_ops` (what inference asks for) gives nothing where nothing is built yet, and builds
    nothing; once the library is there, it loads it."""
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    recurrence_ops.cache_clear()
    try:
        assert gru_kernels.built_recurrence_ops() is None
        assert not any(path.suffix == ".so" for path in tmp_path.rglob("*"))
    finally:
        recurrence_ops.cache_clear()
    monkeypatch.delenv("TORCH_EXTENSIONS_DIR")
    assert recurrence_ops() is not None and gru_kernels.built_recurrence_ops() is recurrence_ops()


def test_a_build_folder_with_another_source_is_emptied_first(tmp_path):
    folder = tmp_path / "build"
    folder.mkdir()
    (folder / gru_kernels.SOURCE_FILE).write_text(gru_kernels.CPP_SOURCE + "\n// planted\n")
    (folder / "gru_seq2seq_planted.so").write_bytes(b"\x7fELF planted")
    gru_kernels._write_source(str(folder))
    assert os.listdir(folder) == [gru_kernels.SOURCE_FILE]
    assert (folder / gru_kernels.SOURCE_FILE).read_text() == gru_kernels.CPP_SOURCE
