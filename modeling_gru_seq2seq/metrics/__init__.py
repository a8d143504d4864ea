"""Translation metrics: BLEU and chrF through `evaluate`, from a metric script shipped in the package."""

import functools
import os

import evaluate

SACREBLEU_CHRF_PATH = os.path.join(os.path.dirname(__file__), "sacrebleu_chrf")


def load_sacrebleu_chrf() -> evaluate.EvaluationModule:
    """The metric in `sacrebleu_chrf/` (`evaluate.load("sacrebleu")` would need the Hub)."""
    return evaluate.load(SACREBLEU_CHRF_PATH)


@functools.cache
def _shared_metric() -> evaluate.EvaluationModule:
    return load_sacrebleu_chrf()  # loaded once per process: `evaluate.load` builds a module each time


@functools.cache
def sacrebleu_signatures() -> dict:
    """`{"bleu_signature", "chrf_signature"}`: sacrebleu's settings and version, as every score reports them."""
    scores = corpus_scores(["a"], ["a"])
    return {key: scores[key] for key in ("bleu_signature", "chrf_signature")}


def corpus_scores(predictions: list[str], references: list[str]) -> dict:
    """`{"bleu", "chrf", "bleu_signature", "chrf_signature"}` of single-reference predictions."""
    if not predictions:
        return {"bleu": 0.0, "chrf": 0.0, "bleu_signature": "", "chrf_signature": ""}
    return _shared_metric().compute(predictions=predictions, references=references)
