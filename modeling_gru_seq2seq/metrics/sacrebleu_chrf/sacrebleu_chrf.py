"""Corpus BLEU and chrF with sacrebleu, as an `evaluate` metric that loads from this folder (no Hub).

metric = evaluate.load(SACREBLEU_CHRF_PATH)
metric.compute(predictions=["i am cold ."], references=[["i am cold ."]])  # or references=["i am cold ."]
# {"bleu": 100.0, "chrf": 100.0, "bleu_signature": "nrefs:1|case:mixed|...", "chrf_signature": ...}
"""

import datasets
import evaluate
import sacrebleu


class SacrebleuChrf(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description="Corpus BLEU and chrF (sacrebleu), with their signatures.",
            citation="Post, A Call for Clarity in Reporting BLEU Scores (WMT 2018)",
            inputs_description="predictions: list of str; references: list of lists of str, or list of str "
            "(one reference each), as the Hub's sacrebleu metric",
            features=[
                datasets.Features(
                    {
                        "predictions": datasets.Value("string"),
                        "references": datasets.Sequence(datasets.Value("string")),
                    }
                ),
                datasets.Features({"predictions": datasets.Value("string"), "references": datasets.Value("string")}),
            ],
        )

    def _compute(self, predictions, references):
        if references and isinstance(references[0], str):
            references = [[reference] for reference in references]
        num_references = {len(refs) for refs in references}
        if len(num_references) > 1:
            raise ValueError("sacrebleu needs the same number of references for every prediction")
        streams = [list(stream) for stream in zip(*references, strict=True)]
        # force: the tutorial's sentences are tokenized by design (`i am cold .`); without it sacrebleu warns
        # about tokenized periods on every call. It does not change the score or the signature.
        bleu, chrf = sacrebleu.BLEU(force=True), sacrebleu.CHRF()
        return {
            "bleu": bleu.corpus_score(predictions, streams).score,
            "chrf": chrf.corpus_score(predictions, streams).score,
            "bleu_signature": str(bleu.get_signature()),
            "chrf_signature": str(chrf.get_signature()),
        }
