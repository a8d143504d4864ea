"""Translation metrics: BLEU and chrF through `evaluate`, from a metric script shipped in the package."""

import os

import evaluate

SACREBLEU_CHRF_PATH = os.path.join(os.path.dirname(__file__), "sacrebleu_chrf")


def load_sacrebleu_chrf() -> evaluate.EvaluationModule:
    """The metric in `sacrebleu_chrf/` (`evaluate.load("sacrebleu")` would need the Hub)."""
    return evaluate.load(SACREBLEU_CHRF_PATH)


def corpus_scores(predictions: list[str], references: list[str]) -> dict:
    """`{"bleu", "chrf", "bleu_signature", "chrf_signature"}` of single-reference predictions."""
    if not predictions:
        return {"bleu": 0.0, "chrf": 0.0, "bleu_signature": "", "chrf_signature": ""}
    return load_sacrebleu_chrf().compute(predictions=predictions, references=references)
