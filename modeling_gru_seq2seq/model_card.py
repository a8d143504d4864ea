"""The model card (`README.md`) written beside a trained model and pushed with it."""

import json
import os

from .configuration_gru_seq2seq import MODEL_SETTINGS
from .metrics import sacrebleu_signatures

SHOWN_METRICS = ("bleu", "chrf", "bleu_normalized", "bleu_in_vocab", "chrf_in_vocab", "gen_len", "loss")
SETTINGS = (*MODEL_SETTINGS, "vocabulary", "source_vocab_size", "target_vocab_size")
ATTRIBUTION = (
    "Tatoeba sentence pairs from www.manythings.org/anki and tatoeba.org, licensed CC-BY 2.0 (France): "
    "https://creativecommons.org/licenses/by/2.0/"
)


CARD_MARKER = "# gru-seq2seq model card, written by run_translation.py (which rewrites a README.md holding this line)"
SPLITS = {"eval": "validation", "predict": "test"}  # metric key prefix -> split
DATASET_NAMES = {"tatoeba": "Tatoeba"}
METRIC_NAMES = {"bleu": "BLEU (sacrebleu)", "chrf": "chrF (sacrebleu)"}


def model_index(model_name: str, languages: list[str], dataset: str, results: dict, signatures: dict) -> list[str]:
    """The card's `model-index` lines: BLEU and chrF per evaluated split, as the Hub renders them (strings
    written as JSON, which YAML reads as they are)."""
    pair = "-".join(languages)
    lines = ["model-index:", f"- name: {json.dumps(model_name)}", "  results:"]
    for prefix, split in SPLITS.items():
        metrics = [(name, results[f"{prefix}_{name}"]) for name in ("bleu", "chrf") if f"{prefix}_{name}" in results]
        if not metrics:
            continue
        lines += [
            "  - task:",
            "      type: translation",
            f"      name: {json.dumps(f'Translation {pair}')}",
            "    dataset:",
            f"      type: {json.dumps(dataset)}",
            f"      name: {json.dumps(f'{DATASET_NAMES.get(dataset, dataset)} {pair}')}",
            f"      config: {pair}",
            f"      split: {split}",
            "    metrics:",
        ]
        for name, value in metrics:
            lines += [
                f"    - type: {name}",
                f"      value: {value:.2f}",
                f"      name: {METRIC_NAMES[name]}",
                f"      args: {json.dumps(signatures[f'{name}_signature'])}",
            ]
    return lines if len(lines) > 3 else []


def card_model_path(output_dir: str) -> str:
    """How the card's usage snippet names a local model: a relative `output_dir` as given (it resolves from where
    the user ran the command, e.g. `runs/fr-en`), the folder's name for an absolute one (the card holds no
    local absolute path)."""
    path = os.path.normpath(output_dir)
    return os.path.basename(path) if os.path.isabs(path) or path.startswith("~") else path


def write_model_card(
    output_dir: str,
    config,
    languages: list[str],
    data_summary: str,
    repo_id: str | None = None,
    dataset: str = "tatoeba",
    normalization: str = "ascii",
) -> str:
    """Write `output_dir/README.md` and return its path: metadata (languages, task, the code's MIT licence,
    dataset, metrics and a
    `model-index` of the results found in `output_dir/all_results.json`), the results with the sacrebleu
    signatures, the settings, a usage snippet naming `repo_id` (else `card_model_path`), the data and its
    CC-BY 2.0 FR attribution. A `README.md` there that is not such a card (no `CARD_MARKER` in it) is left
    alone: the card goes to `MODEL_CARD.md` instead."""
    results_path = os.path.join(output_dir, "all_results.json")
    results = {}
    if os.path.isfile(results_path):
        with open(results_path, encoding="utf-8") as handle:
            results = json.load(handle)
    shown = {key: value for key, value in sorted(results.items()) if key.endswith(SHOWN_METRICS)}
    signatures = sacrebleu_signatures()
    model_id = repo_id or card_model_path(output_dir)
    source, target = languages
    example = "Je suis content." if normalization == "none" else "je suis froid ."  # raw text, or normalized
    quoted = json.dumps(example, ensure_ascii=False)
    vocabulary = getattr(config, "vocabulary", "word")
    scores_note = (
        "`*_in_vocab` scores only the pairs whose words are all in the vocabularies."
        if vocabulary == "word"
        else f"A {vocabulary} subword vocabulary with byte fallback: no word is out of the vocabulary."
    )
    settings = {key: getattr(config, key, None) for key in SETTINGS}
    settings["normalization"] = normalization
    lines = [
        "---",
        CARD_MARKER,
        "language:",
        *(f"- {language}" for language in languages),
        "license: mit",
        "library_name: transformers",
        "pipeline_tag: translation",
        "tags:",
        "- translation",
        "- gru",
        "- seq2seq",
        "- attention",
        "datasets:",
        f"- {json.dumps(dataset)}",
        "metrics:",
        "- bleu",
        "- chrf",
        *model_index(model_id.split("/")[-1], languages, dataset, results, signatures),
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
        scores_note,
        "`*_bleu_normalized`: BLEU after the tutorial's normalization of both sides (lowercase, no accents, digits).",
        "",
        "## Use",
        "",
        "```python",
        "from transformers import AutoModelForSeq2SeqLM, AutoTokenizer, pipeline",
        "",
        f'translator = pipeline("translation", model="{model_id}", trust_remote_code=True)',
        f"translator({quoted})",
        "",
        f'tokenizer = AutoTokenizer.from_pretrained("{model_id}", trust_remote_code=True)',
        f'model = AutoModelForSeq2SeqLM.from_pretrained("{model_id}", trust_remote_code=True)',
        f'output_ids = model.generate(**tokenizer([{quoted}], return_tensors="pt"), num_beams=5)',
        "print(tokenizer.batch_decode(output_ids, skip_special_tokens=True))",
        "```",
        "",
        "## Settings",
        "",
        "```json",
        json.dumps(settings, indent=2),
        "```",
        "",
        "## Data",
        "",
        data_summary,
        "",
        ATTRIBUTION,
        "",
        "## Licence",
        "",
        "The model and its code: MIT (gru-seq2seq). The training data: CC-BY 2.0 (France), see above.",
        "",
    ]
    path = os.path.join(output_dir, "README.md")
    if os.path.isfile(path):
        with open(path, encoding="utf-8", errors="replace") as handle:
            if CARD_MARKER not in handle.read():
                path = os.path.join(output_dir, "MODEL_CARD.md")
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines))
    return path
