"""The model card (`README.md`) written beside a trained model and pushed with it."""

import json
import os

from .metrics import corpus_scores

SHOWN_METRICS = ("bleu", "chrf", "bleu_in_vocab", "chrf_in_vocab", "gen_len", "loss")
SETTINGS = ("attention", "decoder_type", "hidden_size", "num_layers", "dropout", "teacher_forcing_ratio",
            "decoder_init", "source_vocab_size", "target_vocab_size")
ATTRIBUTION = ("Tatoeba sentence pairs from www.manythings.org/anki and tatoeba.org, licensed CC-BY 2.0 (France): "
               "https://creativecommons.org/licenses/by/2.0/")


def write_model_card(output_dir: str, config, languages: list[str], data_summary: str, repo_id: str | None = None):
    """Write `output_dir/README.md`: metadata (languages, task, dataset, metrics), the results found in
    `output_dir/all_results.json` with the sacrebleu signature, the settings, a usage snippet, the data."""
    results_path = os.path.join(output_dir, "all_results.json")
    results = json.load(open(results_path, encoding="utf-8")) if os.path.isfile(results_path) else {}
    shown = {key: value for key, value in sorted(results.items()) if key.endswith(SHOWN_METRICS)}
    signatures = corpus_scores(["a"], ["a"])
    model_id = repo_id or "path/to/this/folder"
    source, target = languages
    lines = [
        "---",
        "language:", *(f"- {language}" for language in languages),
        "license: cc-by-2.0",
        "library_name: transformers",
        "pipeline_tag: translation",
        "tags:", "- translation", "- gru", "- seq2seq", "- attention",
        "datasets:", "- tatoeba",
        "metrics:", "- bleu", "- chrf",
        "---",
        "",
        f"# GRU seq2seq translator ({source} -> {target})",
        "",
        "The Practical PyTorch attention GRU translator (bidirectional GRU encoder, "
        f"{config.decoder_type} attention decoder), trained with gru-seq2seq's `run_translation.py`.",
        "",
        "## Results",
        "",
        *(f"- `{key}`: {value:.4f}" for key, value in shown.items()),
        f"- BLEU signature (sacrebleu): `{signatures['bleu_signature']}`",
        f"- chrF signature (sacrebleu): `{signatures['chrf_signature']}`",
        "",
        "`*_in_vocab` scores only the pairs whose words are all in the vocabularies.",
        "",
        "## Use",
        "",
        "```python",
        "from transformers import AutoModelForSeq2SeqLM, AutoTokenizer, pipeline",
        "",
        f'translator = pipeline("translation", model="{model_id}", trust_remote_code=True)',
        'translator("je suis froid .")',
        "",
        f'tokenizer = AutoTokenizer.from_pretrained("{model_id}", trust_remote_code=True)',
        f'model = AutoModelForSeq2SeqLM.from_pretrained("{model_id}", trust_remote_code=True)',
        'output_ids = model.generate(**tokenizer(["je suis froid ."], return_tensors="pt"), num_beams=5)',
        "print(tokenizer.batch_decode(output_ids, skip_special_tokens=True))",
        "```",
        "",
        "## Settings",
        "",
        "```json",
        json.dumps({key: getattr(config, key) for key in SETTINGS}, indent=2),
        "```",
        "",
        "## Data",
        "",
        data_summary,
        "",
        ATTRIBUTION,
        "",
    ]
    with open(os.path.join(output_dir, "README.md"), "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines))
