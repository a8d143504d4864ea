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

import pytest
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


PLANTED_SOURCE = r"""
#include <stdio.h>
#include <stdlib.h>
__attribute__((constructor)) static void planted(void) {
  FILE* marker = fopen(getenv("PLANTED_MARKER"), "w");
  if (marker) { fputs("ran", marker); fclose(marker); }
}
"""


def test_a_planted_library_is_never_loaded_and_the_package_builds_its_own(tmp_path):
    """A `.so` put in the build folder (with the right source beside it, as someone who knows the layout would)
    never runs: inference does not load it (one warning, nn.GRU), training builds the package's own library, which
    then loads, in training and inference alike."""
    env = {**os.environ, "TORCH_EXTENSIONS_DIR": str(tmp_path / "ext"), "PLANTED_MARKER": str(tmp_path / "marker")}
    script = "import os; from modeling_gru_seq2seq.gru_kernels import build_directory; print(build_directory())"
    folder = Path(
        subprocess.run(
            [sys.executable, "-c", script], env=env, cwd=REPO_ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
    )
    folder.mkdir(parents=True, mode=0o700)
    (folder / gru_kernels.SOURCE_FILE).write_text(gru_kernels.CPP_SOURCE)
    (tmp_path / "planted.c").write_text(PLANTED_SOURCE)
    subprocess.run(
        ["gcc", "-shared", "-fPIC", "-o", str(gru_kernels.library_path(str(folder))), str(tmp_path / "planted.c")],
        check=True,
    )

    def run(code):
        result = subprocess.run(
            [sys.executable, "-c", code], env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300
        )
        assert result.returncode == 0, result.stderr
        return result

    inference = run("from modeling_gru_seq2seq.gru_kernels import built_recurrence_ops as b; assert b() is None")
    assert "is not the library this package built" in inference.stderr
    assert not (tmp_path / "marker").exists()
    training = run("from modeling_gru_seq2seq.gru_kernels import recurrence_ops as r; assert r() is not None")
    assert "building it again" in training.stderr and not (tmp_path / "marker").exists()
    loaded = run("from modeling_gru_seq2seq.gru_kernels import built_recurrence_ops as b; assert b() is not None")
    assert "not the library" not in loaded.stderr and "building" not in loaded.stderr
    assert (folder / gru_kernels.HASH_FILE).is_file() and not (tmp_path / "marker").exists()
    assert (folder.stat().st_mode & 0o777) == 0o700


def test_a_build_folder_others_can_write_or_own_is_not_used(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path / "ext"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    folder = Path(build_directory())
    assert folder.parent == tmp_path / "ext"  # absent: the package will create it, 0700
    folder.mkdir(parents=True)
    folder.chmod(0o777)
    with pytest.warns(UserWarning, match="writable by others"):
        fallback = build_directory()
    assert Path(fallback) == tmp_path / "home" / ".cache" / "gru_seq2seq" / folder.name
    folder.chmod(0o700)
    assert Path(build_directory()) == folder
    if os.getuid() == 0:  # only root can give a folder to another user
        os.chown(folder, 65534, 65534)
        with pytest.warns(UserWarning, match="owned by another user"):
            assert Path(build_directory()).parent == tmp_path / "home" / ".cache" / "gru_seq2seq"
