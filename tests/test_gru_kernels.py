"""The compiled GRU recurrence's build (gru_kernels.py): it can be switched off, a lock left by an interrupted
build does not hang the next one, and a build folder holding another source is emptied first. (The build
folder's owner lock: tests/test_owner_lock.py; the recurrence against nn.GRU: tests/test_packed_gru.py.)"""

import os
import subprocess
import sys
import time
from pathlib import Path

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
    subprocess.run([sys.executable, "-c", script], check=True, timeout=300, cwd=REPO_ROOT)
    assert not os.path.exists(lock)


def test_a_build_folder_with_another_source_is_emptied_first(tmp_path):
    folder = tmp_path / "build"
    folder.mkdir()
    (folder / gru_kernels.SOURCE_FILE).write_text(gru_kernels.CPP_SOURCE + "\n// planted\n")
    (folder / "gru_seq2seq_planted.so").write_bytes(b"\x7fELF planted")
    gru_kernels._write_source(str(folder))
    assert os.listdir(folder) == [gru_kernels.SOURCE_FILE]
    assert (folder / gru_kernels.SOURCE_FILE).read_text() == gru_kernels.CPP_SOURCE
