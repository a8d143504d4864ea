"""OwnerLock (owner_lock.py) through its two users, the compiled loop's build folder (gru_kernels) and
run_translation.py's output directory: a lock whose owner is dead is taken over, a live owner is waited on
within bounds, then named."""

import os
import shutil
import socket
import subprocess
import sys
import warnings

import pytest

import run_translation
from modeling_gru_seq2seq import gru_kernels

# ---------------------------------------------------------------- the compiled loop's build


@pytest.fixture
def extensions_root(tmp_path):
    """An extensions folder holding a copy of the built library (so nothing is compiled again)."""
    assert gru_kernels.recurrence_ops() is not None
    root = tmp_path / "extensions"
    shutil.copytree(gru_kernels.build_directory(), root / os.path.basename(gru_kernels.build_directory()))
    return root


LOAD = "from modeling_gru_seq2seq.gru_kernels import recurrence_ops; print(recurrence_ops() is not None)"


def test_a_dead_builders_lock_is_taken_over(extensions_root):
    folder = extensions_root / os.path.basename(gru_kernels.build_directory())
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (folder / gru_kernels.OWNER_FILE).write_text(f"{socket.gethostname()} {dead.stdout.strip()}\n")
    (folder / gru_kernels.TORCH_LOCK_FILE).write_text("")  # torch's, as a SIGKILL mid-build leaves it
    result = subprocess.run(
        [sys.executable, "-c", LOAD],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "TORCH_EXTENSIONS_DIR": str(extensions_root)},
    )
    assert result.returncode == 0 and result.stdout.strip() == "True", result.stderr[-2000:]
    assert not (folder / gru_kernels.OWNER_FILE).exists() and not (folder / gru_kernels.TORCH_LOCK_FILE).exists()


def test_a_live_builder_is_waited_on_within_bounds(extensions_root, monkeypatch):
    folder = extensions_root / os.path.basename(gru_kernels.build_directory())
    (folder / gru_kernels.OWNER_FILE).write_text(f"{socket.gethostname()} {os.getpid()}\n")  # alive: this process
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(extensions_root))
    monkeypatch.setattr(gru_kernels, "BUILD_WAIT_SECONDS", 1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert gru_kernels.recurrence_ops.__wrapped__() is None
    assert any(f"pid {os.getpid()} on {socket.gethostname()}" in str(w.message) for w in caught)


# ---------------------------------------------------------------- the output directory


def test_a_second_launch_on_one_output_dir_stops_and_a_dead_owners_lock_is_taken_over(tmp_path, capsys):
    output_dir = tmp_path / "out"
    output_dir.mkdir()
    lock = output_dir / run_translation.RUN_LOCK_FILE
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        lock.write_text(f"{socket.gethostname()} {sleeper.pid}\n")
        args = ["--train_file", str(tmp_path / "missing.txt"), "--output_dir", str(output_dir)]
        assert run_translation.main(args) == 2
        assert f"is in use by pid {sleeper.pid} on {socket.gethostname()}" in capsys.readouterr().err
    finally:
        sleeper.kill()
        sleeper.wait()
    assert run_translation.main(args) == 2  # the owner is gone: taken over, then the missing file is the error
    assert "missing.txt: no such file" in capsys.readouterr().err
    assert not lock.exists()
