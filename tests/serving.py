"""A `gru-serve` server in a subprocess, on a free loopback port, for the tests that talk to it over HTTP."""

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

from tiny import PAIRS, learn_by_heart

from modeling_gru_seq2seq.pipeline_gru_seq2seq import save_translation_pipeline


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def save_tiny_model(directory) -> tuple:
    """A tiny model that knows `tiny.PAIRS` by heart (its outputs are peaked, so batching cannot change them),
    saved in `directory` as `run_translation.py` saves one; returns `(model, tokenizer)`."""
    model, tokenizer = learn_by_heart(PAIRS)
    save_translation_pipeline(model.eval(), tokenizer, directory)
    return model, tokenizer


def wait_until_up(url: str, process: subprocess.Popen, path: str = "/languages", timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server ended ({process.returncode}):\n{process.stderr.read()}")
        try:
            with urllib.request.urlopen(f"{url}{path}", timeout=2) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer within {timeout} s")


@contextlib.contextmanager
def served(model_dir, *flags: str, command=None, env=None, ready_path: str = "/languages", cwd=None):
    """`gru-serve model_dir` (or `command`, a list, with `{port}` replaced; env `GRADIO_SERVER_PORT` is the port)
    running on a free port, in the folder `cwd` (default: this one); yields its base URL once `ready_path`
    answers, and stops it after."""
    port = free_port()
    if command is None:
        command = [sys.executable, "-m", "modeling_gru_seq2seq.serve", str(model_dir), "--port", str(port), *flags]
    else:
        command = [part.replace("{port}", str(port)) for part in command]
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=cwd,
        env={**os.environ, "OMP_NUM_THREADS": "1", "GRADIO_SERVER_PORT": str(port), **(env or {})},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(url, process, ready_path)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        for stream in (process.stdout, process.stderr):
            stream.close()


def post(url: str, body, content_type: str = "application/json", timeout: float = 60) -> tuple[int, dict]:
    """`(status, JSON answer)` of a POST; `body` is sent as given when bytes, else as JSON."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": content_type}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def get(url: str, timeout: float = 30):
    with urllib.request.urlopen(url, timeout=timeout) as answer:
        return json.loads(answer.read())
