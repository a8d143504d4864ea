"""Shared test setup: one thread (stable on 2 busy cores), offline Hub, and the shared Tatoeba file."""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pathlib  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED_PAIRS_FILE = pathlib.Path(
    os.environ.get("GRU_SEQ2SEQ_PAIRS_FILE", REPO_ROOT.parent / "shared" / "data" / "eng-fra.txt")
)


@pytest.fixture(scope="session")
def shared_pairs_file() -> pathlib.Path:
    """The shared 163,630-line Tatoeba file; a missing file fails under CI (`CI=true`), else skips."""
    if not SHARED_PAIRS_FILE.is_file():
        message = f"shared data file {SHARED_PAIRS_FILE} is missing (set GRU_SEQ2SEQ_PAIRS_FILE)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return SHARED_PAIRS_FILE


@pytest.fixture(scope="session")
def pairs_file(shared_pairs_file, tmp_path_factory) -> str:
    """The first 2,000 lines of the shared file: about 1,900 pairs after the tutorial's filters."""
    path = tmp_path_factory.mktemp("data") / "pairs.txt"
    with open(shared_pairs_file, encoding="utf-8") as source:
        path.write_text("".join(line for _, line in zip(range(2000), source, strict=False)), encoding="utf-8")
    return str(path)


# Hypothesis profiles (tests/test_properties.py): `ci` runs 200 examples per property and is loaded when
# CI=true; `dev`, the local default, runs 50. No deadline: timings on shared CPUs vary too much.
from hypothesis import settings  # noqa: E402

settings.register_profile("ci", max_examples=200, deadline=None, print_blob=True)
settings.register_profile("dev", max_examples=50, deadline=None)
settings.load_profile("ci" if os.environ.get("CI", "").lower() == "true" else "dev")
