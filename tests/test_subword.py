"""A translator for any sentence: subword vocabularies (`bpe`, `unigram`) with byte fallback, real text in and out
(`--normalization none`), and the length limit that follows each source."""

import json
import os
import subprocess
import sys

import pytest
import torch
from tiny import learn_by_heart

import run_translation
from data_scripts.prepare_tatoeba import PrepareArguments, prepare_tatoeba
from modeling_gru_seq2seq import (
    GruSeq2SeqConfig,
    GruSeq2SeqForConditionalGeneration,
    GruSeq2SeqTokenizer,
    TranslationPipeline,
)
from modeling_gru_seq2seq import translate as translate_command
from modeling_gru_seq2seq.pipeline_gru_seq2seq import save_translation_pipeline
from modeling_gru_seq2seq.tokenization_gru_seq2seq import BYTE_TOKENS, UNK_TOKEN, normalize_string, train_subword
from modeling_gru_seq2seq.training import GruSeq2SeqTrainer

# Real text: case, digits, accents, apostrophes and punctuation, as a user types it
PAIRS = [
    ("Je suis content.", "I'm happy."),
    ("J'ai 3 chats.", "I have 3 cats."),
    ("Il fait froid à Zürich !", "It's cold in Zürich!"),
    ("Nous avons 25 euros.", "We have 25 euros."),
    ("Où est Marie-Ève ?", "Where is Marie-Ève?"),
    ("Elle a 12 ans.", "She's 12."),
]
SOURCES, TARGETS = [fr for fr, _ in PAIRS], [en for _, en in PAIRS]
UNSEEN = ["J'ai 42 Éléphants à Kraków — n'est-ce pas ?", "  Ça   va,  Øystein ?  ", "L'été 2026 : 日本語, ½ ＡＢＣ"]
SUBWORDS = ["bpe", "unigram"]


def subword_tokenizer(kind: str, sources=SOURCES, targets=TARGETS, vocab_size: int = 300) -> GruSeq2SeqTokenizer:
    return GruSeq2SeqTokenizer.from_vocabularies(
        train_subword(sources, kind, vocab_size, "none"), train_subword(targets, kind, vocab_size, "none"), "fr", "en"
    )


@pytest.fixture(scope="module", params=SUBWORDS)
def memorized(request):
    """`(model, tokenizer)`: a tiny model of each subword kind that knows `PAIRS` by heart, in eval mode."""
    model, tokenizer = learn_by_heart(PAIRS, tokenizer=subword_tokenizer(request.param), vocabulary=request.param)
    return model.eval(), tokenizer


@pytest.mark.parametrize("kind", SUBWORDS)
def test_subword_tokenizers_round_trip_any_text_without_unk(kind):
    """Unseen words with digits, case, accents, apostrophes and characters never seen in training come back as
    written (after `none`'s NFKC and whitespace collapsing), through byte fallback: never `<unk>`."""
    tokenizer = subword_tokenizer(kind)
    assert tokenizer.vocabulary == kind and tokenizer.normalization == "none"
    assert tokenizer.source_vocab_size <= 300
    for side in ({}, {"text_target": None}):
        for text in UNSEEN:
            ids = tokenizer(**({"text_target": text} if side else {"text": text}))["input_ids"]
            assert tokenizer.unk_token_id not in ids
            if side:  # target ids decode
                assert tokenizer.decode(ids, skip_special_tokens=True) == normalize_string(text, "none")
    assert normalize_string(UNSEEN[1], "none") == "Ça va, Øystein ?"
    pieces = tokenizer.convert_ids_to_tokens(tokenizer(text_target="日本")["input_ids"])
    assert set(pieces[1:-1]) <= set(BYTE_TOKENS)  # characters never seen: their UTF-8 bytes
    assert "▁" not in tokenizer.decode(tokenizer(text_target=UNSEEN[0])["input_ids"])


@pytest.mark.parametrize("kind", SUBWORDS)
def test_saved_subword_tokenizer_keeps_normalization_by_name(kind, tmp_path):
    tokenizer = subword_tokenizer(kind)
    tokenizer.save_pretrained(tmp_path)
    with open(tmp_path / "tokenizer_config.json", encoding="utf-8") as handle:
        assert json.load(handle)["normalization"] == "none"
    loaded = GruSeq2SeqTokenizer.from_pretrained(tmp_path)
    assert (loaded.normalization, loaded.vocabulary) == ("none", kind)
    assert loaded(UNSEEN[0])["input_ids"] == tokenizer(UNSEEN[0])["input_ids"]


def test_tokenizer_saved_before_names_were_saved_is_recognised(tmp_path, tiny_tokenizer):
    """A `tokenizer_config.json` without `normalization` (models saved before it was written) loads as its
    normalizer says."""
    tiny_tokenizer.save_pretrained(tmp_path)
    path = tmp_path / "tokenizer_config.json"
    settings = json.loads(path.read_text(encoding="utf-8"))
    del settings["normalization"]
    path.write_text(json.dumps(settings), encoding="utf-8")
    loaded = GruSeq2SeqTokenizer.from_pretrained(tmp_path)
    assert (loaded.normalization, loaded.vocabulary) == ("ascii", "word")


def test_vocab_size_too_small_is_one_line():
    with pytest.raises(ValueError, match=r"--vocab_size: got 100, want >= 261"):
        train_subword(SOURCES, "bpe", 100)


def test_memorized_subword_model_translates_text_through_pipeline(memorized):
    model, tokenizer = memorized
    translator = TranslationPipeline(model=model, tokenizer=tokenizer)
    assert [output["translation_text"] for output in translator(SOURCES)] == TARGETS
    assert translator(SOURCES[2], num_beams=3)[0]["translation_text"] == TARGETS[2]
    with pytest.raises(ValueError, match="replace_unknown .* subword vocabulary has no <unk>"):
        translator(SOURCES[0], replace_unknown=True)
    long_source = " ".join(SOURCES * 20)  # more pieces than model_max_length (100)
    assert len(tokenizer(long_source)["input_ids"]) > 100
    assert len(tokenizer(long_source, truncation=True)["input_ids"]) == 100
    assert translator(long_source, truncation=True)[0]["translation_text"]


def test_transformers_example_script_calls_with_a_subword_model(memorized, tmp_path):
    """What transformers' `examples/pytorch/translation/run_translation.py` does with a model: tokenize with
    `text_target`, train and evaluate with the stock `Seq2SeqTrainer` and `DataCollatorForSeq2Seq`."""
    from datasets import Dataset
    from transformers import DataCollatorForSeq2Seq, Seq2SeqTrainer, Seq2SeqTrainingArguments

    from modeling_gru_seq2seq.metrics import load_sacrebleu_chrf

    model, tokenizer = memorized
    save_translation_pipeline(model, tokenizer, str(tmp_path / "model"))
    model = GruSeq2SeqForConditionalGeneration.from_pretrained(tmp_path / "model")
    raw = Dataset.from_dict({"translation": [{"fr": fr, "en": en} for fr, en in PAIRS]})
    dataset = raw.map(
        lambda batch: tokenizer(
            [pair["fr"] for pair in batch["translation"]],
            text_target=[pair["en"] for pair in batch["translation"]],
            max_length=64,
            truncation=True,
        ),
        batched=True,
        remove_columns=["translation"],
    )
    metric = load_sacrebleu_chrf()

    def compute_metrics(eval_preds):
        predictions, _ = eval_preds
        predictions = [[i for i in row if i >= 0] for row in predictions]
        decoded = tokenizer.batch_decode(predictions, skip_special_tokens=True)
        return {"bleu": metric.compute(predictions=decoded, references=TARGETS)["bleu"]}

    args = Seq2SeqTrainingArguments(
        output_dir=str(tmp_path / "trained"),
        max_steps=1,
        per_device_train_batch_size=6,
        learning_rate=1e-5,
        report_to="none",
        use_cpu=True,
        disable_tqdm=True,
        save_strategy="no",
        predict_with_generate=True,
        generation_max_length=32,
    )
    trainer = Seq2SeqTrainer(
        model=model,
        args=args,
        train_dataset=dataset,
        eval_dataset=dataset,
        processing_class=tokenizer,
        data_collator=DataCollatorForSeq2Seq(tokenizer, model=model, label_pad_token_id=-100),
        compute_metrics=compute_metrics,
    )
    trainer.train()
    assert trainer.evaluate(num_beams=2)["eval_bleu"] == pytest.approx(100.0)


def test_memorized_subword_model_translates_text_through_gru_translate(memorized, tmp_path, capsys):
    model, tokenizer = memorized
    save_translation_pipeline(model, tokenizer, str(tmp_path / "model"))
    assert translate_command.main([str(tmp_path / "model"), *SOURCES]) == 0
    assert capsys.readouterr().out.splitlines() == TARGETS
    assert translate_command.main([str(tmp_path / "model"), "--replace_unknown", SOURCES[0]]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "--replace_unknown" in error and "subword" in error
    # notes count subword tokens, never unknown words
    assert translate_command.main([str(tmp_path / "model"), "--max_source_length", "3", "Où est Øystein ?"]) == 0
    count = len(tokenizer("Où est Øystein ?")["input_ids"]) - 1
    assert (
        capsys.readouterr().err
        == f"sentence 1: warning: {count} subword tokens, cut to the first 2 (--max_source_length 3)\n"
    )
    samples = tmp_path / "samples.txt"
    samples.write_text("".join(f"{en}\t{fr}\n" for fr, en in PAIRS), encoding="utf-8")
    assert translate_command.main([str(tmp_path / "model"), "--samples", str(samples), "-n", "2", "--seed", "0"]) == 0
    output = capsys.readouterr()
    assert "BLEU 100.00  chrF 100.00" in output.out and output.err == ""


def test_attention_of_a_subword_translation_is_over_pieces(memorized):
    model, tokenizer = memorized
    [result] = translate_command.translate(model, tokenizer, [SOURCES[1]], output_attentions=True)
    assert result.text == TARGETS[1]
    assert result.source_tokens == tokenizer(SOURCES[1]).encodings[0].tokens
    assert result.source_tokens[0].startswith("▁") and result.output_tokens[-1] == "<eos>"
    assert result.attention.shape == (len(result.output_tokens), len(result.source_tokens))


def test_a_subword_model_never_generates_unk(memorized):
    """With `<unk>` made the likeliest token at every step, a subword model still never writes it (greedy, beam,
    sampling); a word model, which may have to, does."""
    model, tokenizer = memorized
    inputs = tokenizer(SOURCES, padding=True, return_tensors="pt")
    with torch.no_grad():
        model.decoder.out.bias[tokenizer.unk_token_id] = 1e4
    try:
        for kwargs in (
            {},
            {"num_beams": 3},
            {"do_sample": True},
            {"output_scores": True, "return_dict_in_generate": True},
        ):
            output = model.generate(**inputs, max_new_tokens=5, **kwargs)
            sequences = output if isinstance(output, torch.Tensor) else output.sequences
            assert tokenizer.unk_token_id not in sequences.flatten().tolist()
        model.config.vocabulary = "word"
        assert tokenizer.unk_token_id in model.generate(**inputs, max_new_tokens=5)[0].tolist()
    finally:
        model.config.vocabulary = tokenizer.vocabulary
        with torch.no_grad():
            model.decoder.out.bias[tokenizer.unk_token_id] = 0.0


def test_stop_strings_over_subword_pieces(memorized):
    model, tokenizer = memorized
    inputs = tokenizer([SOURCES[1]], return_tensors="pt")
    output = model.generate(**inputs, max_new_tokens=20, stop_strings=["have"], tokenizer=tokenizer)
    assert tokenizer.decode(output[0], skip_special_tokens=True) == "I have"


TRUST_REMOTE_CODE_SCRIPT = """
import json, sys
sys.modules["modeling_gru_seq2seq"] = None  # only the code saved with the model
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer, pipeline
tokenizer = AutoTokenizer.from_pretrained(sys.argv[1], trust_remote_code=True)
model = AutoModelForSeq2SeqLM.from_pretrained(sys.argv[1], trust_remote_code=True)
output = model.generate(**tokenizer([sys.argv[2]], return_tensors="pt"), num_beams=2)
text = tokenizer.batch_decode(output, skip_special_tokens=True)[0]
translator = pipeline("translation", model=sys.argv[1], trust_remote_code=True)
piped = translator(sys.argv[2])[0]["translation_text"]
print(json.dumps([tokenizer.normalization, tokenizer.vocabulary, text, piped]))
"""


def test_saved_subword_model_loads_with_remote_code_alone(memorized, tmp_path):
    model, tokenizer = memorized
    save_translation_pipeline(model, tokenizer, str(tmp_path / "model"))
    result = subprocess.run(
        [sys.executable, "-c", TRUST_REMOTE_CODE_SCRIPT, str(tmp_path / "model"), SOURCES[4]],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "HF_MODULES_CACHE": str(tmp_path / "modules")},
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == ["none", tokenizer.vocabulary, TARGETS[4], TARGETS[4]]


# The length limit: each sentence's follows its source


def never_ending_model(**fields) -> GruSeq2SeqForConditionalGeneration:
    """An untrained tiny model that never writes `<eos>`: its outputs run to their length limit."""
    torch.manual_seed(0)
    config = GruSeq2SeqConfig(source_vocab_size=30, target_vocab_size=30, hidden_size=8, num_layers=1, **fields)
    model = GruSeq2SeqForConditionalGeneration(config).eval()
    with torch.no_grad():
        model.decoder.out.bias[config.eos_token_id] = -1e4
    return model


def output_lengths(sequences: torch.Tensor, pad_token_id: int = 0) -> list[int]:
    return (sequences[:, 1:] != pad_token_id).sum(dim=1).tolist()


SOURCE_IDS = torch.tensor([[5, 6, 2, 0, 0, 0, 0, 0], [5, 6, 7, 8, 9, 10, 11, 2]])  # 3 and 8 tokens with <eos>


def test_length_limit_follows_the_source_in_the_lean_loops(monkeypatch):
    model = never_ending_model(output_length_ratio=1.5, output_length_offset=2, max_output_length=100)
    mask = (SOURCE_IDS != 0).long()
    assert model.output_length_limits((SOURCE_IDS,), {"attention_mask": mask}).tolist() == [7, 14]  # 2 + ceil(1.5 n)
    ran = []
    for name in ("_lean_greedy_search", "_lean_beam_search"):
        original = getattr(model, name)
        monkeypatch.setattr(model, name, lambda *a, _o=original, _n=name, **k: ran.append(_n) or _o(*a, **k))
    greedy = model.generate(input_ids=SOURCE_IDS, attention_mask=mask)
    assert ran == ["_lean_greedy_search"] and output_lengths(greedy) == [7, 14]
    beam = model.generate(input_ids=SOURCE_IDS, attention_mask=mask, num_beams=3)
    assert ran[-1] == "_lean_beam_search" and beam.shape[1] == 15
    # GenerationMixin's loops (asked for scores) stop each sentence at the same limit, with the same tokens
    for kwargs, lean in (({}, greedy), ({"num_beams": 3}, beam)):
        full = model.generate(
            input_ids=SOURCE_IDS, attention_mask=mask, output_scores=True, return_dict_in_generate=True, **kwargs
        )
        assert torch.equal(full.sequences, lean)
    assert len(ran) == 2
    sampled = model.generate(input_ids=SOURCE_IDS, attention_mask=mask, do_sample=True, num_return_sequences=2)
    assert output_lengths(sampled) == [7, 7, 14, 14]
    set_ups = []
    monkeypatch.setattr(model, "_lean_set_up", lambda *a, _o=model._lean_set_up, **k: set_ups.append(1) or _o(*a, **k))
    for ids in (SOURCE_IDS[:1, :3], SOURCE_IDS[1:], SOURCE_IDS[:1, :3]):  # a new longest limit each call
        model.generate(input_ids=ids)
    assert len(set_ups) == 1  # the set-up is kept: it does not depend on the limits
    capped = never_ending_model(output_length_ratio=1.5, output_length_offset=2, max_output_length=9)
    assert output_lengths(capped.generate(input_ids=SOURCE_IDS, attention_mask=mask)) == [7, 9]


def test_a_given_length_wins_over_the_source_limit():
    model = never_ending_model()
    mask = (SOURCE_IDS != 0).long()
    assert output_lengths(model.generate(input_ids=SOURCE_IDS, attention_mask=mask, max_new_tokens=4)) == [4, 4]
    assert output_lengths(model.generate(input_ids=SOURCE_IDS, attention_mask=mask, max_length=6)) == [5, 5]
    model.generation_config.max_length = 4  # as --val_max_target_length writes it
    assert output_lengths(model.generate(input_ids=SOURCE_IDS, attention_mask=mask)) == [3, 3]


def test_length_limit_holds_without_generation_config_file(tmp_path):
    model = never_ending_model(output_length_ratio=1.0, output_length_offset=3)
    model.save_pretrained(tmp_path)
    os.remove(tmp_path / "generation_config.json")
    loaded = GruSeq2SeqForConditionalGeneration.from_pretrained(tmp_path).eval()
    mask = (SOURCE_IDS != 0).long()
    expected = [6, 11]  # 3 + n
    assert output_lengths(model.generate(input_ids=SOURCE_IDS, attention_mask=mask)) == expected
    assert output_lengths(loaded.generate(input_ids=SOURCE_IDS, attention_mask=mask)) == expected


# Data: the vocabularies see the training split only


def marked_pairs_file(tmp_path, pairs) -> str:
    """`pairs` (English, French), each source sentence with a character of its own (from U+4E00 on) on both
    sides: a character names its sentence, and so its split."""
    lines = [f"{en} {chr(0x4E00 + i)}\t{fr} {chr(0x4E00 + i)}\n" for i, (en, fr) in enumerate(pairs)]
    path = tmp_path / "marked.txt"
    path.write_text("".join(lines), encoding="utf-8")
    return str(path)


@pytest.mark.parametrize("kind", SUBWORDS)
@pytest.mark.parametrize("joint", [False, True])
def test_vocabularies_never_see_validation_or_test_text(tmp_path, pairs_file, kind, joint):
    with open(pairs_file, encoding="utf-8") as handle:
        pairs = [line.rstrip("\n").split("\t") for line in handle][::12]  # 140 pairs
    path = marked_pairs_file(tmp_path, pairs)
    args = PrepareArguments(
        vocabulary=kind,
        vocab_size=1000,
        joint_vocabulary=joint,
        normalization="none",
        length_unit="words",
        min_length=1,
        max_length=50,
        validation_fraction=0.2,
        test_fraction=0.2,
    )
    corpus = prepare_tatoeba(path, args)
    marks = {
        split: {pair["fr"][-1] for pair in corpus.dataset[split]["translation"]}
        for split in ("train", "validation", "test")
    }
    held_out = marks["validation"] | marks["test"]
    assert held_out and not held_out & marks["train"]
    for vocabulary in (corpus.tokenizer.get_vocab(), corpus.tokenizer.target_vocab()):
        seen = "".join(token for token in vocabulary if token not in BYTE_TOKENS)
        assert not held_out & set(seen)
        if kind == "bpe":  # every training character is in a BPE vocabulary of this size
            assert marks["train"] <= set(seen)
    assert corpus.stats["pairs_kept"] == corpus.stats["pairs_after_length_filter"]  # nothing dropped
    assert UNK_TOKEN not in "".join(
        corpus.tokenizer.batch_decode(corpus.tokenizer(text_target=list(held_out))["input_ids"])
    )


# The command line: one-line refusals, the dropout, the records


def run_and_error(capsys, *flags) -> str:
    assert run_translation.main(list(flags)) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1, error
    return error


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--vocabulary", "bpe", "--replace_unknown"], "--replace_unknown is for word vocabularies"),
        (["--vocabulary", "unigram", "--source_embeddings", "v.vec"], "--source_embeddings is for word vocabularies"),
        (["--vocabulary", "bpe", "--target_embeddings", "v.vec"], "--target_embeddings is for word vocabularies"),
        (["--vocabulary", "bpe", "--unknown_pairs", "keep"], "--unknown_pairs keep is for word vocabularies"),
        (["--vocab_size", "500"], "--vocab_size is for subword vocabularies"),
        (["--joint_vocabulary"], "--joint_vocabulary is for subword vocabularies"),
        (["--subword_dropout", "0.1"], "--subword_dropout is for subword vocabularies"),
        (["--normalization", "none"], "--normalization none is for subword vocabularies"),
        (["--vocabulary", "unigram", "--subword_dropout", "0.1"], "--vocabulary unigram has no sampling"),
        (["--vocabulary", "bpe", "--vocab_size", "200"], "--vocab_size: got 200, want >= 261"),
        (["--vocabulary", "bpe", "--subword_dropout", "1"], "--subword_dropout: got 1.0, want 0 <= p < 1"),
    ],
)
def test_word_only_and_subword_only_flags_are_refused_in_one_line(tmp_path, capsys, flags, message):
    """Before any file is opened: the training file does not exist."""
    error = run_and_error(
        capsys, "--train_file", str(tmp_path / "missing.txt"), "--output_dir", str(tmp_path / "out"), *flags
    )
    assert message in error
    assert not (tmp_path / "out").exists()


SUBWORD_RUN = ["--hidden_size", "64", "--num_layers", "1", "--dropout", "0", "--learning_rate", "3e-3"]
SUBWORD_RUN += ["--teacher_forcing_ratio", "1", "--per_device_train_batch_size", "32"]
SUBWORD_RUN += ["--disable_tqdm", "true", "--report_to", "none"]
SUBWORD_RUN += ["--num_attention_plots", "1"]
SUBWORD_RUN += ["--length_unit", "words", "--min_length", "1", "--max_length", "50"]


def test_subword_dropout_samples_training_batches_only(tmp_path, monkeypatch):
    """In a real run: a sentence's pieces differ across the epochs of the training dataloader, never across
    evaluations; the saved tokenizer, generate() and the pipeline segment it one way."""
    pairs = tmp_path / "pairs.txt"
    long_pairs = [(en + " " + en, fr + " " + fr) for fr, en in PAIRS]  # several merges per sentence
    pairs.write_text("".join(f"{en}\t{fr}\n" for en, fr in long_pairs * 4), encoding="utf-8")
    seen = {"train": [], "eval": []}
    training_step, prediction_step = GruSeq2SeqTrainer.training_step, GruSeq2SeqTrainer.prediction_step

    def record_training(self, model, inputs, *args, **kwargs):
        seen["train"].append(inputs["input_ids"].tolist())
        return training_step(self, model, inputs, *args, **kwargs)

    def record_prediction(self, model, inputs, *args, **kwargs):
        seen["eval"].append(inputs["input_ids"].tolist())
        return prediction_step(self, model, inputs, *args, **kwargs)

    monkeypatch.setattr(GruSeq2SeqTrainer, "training_step", record_training)
    monkeypatch.setattr(GruSeq2SeqTrainer, "prediction_step", record_prediction)
    output_dir = tmp_path / "run"
    flags = ["--train_file", str(pairs), "--output_dir", str(output_dir), *SUBWORD_RUN]
    flags += ["--vocabulary", "bpe", "--vocab_size", "400", "--normalization", "none", "--subword_dropout", "0.5"]
    flags += ["--validation_fraction", "0.2", "--test_fraction", "0.2", "--per_device_train_batch_size", "64"]
    flags += ["--num_train_epochs", "4", "--eval_strategy", "epoch", "--save_strategy", "no"]
    flags += ["--train_sampling_strategy", "group_by_length"]  # batches by length, from the fixed segmentation
    assert run_translation.main(flags) == 0
    tokenizer = GruSeq2SeqTokenizer.from_pretrained(output_dir)
    with open(output_dir / "tokenizer.json", encoding="utf-8") as handle:
        assert json.load(handle)["model"]["dropout"] is None

    def source_text(row):
        return tokenizer._source_tokenizer.decode(row, skip_special_tokens=True)

    def pieces(row):
        return tuple(i for i in row if i != tokenizer.pad_token_id)

    # one batch per epoch holds every training pair: a source sentence's pieces in each epoch
    sentence = source_text(seen["train"][0][0])
    per_epoch = [tuple(pieces(row) for row in batch if source_text(row) == sentence) for batch in seen["train"]]
    assert len(seen["train"]) == 4 and all(per_epoch) and len(set(per_epoch)) > 1
    validations = seen["eval"][:-1]  # at every epoch and at the end; the last is the test
    assert len(validations) == 5 and all(batch == validations[0] for batch in validations)
    fixed = tokenizer(sentence)["input_ids"]
    assert all(tokenizer(sentence)["input_ids"] == fixed for _ in range(5))
    model = GruSeq2SeqForConditionalGeneration.from_pretrained(output_dir).eval()
    translator = TranslationPipeline(model=model, tokenizer=tokenizer)
    assert translator.preprocess(sentence)["input_ids"][0].tolist() == fixed


@pytest.mark.slow
@pytest.mark.parametrize("kind", SUBWORDS)
def test_subword_run_writes_text_scores_and_card(tmp_path, capsys, pairs_file, kind):
    """A whole run with a subword vocabulary, batched by length: text out (in the test file's order, whatever the
    sampler), cased BLEU and `bleu_normalized` without in-vocabulary scores, a card naming the vocabulary and
    normalization, no fixed length in generation_config.json; a rerun with another --vocabulary is refused."""
    output_dir = tmp_path / "run"
    flags = ["--train_file", pairs_file, "--output_dir", str(output_dir), *SUBWORD_RUN, "--max_steps", "300"]
    flags += ["--vocabulary", kind, "--vocab_size", "500", "--normalization", "none", "--eval_strategy", "no"]
    flags += ["--save_strategy", "no", "--train_sampling_strategy", "group_by_length"]
    assert run_translation.main(flags) == 0
    with open(output_dir / "all_results.json", encoding="utf-8") as handle:
        results = json.load(handle)
    assert {"predict_bleu", "predict_chrf", "predict_bleu_normalized", "eval_bleu_normalized"} <= results.keys()
    assert not any("in_vocab" in key for key in results)
    assert results["predict_bleu"] > 50 and results["predict_bleu_normalized"] >= results["predict_bleu"] - 1
    with open(output_dir / "generation_config.json", encoding="utf-8") as handle:
        assert "max_length" not in json.load(handle)
    predictions = (output_dir / "generated_predictions.txt").read_text(encoding="utf-8").splitlines()
    assert any(text[:1].isupper() and text.endswith((".", "!")) for text in predictions)
    assert not any("▁" in text or "<unk>" in text for text in predictions)
    card = (output_dir / "README.md").read_text(encoding="utf-8")
    assert f'"vocabulary": "{kind}"' in card and '"normalization": "none"' in card
    assert 'translator("Je suis content.")' in card and "subword" in card
    with open(output_dir / "run_arguments.json", encoding="utf-8") as handle:
        assert json.load(handle)["--vocabulary"] == kind
    capsys.readouterr()
    other = "unigram" if kind == "bpe" else "bpe"
    rerun = [*flags[: flags.index("--vocabulary")], "--vocabulary", other, *flags[flags.index("--vocabulary") + 2 :]]
    error = run_and_error(capsys, *rerun)
    assert f"was trained with --vocabulary '{kind}', this run has '{other}'" in error


def test_resume_reads_the_checkpoint_vocabularies(tmp_path, pairs_file, monkeypatch):
    """A resumed subword run takes its vocabularies from the checkpoint (a unigram vocabulary trained again can
    differ), and never trains them again."""
    import data_scripts.prepare_tatoeba as prepare_module

    output_dir = tmp_path / "run"
    flags = ["--train_file", pairs_file, "--output_dir", str(output_dir), *SUBWORD_RUN, "--eval_strategy", "no"]
    flags += ["--vocabulary", "unigram", "--vocab_size", "400", "--normalization", "none", "--do_predict", "false"]
    flags += ["--num_attention_plots", "0", "--save_strategy", "steps", "--save_steps", "2"]
    assert run_translation.main([*flags, "--max_steps", "2"]) == 0
    vocabulary = (output_dir / "checkpoint-2" / "tokenizer.json").read_text(encoding="utf-8")

    def never(*args, **kwargs):
        raise AssertionError("the vocabularies were trained again")

    monkeypatch.setattr(prepare_module, "train_subword_vocabularies", never)
    assert run_translation.main([*flags, "--max_steps", "4"]) == 0
    assert (output_dir / "tokenizer.json").read_text(encoding="utf-8") == vocabulary
    state = json.loads((output_dir / "trainer_state.json").read_text(encoding="utf-8"))
    assert state["global_step"] == 4


@pytest.mark.parametrize("kind", ["word", "bpe"])
def test_without_generation_config_translations_run_to_the_source_limit(tmp_path, tiny_tokenizer, kind):
    """A saved model without `generation_config.json` (deleted, or saved by other tools) translates to its
    source-length limit, as it does with the file (transformers' default would cap it at 20 tokens)."""
    from modeling_gru_seq2seq.loading import load_model_and_tokenizer

    tokenizer = subword_tokenizer("bpe") if kind == "bpe" else tiny_tokenizer
    torch.manual_seed(0)
    config = GruSeq2SeqConfig(
        source_vocab_size=tokenizer.source_vocab_size,
        target_vocab_size=tokenizer.target_vocab_size,
        hidden_size=8,
        num_layers=1,
        vocabulary=kind,
        output_length_ratio=3.0,
        output_length_offset=6,
    )
    model = GruSeq2SeqForConditionalGeneration(config).eval()
    with torch.no_grad():
        model.decoder.out.bias[config.eos_token_id] = -1e4  # never ends: runs to the limit
    sentence = "Nous avons 25 euros." if kind == "bpe" else "je suis content ."
    limit = 6 + 3 * len(tokenizer(sentence)["input_ids"])
    assert limit > 20
    for keep_file in (True, False):
        folder = tmp_path / f"model-{keep_file}"
        save_translation_pipeline(model, tokenizer, str(folder))
        if not keep_file:
            os.remove(folder / "generation_config.json")
        loaded, loaded_tokenizer = load_model_and_tokenizer(str(folder))
        [result] = translate_command.translate(loaded, loaded_tokenizer, [sentence])
        assert len(result.output_tokens) == limit, keep_file
