"""Helpers for tests that run the project's commands: run_translation.py in a fresh interpreter (`run_script`
with the `TINY` model's flags), and the one-line error a command printed."""

import os
import subprocess
import sys

import run_translation

SCRIPT = os.path.join(os.path.dirname(run_translation.__file__), "run_translation.py")
TINY = [
    "--hidden_size",
    "32",
    "--num_layers",
    "2",
    "--min_count",
    "1",
    "--disable_tqdm",
    "true",
    "--report_to",
    "none",
]


def run_script(*args, env=None, prelude=""):
    """Run the script in a fresh interpreter; `prelude` is Python run first (to inject a SIGKILL)."""
    code = (
        f"{prelude}\nimport runpy, sys\nsys.argv = {[SCRIPT, *args]!r}\n"
        "runpy.run_path(sys.argv[0], run_name='__main__')"
    )
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env={**os.environ, **(env or {})}
    )


def one_line_error(capsys) -> str:
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1, error
    return error
